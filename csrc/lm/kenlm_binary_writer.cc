// Writing KenLM binary files: see kenlm_binary.h for the layout. The builder reproduces the
// choices of KenLM's build_binary so that the kenlm module scores our file as it scores its own:
// probing tables filled in file order with linear probing, missing suffixes inserted as KenLM's
// loader inserts them; tries sorted by reversed n-gram, missing suffixes added with the
// backed-off probability, and quantization bins trained as Federico and Bertoldi's equal-size
// binning that KenLM uses (sorted values cut into equal counts, each bin its mean).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "lm/arpa_writer.h"
#include "lm/kenlm_binary.h"

namespace speechdecode {
namespace kenlm {

namespace {

constexpr uint32_t kSign = 0x80000000u;

uint32_t fbits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float bfloat(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
// A backoff of 0 is stored as -0.0 ("nothing extends this n-gram") until something does.
float initial_backoff(float b) { return b == 0.0f ? -0.0f : b; }
void set_extension(float& b) {
  if (fbits(b) == kSign) b = 0.0f;
}

uint64_t align8(uint64_t n) { return (n + 7) / 8 * 8; }

class Buffer {
 public:
  explicit Buffer(uint64_t size) : bytes_(size, 0) {}
  uint8_t* at(uint64_t offset) { return bytes_.data() + offset; }
  template <typename T>
  void put(uint64_t offset, T value) {
    std::memcpy(at(offset), &value, sizeof value);
  }
  template <typename T>
  T get(uint64_t offset) const {
    T v;
    std::memcpy(&v, bytes_.data() + offset, sizeof v);
    return v;
  }
  // ORs value (< 2^57) into the zeroed bits starting at bit of the section at offset.
  void put_bits(uint64_t offset, uint64_t bit, uint64_t value) {
    uint8_t* p = at(offset + (bit >> 3));
    uint64_t word;
    std::memcpy(&word, p, 8);
    word |= value << (bit & 7);
    std::memcpy(p, &word, 8);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

void write_all(int fd, const std::string& name, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      throw FileWriteError(name, error, std::strerror(error));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

// Ids: ours (<unk> 0, <s> 1, </s> 2, then file order) to KenLM's.
std::vector<WordId> kenlm_ids(const ArpaContents& c, bool sorted) {
  const size_t vocab = c.vocab.size();
  std::vector<WordId> order(vocab - 1);
  std::iota(order.begin(), order.end(), WordId{1});
  if (sorted) {
    std::sort(order.begin(), order.end(), [&](WordId a, WordId b) {
      return word_hash(c.vocab.string(a)) < word_hash(c.vocab.string(b));
    });
  } else {
    std::sort(order.begin(), order.end(),
              [&](WordId a, WordId b) { return c.unigram_lines[a] < c.unigram_lines[b]; });
  }
  std::vector<WordId> ids(vocab, 0);
  for (size_t k = 0; k < order.size(); ++k) ids[order[k]] = static_cast<WordId>(k + 1);
  return ids;
}

std::string vocabulary_strings(const ArpaContents& c, const std::vector<WordId>& ids) {
  std::vector<WordId> by_kenlm(ids.size());
  for (size_t ours = 0; ours < ids.size(); ++ours) by_kenlm[ids[ours]] = static_cast<WordId>(ours);
  std::string out("<unk>", 6);
  for (size_t k = 1; k < by_kenlm.size(); ++k) {
    out += c.vocab.string(by_kenlm[k]);
    out.push_back('\0');
  }
  return out;
}

[[noreturn]] void missing_context(const ArpaContents& c, int n, size_t i) {
  std::string context(c.vocab.string(c.orders[n - 2].words[i * n]));
  for (int k = 1; k < n - 1; ++k)
    context += " " + std::string(c.vocab.string(c.orders[n - 2].words[i * n + k]));
  throw ArpaFormatError(c.path, c.line_of(n, i),
                        "the context '" + context + "' of the " + std::to_string(n) + "-gram '" +
                            c.ngram_text(n, i) + "' is not a " + std::to_string(n - 1) +
                            "-gram (KenLM requires it too)");
}

// ---------------------------------------------------------------------------------------------
// Probing

class ProbingWriter {
 public:
  ProbingWriter(const ArpaContents& c, const Layout& layout)
      : c_(c), layout_(layout), out_(layout.strings_offset()) {}

  Buffer& build() {
    const int order = layout_.order;
    const std::vector<WordId> ids = kenlm_ids(c_, false);
    ids_ = &ids;
    const std::string header = header_bytes(layout_);
    std::memcpy(out_.at(0), header.data(), header.size());
    // Vocabulary table.
    uint64_t at = layout_.header_bytes();
    out_.put<uint32_t>(at, 0);
    out_.put<uint32_t>(at + 4, static_cast<uint32_t>(c_.vocab.size()));
    const uint64_t vocab_buckets = layout_.probing_buckets(layout_.counts[0]);
    const uint64_t table = at + 8;
    std::vector<WordId> by_kenlm(ids.size());
    for (size_t ours = 0; ours < ids.size(); ++ours) by_kenlm[ids[ours]] = static_cast<WordId>(ours);
    for (size_t k = 1; k < by_kenlm.size(); ++k) {
      const uint64_t hash = word_hash(c_.vocab.string(by_kenlm[k]));
      uint64_t i = hash % vocab_buckets;
      while (out_.get<uint64_t>(table + 12 * i) != 0) {
        if (++i == vocab_buckets) i = 0;
      }
      out_.put<uint64_t>(table + 12 * i, hash);
      out_.put<uint32_t>(table + 12 * i + 8, static_cast<uint32_t>(k));
    }
    at += layout_.vocab_bytes();
    // Unigrams by KenLM id.
    unigrams_ = at;
    for (size_t ours = 0; ours < ids.size(); ++ours) {
      float prob = c_.unigram_probs[ours];
      float backoff = initial_backoff(c_.unigram_backoffs[ours]);
      if (ours == kUnkId && !c_.unk_in_file) backoff = 0.0f;
      out_.put<float>(unigrams_ + 8 * ids[ours], prob);
      out_.put<float>(unigrams_ + 8 * ids[ours] + 4, backoff);
    }
    at += layout_.unigram_bytes();
    tables_.resize(order - 1);
    for (int n = 2; n <= order; ++n) {
      tables_[n - 2] = {at, layout_.probing_buckets(layout_.counts[n - 1]), n == order ? 12u : 16u, 0};
      at += layout_.order_bytes(n);
    }
    for (int n = 2; n <= order; ++n) insert_order(n);
    return out_;
  }

 private:
  struct Table {
    uint64_t base, buckets;
    uint32_t stride;
    uint64_t used;
  };

  // The entry of key, inserted (key written, rest zero) when absent.
  uint64_t find_or_insert(Table& t, uint64_t key, bool* found) {
    uint64_t i = key % t.buckets;
    for (;;) {
      const uint64_t entry = t.base + i * t.stride;
      const uint64_t stored = out_.get<uint64_t>(entry);
      if (stored == key) {
        *found = true;
        return entry;
      }
      if (stored == 0) {
        if (++t.used >= t.buckets) {
          throw ArpaFormatError(
              c_.path, 0,
              "too many missing lower-order n-grams for KenLM's probing tables (pruned like "
              "'bar baz quux' while 'foo bar baz quux' is kept); use a trie");
        }
        out_.put<uint64_t>(entry, key);
        *found = false;
        return entry;
      }
      if (++i == t.buckets) i = 0;
    }
  }
  uint64_t find(const Table& t, uint64_t key) const {
    uint64_t i = key % t.buckets;
    for (uint64_t probes = 0; probes < t.buckets; ++probes) {
      const uint64_t entry = t.base + i * t.stride;
      const uint64_t stored = out_.get<uint64_t>(entry);
      if (stored == key) return entry;
      if (stored == 0) return UINT64_MAX;
      if (++i == t.buckets) i = 0;
    }
    return UINT64_MAX;
  }
  void unset_sign(uint64_t prob_at) {
    out_.put<float>(prob_at, bfloat(fbits(out_.get<float>(prob_at)) & ~kSign));
  }
  void extend(uint64_t backoff_at) {
    float b = out_.get<float>(backoff_at);
    set_extension(b);
    out_.put<float>(backoff_at, b);
  }

  void insert_order(int n) {
    const ArpaOrder& o = c_.orders[n - 2];
    const bool longest = n == layout_.order;
    const std::vector<WordId>& ids = *ids_;
    WordId r[kMaxOrder];
    uint64_t keys[kMaxOrder];
    std::vector<uint64_t> between;  // prob offsets of the suffixes, longest first
    for (size_t i = 0; i < o.probs.size(); ++i) {
      for (int j = 0; j < n; ++j) r[j] = ids[o.words[i * n + n - 1 - j]];
      keys[0] = combine_word_hash(r[0], r[1]);
      for (int h = 1; h < n - 1; ++h) keys[h] = combine_word_hash(keys[h - 1], r[h + 1]);
      bool found = false;
      const uint64_t entry = find_or_insert(tables_[n - 2], keys[n - 2], &found);
      if (found) {
        throw ArpaFormatError(c_.path, c_.line_of(n, i),
                              "duplicate " + std::to_string(n) + "-gram '" + c_.ngram_text(n, i) + "'");
      }
      out_.put<float>(entry + 8, bfloat(fbits(o.probs[i]) | kSign));
      if (!longest) out_.put<float>(entry + 12, initial_backoff(o.backoffs[i]));
      // The suffixes: found, or inserted as blanks down to the longest one present.
      between.clear();
      for (int lower = n - 3;; --lower) {
        if (lower == -1) {
          between.push_back(unigrams_ + 8 * r[0]);
          break;
        }
        bool present = false;
        const uint64_t e = find_or_insert(tables_[lower], keys[lower], &present);
        if (!present) out_.put<float>(e + 12, -0.0f);
        between.push_back(e + 8);
        if (present) break;
      }
      if (between.size() > 1) {
        float prob = -std::fabs(out_.get<float>(between.back()));
        int basis = n - static_cast<int>(between.size());
        int change = static_cast<int>(between.size()) - 2;
        if (basis == 1) {
          const uint64_t backoff_at = unigrams_ + 8 * r[1] + 4;
          extend(backoff_at);
          prob += out_.get<float>(backoff_at);
          out_.put<float>(between[change], prob);
          basis = 2;
          --change;
        }
        uint64_t backoff_hash = r[1];
        for (int k = 2; k <= basis; ++k) backoff_hash = combine_word_hash(backoff_hash, r[k]);
        for (; basis < n - 1; ++basis, --change) {
          const uint64_t context = find(tables_[basis - 2], backoff_hash);
          if (context != UINT64_MAX) {
            extend(context + 12);
            prob += out_.get<float>(context + 12);
          }
          out_.put<float>(between[change], prob);
          backoff_hash = combine_word_hash(backoff_hash, r[basis + 1]);
        }
      }
      for (const uint64_t p : between) unset_sign(p);
      // The context w1..wn-1 must be stored; it now has an extension.
      if (n == 2) {
        extend(unigrams_ + 8 * r[1] + 4);
      } else {
        uint64_t hash = r[1];
        for (int k = 2; k < n; ++k) hash = combine_word_hash(hash, r[k]);
        const uint64_t context = find(tables_[n - 3], hash);
        if (context == UINT64_MAX) missing_context(c_, n, i);
        extend(context + 12);
      }
    }
  }

  const ArpaContents& c_;
  const Layout& layout_;
  Buffer out_;
  const std::vector<WordId>* ids_ = nullptr;
  uint64_t unigrams_ = 0;
  std::vector<Table> tables_;
};

// ---------------------------------------------------------------------------------------------
// Trie

// One order's n-grams as reversed KenLM ids (newest word first), sorted.
struct TrieOrder {
  int n = 0;
  std::vector<WordId> rev;  // n per entry
  std::vector<float> probs, backoffs;
  std::vector<uint8_t> blank;
  size_t size() const { return probs.size(); }
  const WordId* words(size_t i) const { return rev.data() + i * n; }
};

bool less_words(const WordId* a, const WordId* b, int n) {
  return std::lexicographical_compare(a, a + n, b, b + n);
}

// Index of the entry whose first `n` reversed words are `key`, or SIZE_MAX.
size_t find_sorted(const TrieOrder& o, const WordId* key) {
  size_t lo = 0, hi = o.size();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (less_words(o.words(mid), key, o.n)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < o.size() && std::equal(key, key + o.n, o.words(lo))) return lo;
  return SIZE_MAX;
}

void sort_order(TrieOrder* o) {
  std::vector<size_t> perm(o->size());
  std::iota(perm.begin(), perm.end(), size_t{0});
  std::sort(perm.begin(), perm.end(),
            [&](size_t a, size_t b) { return less_words(o->words(a), o->words(b), o->n); });
  TrieOrder sorted;
  sorted.n = o->n;
  sorted.rev.reserve(o->rev.size());
  for (const size_t i : perm) {
    sorted.rev.insert(sorted.rev.end(), o->words(i), o->words(i) + o->n);
    sorted.probs.push_back(o->probs[i]);
    if (!o->backoffs.empty()) sorted.backoffs.push_back(o->backoffs[i]);
    sorted.blank.push_back(o->blank[i]);
  }
  *o = std::move(sorted);
}

// KenLM's bins: sorted values cut into `bins` runs of equal count, each represented by its mean.
void make_bins(std::vector<float> values, float* centers, uint64_t bins) {
  std::sort(values.begin(), values.end());
  size_t start = 0;
  for (uint64_t i = 0; i < bins; ++i) {
    const size_t finish = static_cast<size_t>((values.size() * (i + 1)) / bins);
    if (finish == start) {
      centers[i] = i ? centers[i - 1] : -std::numeric_limits<float>::infinity();
    } else {
      double sum = 0.0;
      for (size_t k = start; k < finish; ++k) sum += values[k];
      centers[i] = static_cast<float>(sum / static_cast<float>(finish - start));
    }
    start = finish;
  }
}

uint64_t encode(const float* begin, uint64_t size, float value, uint64_t reserved) {
  const float* end = begin + size;
  const float* above = std::lower_bound(begin + reserved, end, value);
  if (above == begin + reserved) return reserved;
  if (above == end) return size - 1;
  return static_cast<uint64_t>(above - begin) - ((value - *(above - 1)) < (*above - value) ? 1 : 0);
}

class TrieWriter {
 public:
  TrieWriter(const ArpaContents& c, Layout* layout) : c_(c), layout_(*layout) {}

  // Fills the orders and the layout's counts; then write() lays out the file.
  void prepare() {
    const int order = c_.order();
    ids_ = kenlm_ids(c_, true);
    orders_.resize(order + 1);
    for (int n = 2; n <= order; ++n) {
      const ArpaOrder& src = c_.orders[n - 2];
      TrieOrder& o = orders_[n];
      o.n = n;
      o.rev.resize(src.words.size());
      for (size_t i = 0; i < src.probs.size(); ++i) {
        for (int j = 0; j < n; ++j) o.rev[i * n + j] = ids_[src.words[i * n + n - 1 - j]];
      }
      o.probs = src.probs;
      if (n < order) {
        o.backoffs.resize(src.backoffs.size());
        for (size_t i = 0; i < src.backoffs.size(); ++i) o.backoffs[i] = initial_backoff(src.backoffs[i]);
      }
      o.blank.assign(src.probs.size(), 0);
      sort_order(&o);
      for (size_t i = 1; i < o.size(); ++i) {
        if (std::equal(o.words(i - 1), o.words(i - 1) + n, o.words(i))) {
          throw ArpaFormatError(c_.path, 0, "duplicate " + std::to_string(n) + "-gram in the file");
        }
      }
    }
    // Contexts of the file's n-grams must be file (n-1)-grams, as KenLM requires.
    for (int n = 3; n <= order; ++n) {
      const ArpaOrder& src = c_.orders[n - 2];
      WordId key[kMaxOrder];
      for (size_t i = 0; i < src.probs.size(); ++i) {
        for (int j = 0; j < n - 1; ++j) key[j] = ids_[src.words[i * n + n - 2 - j]];
        if (find_sorted(orders_[n - 1], key) == SIZE_MAX) missing_context(c_, n, i);
      }
    }
    add_blanks();
    // Unigrams by KenLM id.
    unigram_probs_.assign(c_.vocab.size(), 0.0f);
    unigram_backoffs_.assign(c_.vocab.size(), 0.0f);
    for (size_t ours = 0; ours < ids_.size(); ++ours) {
      unigram_probs_[ids_[ours]] = c_.unigram_probs[ours];
      unigram_backoffs_[ids_[ours]] =
          ours == kUnkId && !c_.unk_in_file ? 0.0f : initial_backoff(c_.unigram_backoffs[ours]);
    }
    mark_contexts();
    layout_.counts.assign(order, 0);
    layout_.counts[0] = c_.vocab.size();
    for (int n = 2; n <= order; ++n) layout_.counts[n - 1] = orders_[n].size();
  }

  Buffer write() {
    const int order = layout_.order;
    Buffer out(layout_.strings_offset());
    const std::string header = header_bytes(layout_);
    std::memcpy(out.at(0), header.data(), header.size());
    uint64_t at = layout_.header_bytes();
    // Sorted word hashes.
    std::vector<uint64_t> hashes;
    for (size_t ours = 1; ours < c_.vocab.size(); ++ours) hashes.push_back(word_hash(c_.vocab.string(ours)));
    std::sort(hashes.begin(), hashes.end());
    out.put<uint64_t>(at, hashes.size());
    std::memcpy(out.at(at + 8), hashes.data(), 8 * hashes.size());
    at += layout_.vocab_bytes();
    // Quantization tables.
    const uint64_t quant_at = at;
    std::vector<const float*> prob_bins(order + 1, nullptr), backoff_bins(order + 1, nullptr);
    if (layout_.quantized()) train(out, quant_at, &prob_bins, &backoff_bins);
    at += layout_.quant_bytes();
    // Unigrams: prob, backoff, pointer to the first bigram ending in the word.
    {
      const TrieOrder& next = orders_[2];
      size_t j = 0;
      for (uint64_t w = 0; w <= layout_.counts[0]; ++w) {
        while (j < next.size() && next.words(j)[0] < w) ++j;
        const uint64_t rec = at + 16 * w;
        if (w < layout_.counts[0]) {
          out.put<float>(rec, unigram_probs_[w]);
          out.put<float>(rec + 4, unigram_backoffs_[w]);
        }
        out.put<uint64_t>(rec + 8, j);
      }
    }
    at += layout_.unigram_bytes();
    for (int n = 2; n <= order; ++n) {
      write_order(out, at, n, prob_bins[n], backoff_bins[n]);
      at += layout_.order_bytes(n);
    }
    return out;
  }

  const std::vector<WordId>& ids() const { return ids_; }

 private:
  // Suffixes that higher orders need but the file lacks, order by order from the top, with the
  // probability backing off gives: the longest suffix in the file, plus the backoffs of the
  // contexts from that length up, shortest first.
  void add_blanks() {
    const int order = c_.order();
    for (int m = order - 1; m >= 2; --m) {
      const TrieOrder& upper = orders_[m + 1];
      TrieOrder& o = orders_[m];
      std::vector<WordId> missing;
      for (size_t i = 0; i < upper.size(); ++i) {
        const WordId* suffix = upper.words(i);  // its first m reversed words
        if (find_sorted(o, suffix) == SIZE_MAX) missing.insert(missing.end(), suffix, suffix + m);
      }
      if (missing.empty()) continue;
      // Sort and deduplicate.
      TrieOrder blanks;
      blanks.n = m;
      blanks.rev = std::move(missing);
      const size_t count = blanks.rev.size() / m;
      blanks.probs.assign(count, 0.0f);
      blanks.blank.assign(count, 1);
      if (m < order) blanks.backoffs.assign(count, -0.0f);
      sort_order(&blanks);
      TrieOrder unique;
      unique.n = m;
      for (size_t i = 0; i < blanks.size(); ++i) {
        if (i > 0 && std::equal(blanks.words(i), blanks.words(i) + m, blanks.words(i - 1))) continue;
        const WordId* w = blanks.words(i);
        unique.rev.insert(unique.rev.end(), w, w + m);
        unique.probs.push_back(blank_prob(w, m));
        unique.backoffs.push_back(-0.0f);
        unique.blank.push_back(1);
      }
      blank_values_.resize(order + 1);
      blank_values_[m] = unique.probs;
      // Merge into the order.
      for (size_t i = 0; i < unique.size(); ++i) {
        o.rev.insert(o.rev.end(), unique.words(i), unique.words(i) + m);
        o.probs.push_back(unique.probs[i]);
        o.backoffs.push_back(-0.0f);
        o.blank.push_back(1);
      }
      sort_order(&o);
    }
  }

  float blank_prob(const WordId* r, int m) const {
    // The longest suffix r[0..b) present in the file (b = 1: the unigram).
    int b = m - 1;
    size_t found = SIZE_MAX;
    for (; b >= 2; --b) {
      found = find_file(b, r);
      if (found != SIZE_MAX) break;
    }
    float prob = b >= 2 ? orders_[b].probs[found] : c_.unigram_probs[ours_of(r[0])];
    for (int i = b; i < m; ++i) {
      // The context of length i: r[1..i].
      float backoff;
      if (i == 1) {
        backoff = unigram_backoff_of(r[1]);
      } else {
        const size_t context = find_file(i, r + 1);
        if (context == SIZE_MAX) continue;
        backoff = orders_[i].backoffs[context];
      }
      if (fbits(backoff) != kSign) prob += backoff;
    }
    return prob;
  }
  size_t find_file(int n, const WordId* key) const {
    const size_t i = find_sorted(orders_[n], key);
    return i != SIZE_MAX && !orders_[n].blank[i] ? i : SIZE_MAX;
  }
  WordId ours_of(WordId k) const {
    if (by_kenlm_.empty()) {
      by_kenlm_.resize(ids_.size());
      for (size_t ours = 0; ours < ids_.size(); ++ours) by_kenlm_[ids_[ours]] = static_cast<WordId>(ours);
    }
    return by_kenlm_[k];
  }
  float unigram_backoff_of(WordId k) const {
    const WordId ours = ours_of(k);
    return ours == kUnkId && !c_.unk_in_file ? 0.0f : initial_backoff(c_.unigram_backoffs[ours]);
  }

  // An n-gram that is the context of some (n+1)-gram (in the file or added) gets backoff +0.0
  // instead of -0.0; an added (n)-gram at order N-1 never does (KenLM's rule).
  void mark_contexts() {
    const int order = c_.order();
    for (int n = 2; n <= order; ++n) {
      const TrieOrder& upper = orders_[n];
      for (size_t i = 0; i < upper.size(); ++i) {
        const WordId* context = upper.words(i) + 1;  // w_{n-1}..w_1: reversed context
        if (n == 2) {
          set_extension(unigram_backoffs_[context[0]]);
          continue;
        }
        TrieOrder& lower = orders_[n - 1];
        const size_t at = find_sorted(lower, context);
        if (at == SIZE_MAX) continue;
        if (lower.blank[at] && n - 1 == order - 1) continue;
        set_extension(lower.backoffs[at]);
      }
    }
  }

  void train(Buffer& out, uint64_t quant_at, std::vector<const float*>* prob_bins,
             std::vector<const float*>* backoff_bins) {
    const int order = layout_.order;
    out.at(quant_at)[0] = 2;
    out.at(quant_at)[1] = layout_.prob_bits;
    out.at(quant_at)[2] = layout_.backoff_bits;
    const uint64_t p = uint64_t{1} << layout_.prob_bits, b = uint64_t{1} << layout_.backoff_bits;
    auto* tables = reinterpret_cast<float*>(out.at(quant_at + 8));
    for (int n = 2; n <= order; ++n) {
      float* probs = tables + (n - 2) * (p + b);
      std::vector<float> values;
      if (n < order && n < static_cast<int>(blank_values_.size())) values = blank_values_[n];
      const TrieOrder& o = orders_[n];
      std::vector<float> backoffs;
      for (size_t i = 0; i < o.size(); ++i) {
        if (o.blank[i]) continue;
        values.push_back(o.probs[i]);
        if (n < order && o.backoffs[i] != 0.0f) backoffs.push_back(o.backoffs[i]);
      }
      make_bins(values, probs, p);
      (*prob_bins)[n] = probs;
      if (n < order) {
        float* centers = probs + p;
        centers[0] = -0.0f;
        centers[1] = 0.0f;
        make_bins(backoffs, centers + 2, b - 2);
        (*backoff_bins)[n] = centers;
      }
    }
  }

  void write_order(Buffer& out, uint64_t section, int n, const float* prob_bins, const float* backoff_bins) {
    const int order = layout_.order;
    const TrieOrder& o = orders_[n];
    const uint8_t word_bits = required_bits(layout_.counts[0]);
    const bool middle = n < order;
    const uint8_t value_bits = middle ? layout_.middle_value_bits() : layout_.longest_value_bits();
    const uint8_t inline_bits = middle ? layout_.inline_pointer_bits(n) : 0;
    const uint64_t total_bits = word_bits + value_bits + inline_bits;
    uint64_t base = section;
    std::vector<uint64_t> next;
    if (middle) {
      // Pointers to each entry's first child in order n + 1, then the end.
      const TrieOrder& upper = orders_[n + 1];
      next.resize(o.size() + 1);
      size_t j = 0;
      for (size_t i = 0; i < o.size(); ++i) {
        while (j < upper.size() && less_words(upper.words(j), o.words(i), n)) ++j;
        next[i] = j;
      }
      next[o.size()] = upper.size();
      if (layout_.array_pointers()) {
        out.at(section)[0] = 0;
        out.at(section)[1] = layout_.pointer_bits;
        const uint64_t offsets = align8(section) + 8;
        const uint64_t length = layout_.offset_array_length(n);
        uint64_t write_to = 1;
        for (size_t i = 0; i < next.size(); ++i) {
          const uint64_t high = next[i] >> inline_bits;
          for (; write_to <= high && write_to < length; ++write_to)
            out.put<uint64_t>(offsets + 8 * write_to, i);
        }
        base = section + 8 * (1 + length) + 7;
      }
    }
    const uint64_t inline_mask = inline_bits >= 64 ? ~0ull : (uint64_t{1} << inline_bits) - 1;
    for (size_t i = 0; i < o.size(); ++i) {
      const uint64_t bit = i * total_bits;
      out.put_bits(base, bit, o.words(i)[n - 1]);
      const uint64_t value_at = bit + word_bits;
      if (layout_.quantized()) {
        const uint64_t prob = encode(prob_bins, uint64_t{1} << layout_.prob_bits, o.probs[i], 0);
        if (middle) {
          const float backoff = o.backoffs[i];
          uint64_t backoff_code;
          if (backoff == 0.0f) {
            backoff_code = fbits(backoff) == kSign ? 0 : 1;
          } else {
            backoff_code = encode(backoff_bins, uint64_t{1} << layout_.backoff_bits, backoff, 2);
          }
          out.put_bits(base, value_at, (prob << layout_.backoff_bits) | backoff_code);
        } else {
          out.put_bits(base, value_at, prob);
        }
      } else {
        out.put_bits(base, value_at, fbits(o.probs[i]) & ~kSign);
        if (middle) out.put_bits(base, value_at + 31, fbits(o.backoffs[i]));
      }
      if (middle) out.put_bits(base, value_at + value_bits, next[i] & inline_mask);
    }
    if (middle)
      out.put_bits(base, o.size() * total_bits + total_bits - inline_bits, next[o.size()] & inline_mask);
  }

  const ArpaContents& c_;
  Layout& layout_;
  std::vector<WordId> ids_;
  mutable std::vector<WordId> by_kenlm_;
  std::vector<TrieOrder> orders_;  // orders_[n] for n >= 2
  std::vector<std::vector<float>> blank_values_;
  std::vector<float> unigram_probs_, unigram_backoffs_;
};

}  // namespace

void write_binary(const ArpaContents& contents, const Layout& options, int fd, const std::string& name) {
  Layout layout = options;
  layout.order = contents.order();
  layout.has_vocabulary = true;
  if (layout.order < 2) {
    throw ArpaFormatError(contents.path, 0, "KenLM binaries need order >= 2 (this model has order 1)");
  }
  if (layout.quantized() && (layout.prob_bits < 1 || layout.prob_bits > 25 || layout.backoff_bits < 1 ||
                             layout.backoff_bits > 25)) {
    throw std::invalid_argument("quantization bits must be in 1..25, got -q " +
                                std::to_string(layout.prob_bits) + " -b " +
                                std::to_string(layout.backoff_bits));
  }
  if (!layout.trie()) {
    layout.counts = contents.counts;
    ProbingWriter writer(contents, layout);
    Buffer& out = writer.build();
    const std::vector<WordId> ids = kenlm_ids(contents, false);
    const std::string words = vocabulary_strings(contents, ids);
    write_all(fd, name, out.bytes().data(), out.bytes().size());
    write_all(fd, name, reinterpret_cast<const uint8_t*>(words.data()), words.size());
    return;
  }
  TrieWriter writer(contents, &layout);
  writer.prepare();
  Buffer out = writer.write();
  const std::string words = vocabulary_strings(contents, writer.ids());
  write_all(fd, name, out.bytes().data(), out.bytes().size());
  write_all(fd, name, reinterpret_cast<const uint8_t*>(words.data()), words.size());
}

}  // namespace kenlm
}  // namespace speechdecode
