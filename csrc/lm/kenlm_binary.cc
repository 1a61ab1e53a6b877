#include "lm/kenlm_binary.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/errors.h"
#include "lm/ngram_lookup.h"
#include "lm/ngram_pipeline.h"

namespace speechdecode {
namespace kenlm {

namespace {

constexpr char kMagicPrefix[] = "mmap lm http://kheafield.com/code";
constexpr char kMagicVersionPrefix[] = "mmap lm http://kheafield.com/code format version";
constexpr char kMagicIncomplete[] = "mmap lm http://kheafield.com/code incomplete\n";
constexpr char kMagic[] = "mmap lm http://kheafield.com/code format version 5\n";  // + two NULs
constexpr size_t kMagicBytes = sizeof(kMagic) + 1;                                 // 53
constexpr size_t kSanityBytes = 88;
constexpr size_t kFixedBytes = 20;  // order, multiplier, type, has vocabulary, search version
constexpr uint32_t kSignBit = 0x80000000u;

uint64_t align8(uint64_t n) { return (n + 7) / 8 * 8; }

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

uint32_t float_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
float bits_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// Little-endian bit fields of up to 57 bits at any bit offset (8 bytes are read at the byte
// holding the first bit; every section keeps 8 bytes of slack after its last record for this).
uint64_t read_bits(const uint8_t* base, uint64_t bit, uint8_t length) {
  return (load<uint64_t>(base + (bit >> 3)) >> (bit & 7)) & ((uint64_t{1} << length) - 1);  // length <= 57
}

uint64_t checked_add(uint64_t a, uint64_t b, bool* overflow) {
  if (a > UINT64_MAX - b) *overflow = true;
  return a + b;
}

// Interpolation search for key among sorted keys key_at(i), i in [lo, hi), known to lie in
// [low_key, high_key] (as KenLM searches its sorted vocabulary and trie nodes: keys are close to
// uniform). Returns the index or UINT64_MAX. The range shrinks every step, so unsorted (damaged)
// keys still end the loop, just without finding.
// The index interpolation_find reads first among [lo, hi) (lo < hi).
uint64_t interpolation_pivot(uint64_t lo, uint64_t hi, uint64_t low_key, uint64_t high_key, uint64_t key) {
  if (key < low_key || key > high_key) return lo + (hi - lo) / 2;
  const uint64_t offset = key - low_key, range = high_key - low_key, width = hi - lo;
  uint64_t pivot;
  if (((offset | width) >> 32) == 0 && range < UINT64_MAX) {
    pivot = lo + offset * width / (range + 1);  // word ids: exact in 64 bits
  } else {
    pivot = lo + static_cast<uint64_t>(static_cast<double>(offset) / (static_cast<double>(range) + 1.0) *
                                       static_cast<double>(width));  // hashes
  }
  return pivot >= hi ? hi - 1 : pivot;
}

template <typename KeyAt>
uint64_t interpolation_find(uint64_t lo, uint64_t hi, uint64_t low_key, uint64_t high_key, uint64_t key,
                            const KeyAt& key_at) {
  while (lo < hi) {
    const uint64_t pivot = interpolation_pivot(lo, hi, low_key, high_key, key);
    const uint64_t found = key_at(pivot);
    if (found < key) {
      lo = pivot + 1;
      low_key = found + 1;
    } else if (found > key) {
      hi = pivot;
      high_key = found - 1;
    } else {
      return pivot;
    }
  }
  return UINT64_MAX;
}

}  // namespace

const char* model_type_name(int32_t type) {
  switch (type) {
    case kProbing:
      return "probing hash tables";
    case kRestProbing:
      return "probing hash tables with rest costs";
    case kTrie:
      return "trie";
    case kQuantTrie:
      return "trie with quantization";
    case kArrayTrie:
      return "trie with array-compressed pointers";
    case kQuantArrayTrie:
      return "trie with quantization and array-compressed pointers";
    default:
      return "unknown";
  }
}

bool has_binary_magic(const char* data, size_t size) {
  const size_t n = sizeof(kMagicPrefix) - 1;
  return size >= n && std::memcmp(data, kMagicPrefix, n) == 0;
}

uint64_t murmur_hash64a(const void* key, size_t length, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ull;
  constexpr int r = 47;
  const auto* bytes = static_cast<const uint8_t*>(key);
  uint64_t h = seed ^ (static_cast<uint64_t>(length) * m);
  const size_t blocks = length / 8;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k = load<uint64_t>(bytes + 8 * i);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  const uint8_t* tail = bytes + 8 * blocks;
  const size_t rest = length & 7;
  if (rest > 0) {
    for (size_t i = rest; i-- > 0;) h ^= static_cast<uint64_t>(tail[i]) << (8 * i);
    h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

uint8_t required_bits(uint64_t max_value) {
  uint8_t bits = 0;
  while (max_value) {
    ++bits;
    max_value >>= 1;
  }
  return bits;
}

// ---------------------------------------------------------------------------------------------
// Layout: section sizes as KenLM computes them

size_t Layout::header_bytes() const { return align8(kSanityBytes + kFixedBytes + 8 * counts.size()); }

uint64_t Layout::probing_buckets(uint64_t entries) const {
  const auto scaled = static_cast<uint64_t>(probing_multiplier * static_cast<float>(entries));
  return std::max(entries + 1, scaled);
}

uint64_t Layout::vocab_bytes() const {
  if (trie()) return 8 + 8 * counts[0];
  return 8 + probing_buckets(counts[0]) * 12;
}

uint64_t Layout::unigram_bytes() const {
  if (trie()) return (counts[0] + 2) * 16;
  return (counts[0] + 1) * (type == kRestProbing ? 12 : 8);
}

uint64_t Layout::quant_bytes() const {
  if (!quantized()) return 0;
  const uint64_t longest = (uint64_t{1} << prob_bits) * 4;
  const uint64_t middle = (uint64_t{1} << backoff_bits) * 4 + longest;
  return static_cast<uint64_t>(order - 2) * middle + longest + 8;
}

uint8_t Layout::chop_bits(int n) const {
  if (!array_pointers()) return 0;
  const uint64_t max_offset = counts[n - 1] + 1;
  const uint64_t max_next = counts[n];
  const uint8_t required = required_bits(max_next);
  uint8_t best = 0;
  int64_t lowest = std::numeric_limits<int64_t>::max();
  for (uint8_t chop = 0; chop <= std::min(required, pointer_bits); ++chop) {
    const int64_t change =
        static_cast<int64_t>((max_next >> (required - chop)) * 64) - static_cast<int64_t>(max_offset) * chop;
    if (change < lowest) {
      lowest = change;
      best = chop;
    }
  }
  return best;
}

uint8_t Layout::inline_pointer_bits(int n) const { return required_bits(counts[n]) - chop_bits(n); }

uint64_t Layout::offset_array_length(int n) const {
  if (!array_pointers()) return 0;
  const uint8_t required = required_bits(counts[n]);
  return (counts[n] >> (required - chop_bits(n))) + 1;
}

uint64_t Layout::middle_bytes(int n) const {
  const uint64_t entries = counts[n - 1];
  const uint64_t total_bits = required_bits(counts[0]) + middle_value_bits() + inline_pointer_bits(n);
  const uint64_t packed = ((1 + entries) * total_bits + 7) / 8 + 8;
  const uint64_t array = array_pointers() ? 8 * (1 + offset_array_length(n)) + 7 : 0;
  return array + packed;
}

uint64_t Layout::longest_bytes() const {
  const uint64_t total_bits = required_bits(counts[0]) + longest_value_bits();
  return ((1 + counts.back()) * total_bits + 7) / 8 + 8;
}

uint64_t Layout::order_bytes(int n) const {
  if (n == 1) return unigram_bytes();
  if (trie()) return n == order ? longest_bytes() : middle_bytes(n);
  const uint64_t stride = n == order ? 12 : (type == kRestProbing ? 20 : 16);
  return probing_buckets(counts[n - 1]) * stride;
}

uint64_t Layout::search_bytes() const {
  uint64_t bytes = quant_bytes();
  for (int n = 1; n <= order; ++n) bytes += order_bytes(n);
  return bytes;
}

uint64_t Layout::strings_offset() const { return header_bytes() + vocab_bytes() + search_bytes(); }

std::string header_bytes(const Layout& layout) {
  std::string out(layout.header_bytes(), '\0');
  char* p = out.data();
  std::memcpy(p, kMagic, sizeof(kMagic) - 1);
  const float floats[3] = {0.0f, 1.0f, -0.5f};
  const uint32_t ints[3] = {1u, 0xFFFFFFFFu, 0u};
  const uint64_t one = 1;
  std::memcpy(p + 56, floats, 12);
  std::memcpy(p + 68, ints, 12);
  std::memcpy(p + 80, &one, 8);
  p += kSanityBytes;
  const auto order = static_cast<uint8_t>(layout.order);
  std::memcpy(p, &order, 1);
  std::memcpy(p + 4, &layout.probing_multiplier, 4);
  std::memcpy(p + 8, &layout.type, 4);
  const uint8_t has_vocabulary = layout.has_vocabulary ? 1 : 0;
  std::memcpy(p + 12, &has_vocabulary, 1);
  const uint32_t version = layout.search_version();
  std::memcpy(p + 16, &version, 4);
  std::memcpy(p + kFixedBytes, layout.counts.data(), 8 * layout.counts.size());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Opening and checking a file

KenlmBinary::~KenlmBinary() {
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
}

void KenlmBinary::corrupt(const std::string& what) const { throw InputFileError(path_, -1, what); }

std::shared_ptr<const KenlmBinary> KenlmBinary::open(const std::string& path) {
  std::shared_ptr<KenlmBinary> model(new KenlmBinary());
  model->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    throw FileReadError(path, error, std::strerror(error));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throw FileReadError(path, error, std::strerror(error));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw FileReadError(path, EISDIR, std::strerror(EISDIR));
  }
  model->size_ = static_cast<uint64_t>(st.st_size);
  if (model->size_ > 0) {
    void* mapped = mmap(nullptr, model->size_, PROT_READ, MAP_SHARED, fd, 0);
    const int error = errno;
    ::close(fd);
    if (mapped == MAP_FAILED) throw FileReadError(path, error, std::strerror(error));
    model->data_ = static_cast<const uint8_t*>(mapped);
  } else {
    ::close(fd);
  }
  model->check_and_index();
  return model;
}

void KenlmBinary::check_and_index() {
  const auto* text = reinterpret_cast<const char*>(data_);
  if (size_ >= sizeof(kMagicIncomplete) - 1 &&
      std::memcmp(text, kMagicIncomplete, sizeof(kMagicIncomplete) - 1) == 0) {
    corrupt("this KenLM binary file did not finish building (its header says 'incomplete')");
  }
  if (!has_binary_magic(text, size_)) corrupt("not a KenLM binary file (no 'mmap lm' magic line)");
  const size_t version_prefix = sizeof(kMagicVersionPrefix) - 1;
  if (size_ < kMagicBytes || std::memcmp(text, kMagic, kMagicBytes) != 0) {
    if (size_ > version_prefix && std::memcmp(text, kMagicVersionPrefix, version_prefix) == 0) {
      const char* digits = text + version_prefix;
      const char* end = text + std::min<uint64_t>(size_, version_prefix + 12);
      while (digits < end && *digits == ' ') ++digits;
      std::string version;
      while (digits < end && *digits >= '0' && *digits <= '9') version += *digits++;
      if (!version.empty() && version != "5") {
        corrupt("KenLM binary format version " + version + "; this reader supports version 5");
      }
    }
    corrupt("truncated or damaged KenLM binary header (" + std::to_string(size_) + " bytes)");
  }
  if (size_ < kSanityBytes + kFixedBytes) {
    corrupt("truncated KenLM binary: " + std::to_string(size_) + " bytes, the header alone needs " +
            std::to_string(kSanityBytes + kFixedBytes));
  }
  // The sanity block: written by the machine that built the file, compared here byte for byte.
  std::string reference = [] {
    Layout probe;
    probe.counts = {1};
    return header_bytes(probe).substr(0, kSanityBytes);
  }();
  if (std::memcmp(data_, reference.data(), kSanityBytes) != 0) {
    uint32_t one;
    std::memcpy(&one, data_ + 68, 4);
    if (one == 0x01000000u)
      corrupt("KenLM binary built on a big-endian machine; rebuild it from the ARPA file");
    corrupt(
        "the sanity block of this KenLM binary does not match (another byte order, word size or layout); "
        "rebuild it from the ARPA file");
  }
  const uint8_t* p = data_ + kSanityBytes;
  layout_.order = p[0];
  layout_.probing_multiplier = load<float>(p + 4);
  layout_.type = load<int32_t>(p + 8);
  layout_.has_vocabulary = p[12] != 0;
  const uint32_t search_version = load<uint32_t>(p + 16);
  if (layout_.type < kProbing || layout_.type > kQuantArrayTrie) {
    corrupt("unknown KenLM model type " + std::to_string(layout_.type));
  }
  if (!(layout_.probing_multiplier >= 1.0f) || !std::isfinite(layout_.probing_multiplier)) {
    corrupt("probing multiplier " + std::to_string(layout_.probing_multiplier) + " is below 1.0");
  }
  if (layout_.order < 2)
    corrupt("order " + std::to_string(layout_.order) + " (KenLM binaries have order >= 2)");
  if (layout_.order > kMaxOrder) {
    corrupt("order " + std::to_string(layout_.order) + " is above the supported maximum " +
            std::to_string(kMaxOrder));
  }
  if (search_version != layout_.search_version()) {
    corrupt(std::string(model_type_name(layout_.type)) + " search version " + std::to_string(search_version) +
            " (expected " + std::to_string(layout_.search_version()) + ")");
  }
  layout_.counts.assign(layout_.order, 0);
  const uint64_t header = layout_.header_bytes();
  if (size_ < header) {
    corrupt("truncated KenLM binary: " + std::to_string(size_) + " bytes, the header needs " +
            std::to_string(header));
  }
  for (int n = 0; n < layout_.order; ++n) {
    layout_.counts[n] = load<uint64_t>(p + kFixedBytes + 8 * n);
    // Every n-gram takes at least a few bits: larger counts cannot fit and would overflow sizes.
    if (layout_.counts[n] > size_ * 8) {
      corrupt("the header declares " + std::to_string(layout_.counts[n]) + " " + std::to_string(n + 1) +
              "-grams, more than a file of " + std::to_string(size_) + " bytes can hold");
    }
  }
  if (layout_.counts[0] == 0 || layout_.counts[0] >= 0xFFFFFFFFull) {
    corrupt("the header declares " + std::to_string(layout_.counts[0]) + " unigrams (KenLM ids are 32-bit)");
  }
  const uint64_t vocab_at = header;
  uint64_t search_at = vocab_at + layout_.vocab_bytes();
  // Parameters of quantization and pointer compression sit at the start of their sections.
  if (layout_.trie()) {
    uint64_t at = search_at;
    if (layout_.quantized()) {
      if (size_ < at + 3) corrupt("truncated KenLM binary: the quantization parameters are missing");
      if (data_[at] != 2) corrupt("quantization version " + std::to_string(data_[at]) + " (expected 2)");
      layout_.prob_bits = data_[at + 1];
      layout_.backoff_bits = data_[at + 2];
      if (layout_.prob_bits == 0 || layout_.prob_bits > 25 || layout_.backoff_bits == 0 ||
          layout_.backoff_bits > 25) {
        corrupt("quantization with " + std::to_string(layout_.prob_bits) + " probability and " +
                std::to_string(layout_.backoff_bits) + " backoff bits (each must be 1..25)");
      }
    }
    if (layout_.array_pointers() && layout_.order > 2) {
      at += layout_.quant_bytes() + layout_.unigram_bytes();
      if (size_ < at + 2) corrupt("truncated KenLM binary: the pointer compression parameters are missing");
      if (data_[at] != 0)
        corrupt("pointer compression version " + std::to_string(data_[at]) + " (expected 0)");
      layout_.pointer_bits = data_[at + 1];
    }
  }
  bool overflow = false;
  uint64_t end = search_at;
  const uint64_t quant_at = end;
  end = checked_add(end, layout_.quant_bytes(), &overflow);
  std::vector<uint64_t> order_at(layout_.order + 1);
  for (int n = 1; n <= layout_.order; ++n) {
    order_at[n] = end;
    end = checked_add(end, layout_.order_bytes(n), &overflow);
  }
  if (overflow || end > size_) {
    // Name the first section that does not fit.
    std::string section = "vocabulary";
    if (vocab_at + layout_.vocab_bytes() <= size_) {
      section = "quantization tables";
      for (int n = 1; n <= layout_.order; ++n) {
        if (order_at[n] <= size_) section = std::to_string(n) + "-grams";
      }
    }
    corrupt("truncated KenLM binary: " + std::to_string(size_) + " bytes, but the header's counts need " +
            (overflow ? std::string("more than 2^64") : std::to_string(end)) + " (the " + section +
            " section is cut off)");
  }

  // Vocabulary.
  if (layout_.trie()) {
    sorted_count_ = load<uint64_t>(data_ + vocab_at);
    if (sorted_count_ + 1 > layout_.counts[0]) {
      corrupt("the vocabulary holds " + std::to_string(sorted_count_) + " words, more than the " +
              std::to_string(layout_.counts[0]) + " unigrams");
    }
    sorted_hashes_ = data_ + vocab_at + 8;
    bound_ = static_cast<WordId>(sorted_count_ + 1);
  } else {
    const uint32_t version = load<uint32_t>(data_ + vocab_at);
    if (version != 0) corrupt("probing vocabulary version " + std::to_string(version) + " (expected 0)");
    bound_ = load<uint32_t>(data_ + vocab_at + 4);
    if (bound_ == 0 || bound_ > layout_.counts[0] + 1) {
      corrupt("the vocabulary declares " + std::to_string(bound_) + " words for " +
              std::to_string(layout_.counts[0]) + " unigrams");
    }
    vocab_table_ = data_ + vocab_at + 8;
    vocab_buckets_ = layout_.probing_buckets(layout_.counts[0]);
  }

  // Search sections.
  unigrams_ = data_ + order_at[1];
  unigram_stride_ = layout_.trie() ? 16 : (layout_.type == kRestProbing ? 12 : 8);
  if (layout_.trie()) {
    const float* bins = reinterpret_cast<const float*>(data_ + quant_at + 8);
    packed_.resize(layout_.order - 1);
    for (int n = 2; n <= layout_.order; ++n) {
      Packed& t = packed_[n - 2];
      const uint8_t* section = data_ + order_at[n];
      t.entries = layout_.counts[n - 1];
      t.word_bits = required_bits(layout_.counts[0]);
      if (n < layout_.order) {
        t.value_bits = layout_.middle_value_bits();
        t.inline_bits = layout_.inline_pointer_bits(n);
        if (layout_.array_pointers()) {
          const uint64_t aligned = align8(order_at[n]);
          t.offsets = data_ + aligned + 8;
          t.offsets_length = layout_.offset_array_length(n);
          section += 8 * (1 + t.offsets_length) + 7;
        }
      } else {
        t.value_bits = layout_.longest_value_bits();
      }
      t.total_bits = t.word_bits + t.value_bits + t.inline_bits;
      t.base = section;
      if (layout_.quantized()) {
        const uint64_t p = uint64_t{1} << layout_.prob_bits, b = uint64_t{1} << layout_.backoff_bits;
        if (n < layout_.order) {
          t.prob_bins = bins + (n - 2) * (p + b);
          t.backoff_bins = t.prob_bins + p;
        } else {
          t.prob_bins = bins + (n - 2) * (p + b);
        }
      }
    }
  } else {
    tables_.resize(layout_.order - 1);
    for (int n = 2; n <= layout_.order; ++n) {
      Table& t = tables_[n - 2];
      t.base = data_ + order_at[n];
      t.buckets = layout_.probing_buckets(layout_.counts[n - 1]);
      t.stride = n == layout_.order ? 12 : (layout_.type == kRestProbing ? 20 : 16);
    }
  }

  // The words at the end, in KenLM id order.
  if (layout_.has_vocabulary) {
    uint64_t at = end;
    word_offsets_.reserve(bound_);
    while (at < size_ && word_offsets_.size() < bound_) {
      const void* nul = std::memchr(data_ + at, '\0', size_ - at);
      if (nul == nullptr) break;
      word_offsets_.push_back(at);
      at = static_cast<uint64_t>(static_cast<const uint8_t*>(nul) - data_) + 1;
    }
    if (word_offsets_.size() != bound_) {
      corrupt("truncated KenLM binary: " + std::to_string(word_offsets_.size()) + " of the " +
              std::to_string(bound_) + " vocabulary words are present");
    }
    if (std::strcmp(reinterpret_cast<const char*>(data_ + word_offsets_[0]), "<unk>") != 0) {
      corrupt("the vocabulary words are not where the header puts them (the first is not <unk>)");
    }
  }

  // <s> and </s> move to our ids 1 and 2.
  const WordId bos = kenlm_index("<s>");
  const WordId eos = kenlm_index("</s>");
  if (bos == 0 || eos == 0) corrupt("the vocabulary lacks <s> or </s> (built with build_binary -s?)");
  swap1_a_ = 1;
  swap1_b_ = bos;
  const WordId eos_after_first = eos == 1 ? bos : (eos == bos ? 1 : eos);
  swap2_a_ = 2;
  swap2_b_ = eos_after_first;
  if (bound_ < 3) corrupt("the vocabulary has fewer than 3 words");
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

WordId KenlmBinary::kenlm_index(std::string_view word) const {
  const uint64_t hash = word_hash(word);
  if (vocab_table_ != nullptr) {
    uint64_t i = hash % vocab_buckets_;
    for (uint64_t probes = 0; probes < vocab_buckets_; ++probes) {
      const uint8_t* entry = vocab_table_ + i * 12;
      const uint64_t key = load<uint64_t>(entry);
      if (key == hash) {
        const uint32_t id = load<uint32_t>(entry + 8);
        if (id >= bound_)
          corrupt("vocabulary entry with id " + std::to_string(id) + " >= " + std::to_string(bound_));
        return id;
      }
      if (key == 0) return 0;
      if (++i == vocab_buckets_) i = 0;
    }
    return 0;
  }
  // Sorted hashes (uniform, so interpolation finds a word in a few probes).
  const uint64_t index = interpolation_find(0, sorted_count_, 0, UINT64_MAX, hash, [&](uint64_t i) {
    return load<uint64_t>(sorted_hashes_ + 8 * i);
  });
  if (index != UINT64_MAX) return static_cast<WordId>(index + 1);
  return 0;
}

WordId KenlmBinary::find(std::string_view word) const {
  const WordId k = kenlm_index(word);
  if (k == 0) return word == "<unk>" ? kUnkId : StringIds::kNotFound;
  return to_ours(k);
}

std::string_view KenlmBinary::word(WordId id) const {
  if (word_offsets_.empty()) {
    throw InputFileError(path_, -1,
                         "this KenLM binary has no vocabulary strings (built with build_binary -v)");
  }
  return std::string_view(reinterpret_cast<const char*>(data_ + word_offsets_[to_kenlm(id)]));
}

// ---------------------------------------------------------------------------------------------
// Lookups

KenlmBinary::Found KenlmBinary::lookup_unigram(WordId w, Node* node) const {
  Found f;
  f.found = true;
  const uint8_t* entry = unigrams_ + static_cast<uint64_t>(w) * unigram_stride_;
  const float prob = load<float>(entry);
  f.backoff = load<float>(entry + 4);
  if (layout_.trie()) {
    f.prob = prob;
    node->begin = load<uint64_t>(entry + 8);
    node->end = load<uint64_t>(entry + 8 + 16);
    const uint64_t next_entries = packed_[0].entries;
    if (__builtin_expect(node->begin > node->end || node->end > next_entries, 0)) {
      corrupt("unigram " + std::to_string(w) + " points at 2-grams [" + std::to_string(node->begin) + ", " +
              std::to_string(node->end) + ") of " + std::to_string(next_entries));
    }
    f.independent_left = node->begin == node->end;
  } else {
    f.prob = bits_float(float_bits(prob) | kSignBit);
    f.independent_left = (float_bits(prob) & kSignBit) != 0;
    node->begin = w;
  }
  return f;
}

uint64_t KenlmBinary::trie_word(int n, uint64_t index) const {
  const Packed& t = packed_[n - 2];
  return read_bits(t.base, index * t.total_bits, t.word_bits);
}

float KenlmBinary::trie_prob(int n, uint64_t index) const {
  const Packed& t = packed_[n - 2];
  const uint64_t at = index * t.total_bits + t.word_bits;
  if (t.prob_bins != nullptr) {
    const uint8_t shift = n < layout_.order ? layout_.backoff_bits : 0;
    return t.prob_bins[read_bits(t.base, at + shift, layout_.prob_bits)];
  }
  return bits_float(static_cast<uint32_t>(read_bits(t.base, at, 31)) | kSignBit);
}

float KenlmBinary::trie_backoff(int n, uint64_t index) const {
  const Packed& t = packed_[n - 2];
  const uint64_t at = index * t.total_bits + t.word_bits;
  if (t.backoff_bins != nullptr) return t.backoff_bins[read_bits(t.base, at, layout_.backoff_bits)];
  return bits_float(static_cast<uint32_t>(read_bits(t.base, at + 31, 32)));
}

void KenlmBinary::trie_next(int n, uint64_t index, Node* node) const {
  const Packed& t = packed_[n - 2];
  const uint64_t at = index * t.total_bits + t.word_bits + t.value_bits;
  uint64_t begin = read_bits(t.base, at, t.inline_bits);
  uint64_t end = read_bits(t.base, at + t.total_bits, t.inline_bits);
  if (t.offsets != nullptr) {
    // The high bits: the number of offsets <= index, minus one (offsets[0] is 0).
    const auto offset = [&](uint64_t i) { return load<uint64_t>(t.offsets + 8 * i); };
    uint64_t lo = 0, hi = t.offsets_length;  // first offset > index
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (offset(mid) <= index) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo == 0) corrupt(std::to_string(n) + "-gram pointer offsets do not start at 0");
    const uint64_t high_begin = lo - 1;
    uint64_t high_end = high_begin + 1;
    while (high_end < t.offsets_length && offset(high_end) <= index + 1) ++high_end;
    --high_end;
    begin |= high_begin << t.inline_bits;
    end |= high_end << t.inline_bits;
  }
  const uint64_t next_entries = packed_[n - 1].entries;
  if (__builtin_expect(begin > end || end > next_entries, 0)) {
    corrupt(std::to_string(n) + "-gram " + std::to_string(index) + " points at " + std::to_string(n + 1) +
            "-grams [" + std::to_string(begin) + ", " + std::to_string(end) + ") of " +
            std::to_string(next_entries));
  }
  node->begin = begin;
  node->end = end;
}

uint64_t KenlmBinary::trie_find(int n, uint64_t begin, uint64_t end, WordId w) const {
  return interpolation_find(begin, end, 0, layout_.counts[0], w, [&](uint64_t i) { return trie_word(n, i); });
}

KenlmBinary::Found KenlmBinary::lookup_middle(int order_minus_2, WordId w, Node* node) const {
  Found f;
  const int n = order_minus_2 + 2;
  if (layout_.trie()) {
    const uint64_t index = trie_find(n, node->begin, node->end, w);
    if (index == UINT64_MAX) return f;
    f.found = true;
    f.prob = trie_prob(n, index);
    f.backoff = trie_backoff(n, index);
    trie_next(n, index, node);
    f.independent_left = node->begin == node->end;
    return f;
  }
  const uint64_t key = combine_word_hash(node->begin, w);
  node->begin = key;
  return probe_middle(order_minus_2, key);
}

const uint8_t* KenlmBinary::probe(int i, uint64_t key) const {
  const Table& t = tables_[i];
  uint64_t slot = key % t.buckets;
  for (uint64_t probes = 0; probes < t.buckets; ++probes) {
    const uint8_t* entry = t.base + slot * t.stride;
    const uint64_t stored = load<uint64_t>(entry);
    if (stored == key) return entry;
    if (stored == 0) return nullptr;
    if (++slot == t.buckets) slot = 0;
  }
  return nullptr;
}

KenlmBinary::Found KenlmBinary::probe_middle(int i, uint64_t key) const {
  Found f;
  const uint8_t* entry = probe(i, key);
  if (entry == nullptr) return f;
  const float prob = load<float>(entry + 8);
  f.found = true;
  f.prob = bits_float(float_bits(prob) | kSignBit);
  f.backoff = load<float>(entry + 12);
  f.independent_left = (float_bits(prob) & kSignBit) != 0;
  return f;
}

bool KenlmBinary::lookup_longest(WordId w, const Node& node, float* prob) const {
  const int n = layout_.order;
  if (layout_.trie()) {
    const uint64_t index = trie_find(n, node.begin, node.end, w);
    if (index == UINT64_MAX) return false;
    *prob = trie_prob(n, index);
    return true;
  }
  return probe_longest(combine_word_hash(node.begin, w), prob);
}

bool KenlmBinary::probe_longest(uint64_t key, float* prob) const {
  const uint8_t* entry = probe(layout_.order - 2, key);
  if (entry != nullptr) *prob = bits_float(float_bits(load<float>(entry + 8)) | kSignBit);
  return entry != nullptr;
}

// ---------------------------------------------------------------------------------------------
// Scores: KenLM's FullScore (lm/model.cc: ScoreExceptBackoff, ResumeScore, then the backoffs)

NgramModel::State KenlmBinary::begin_sentence_state() const {
  NgramModel::State s;
  Node node;
  s.length = 1;
  s.words[0] = kBosId;
  s.backoff[0] = lookup_unigram(to_kenlm(kBosId), &node).backoff;
  return s;
}

// The steps of the lookup core (lm/ngram_lookup.h) over the file's tables: each step moves `node`
// to the next order's entries of the history.
struct KenlmBinary::Steps {
  const KenlmBinary& file;
  WordId w;               // KenLM id
  const WordId* history;  // our ids, most recent first
  Node node;

  ngram_lookup::LookupStep unigram() {
    const Found f = file.lookup_unigram(w, &node);
    return {true, !f.independent_left, f.prob, f.backoff};
  }
  ngram_lookup::LookupStep middle(int i) {
    const Found f = file.lookup_middle(i, file.to_kenlm(history[i]), &node);
    return {f.found, !f.independent_left, f.prob, f.backoff};
  }
  bool longest(int i, float* prob) { return file.lookup_longest(file.to_kenlm(history[i]), node, prob); }
};

NgramModel::FullScore KenlmBinary::score_word(const NgramModel::State& in, WordId w,
                                              NgramModel::State* out) const {
  Steps steps{*this, to_kenlm(w), in.words, Node()};
  return ngram_lookup::score_state(steps, layout_.order, in, w, out);
}

NgramModel::FullScore KenlmBinary::score_context(const WordId* context, int length, WordId w,
                                                 WordId* out_context, int* out_length) const {
  // The state of the context: its words with their backoffs, as far as they are stored (a
  // context that is not stored cannot begin a longer match and has backoff 0).
  NgramModel::State in;
  if (length > 0) {
    Node node;
    in.words[0] = context[0];
    Found f = lookup_unigram(to_kenlm(context[0]), &node);
    in.backoff[0] = f.backoff;
    in.length = 1;
    for (int i = 1; i < length && i < layout_.order - 1 && !f.independent_left; ++i) {
      f = lookup_middle(i - 1, to_kenlm(context[i]), &node);
      if (!f.found) break;
      in.words[i] = context[i];
      in.backoff[i] = f.backoff;
      in.length = static_cast<uint8_t>(i + 1);
    }
  }
  NgramModel::State out;
  const NgramModel::FullScore result = score_word(in, w, &out);
  for (int j = 0; j < out.length; ++j) out_context[j] = out.words[j];
  *out_length = out.length;
  return result;
}

// The stages of lm/ngram_pipeline.h over the file: a probing file's keys are all computed when a
// word enters (each order's key extends the last one's); a trie's lookup of order n needs the
// child range that order n - 1 found, so its first interpolation probe is what is prefetched.
struct KenlmBinary::PipelineStore {
  struct Cursor {
    Node node;                      // trie: the child range of the longest match so far
    uint64_t keys[kMaxOrder - 1];   // probing: keys[i] is the (i + 2)-gram's
    WordId history[kMaxOrder - 1];  // trie: the history words, KenLM ids
  };
  const KenlmBinary& file;

  ngram_lookup::LookupStep start(WordId w, const WordId* history, int depth, Cursor* c) const {
    const Found f = file.lookup_unigram(file.to_kenlm(w), &c->node);
    if (file.layout_.trie()) {
      for (int i = 0; i < depth; ++i) c->history[i] = file.to_kenlm(history[i]);
    } else {
      uint64_t key = c->node.begin;
      for (int i = 0; i < depth; ++i) c->keys[i] = key = combine_word_hash(key, file.to_kenlm(history[i]));
    }
    return {true, !f.independent_left, f.prob, f.backoff};
  }
  // Always inlined: GCC drops calls to an outlined void function whose only effect is a
  // prefetch (it counts as const).
  [[gnu::always_inline]] void prefetch(const Cursor& c, int i) const {
    if (file.layout_.trie()) {
      if (c.node.begin == c.node.end) return;
      const Packed& t = file.packed_[i];
      const uint64_t pivot =
          interpolation_pivot(c.node.begin, c.node.end, 0, file.layout_.counts[0], c.history[i]);
      __builtin_prefetch(t.base + ((pivot * t.total_bits) >> 3));
    } else {
      const Table& t = file.tables_[i];
      __builtin_prefetch(t.base + (c.keys[i] % t.buckets) * t.stride);
    }
  }
  ngram_lookup::LookupStep middle(Cursor* c, int i) const {
    const Found f = file.layout_.trie() ? file.lookup_middle(i, c->history[i], &c->node)
                                        : file.probe_middle(i, c->keys[i]);
    return {f.found, !f.independent_left, f.prob, f.backoff};
  }
  bool longest(Cursor* c, int i, float* prob) const {
    return file.layout_.trie() ? file.lookup_longest(c->history[i], c->node, prob)
                               : file.probe_longest(c->keys[i], prob);
  }
};

void KenlmBinary::score_packed(const NgramModel::State& start, const WordId* ids, const int64_t* offsets,
                               int64_t first, int64_t last, bool bos, bool eos, double* out) const {
  ngram_pipeline::score_packed(PipelineStore{*this}, layout_.order, start, ids, offsets, first, last, bos,
                               eos, out);
}

// ---------------------------------------------------------------------------------------------
// Walking a trie

void KenlmBinary::for_each_ngram(
    const std::function<void(int, const WordId*, float, float)>& on_ngram) const {
  if (!layout_.trie()) {
    throw InputFileError(
        path_, -1,
        "a probing KenLM binary stores hashes of n-grams, not their words: only a trie can be "
        "written back as ARPA");
  }
  const int order = layout_.order;
  WordId words[kMaxOrder];
  // Unigrams by id (ours).
  for (WordId id = 0; id < bound_; ++id) {
    Node node;
    const Found f = lookup_unigram(to_kenlm(id), &node);
    words[0] = id;
    on_ngram(1, words, f.prob, f.backoff);
  }
  // Order n: depth-first from each unigram down n - 1 levels; a record at level n is reached
  // through its parent's child range, so its words are recovered newest-last.
  for (int n = 2; n <= order; ++n) {
    WordId path[kMaxOrder];
    std::vector<Node> ranges(n);
    for (WordId id = 0; id < bound_; ++id) {
      Node node;
      lookup_unigram(to_kenlm(id), &node);
      path[0] = id;  // the newest word
      // Iterative DFS over levels 2..n.
      std::vector<uint64_t> cursor(n + 1, 0);
      ranges[1] = node;
      int level = 2;
      cursor[2] = ranges[1].begin;
      while (level >= 2) {
        if (cursor[level] >= ranges[level - 1].end) {
          --level;
          if (level >= 2) ++cursor[level];
          continue;
        }
        const uint64_t index = cursor[level];
        path[level - 1] = to_ours(static_cast<WordId>(trie_word(level, index)));
        if (level == n) {
          for (int k = 0; k < n; ++k) words[k] = path[n - 1 - k];
          on_ngram(n, words, trie_prob(n, index), n < order ? trie_backoff(n, index) : 0.0f);
          ++cursor[level];
          continue;
        }
        trie_next(level, index, &ranges[level]);
        ++level;
        cursor[level] = ranges[level - 1].begin;
      }
    }
  }
}

}  // namespace kenlm
}  // namespace speechdecode
