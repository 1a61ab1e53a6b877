// KenLM's binary model files, read in place from a read-only memory map.
//
// The format is the one KenLM's build_binary writes (Heafield, "KenLM: Faster and Smaller
// Language Model Queries", WMT 2011; kpu/kenlm lm/binary_format.cc, lm/search_hashed.*,
// lm/search_trie.*, lm/trie.*, lm/quantize.*, lm/bhiksha.*, lm/vocab.*), version 5:
//
//   header    the magic line "mmap lm http://kheafield.com/code format version 5\n\0" padded to 56
//             bytes; a sanity block (float 0, 1, -0.5; uint32 1, 0xFFFFFFFF, 0; uint64 1) that a
//             file of another byte order or layout fails; then order (uint8), probing multiplier
//             (float), model type (int32), has-vocabulary (bool), search version (uint32), one
//             uint64 n-gram count per order, all padded to 8 bytes.
//   vocab     PROBING: {uint32 version, uint32 bound} and a linear-probing table of
//             {uint64 MurmurHash64A(word), uint32 id} (12 bytes, bucket = hash % buckets, empty
//             key 0). TRIE: uint64 n, then the n word hashes sorted; a word's id is its rank + 1.
//             <unk> is id 0 and is never stored.
//   search    PROBING: unigrams {float prob, float backoff} by id (rest probing adds a float rest
//             cost), then per order 2..N-1 a probing table of {uint64 key, prob, backoff}, then
//             the highest order's table of {uint64 key, float prob} (12 bytes). The key of the
//             n-gram w1..wn is hash(wn, wn-1, ..., w1) with h = wn, h = h * A ^ (1 + w) * B. A
//             probability whose sign bit is clear is one that a longer n-gram extends leftwards.
//             TRIE: optional quantization tables, unigrams {prob, backoff, uint64 next} (count +
//             2 of them), then per order a bit-packed array of records sorted by the reversed
//             n-gram: word id bits, then the values (31-bit non-positive prob and 32-bit backoff,
//             or prob bits and backoff bits of quantization bin indices), then the bits of a
//             pointer into the next order (with -a, its high bits live in a separate sorted
//             offset array instead).
//   words     the vocabulary strings, NUL-terminated, in id order, <unk> first (optional).
//
// KenlmBinary checks the header as KenLM does and checks every section against the file's size
// before it is used; every pointer read from the file is range-checked when it is followed, so
// a damaged file gives an InputFileError (file and reason), never a read past the mapping.
//
// Ids. The model's public word ids are those of NgramModel (<unk> 0, <s> 1, </s> 2); KenLM's
// own ids differ by at most two transpositions (its <s> and </s> move to 1 and 2), applied on
// the way in and out, so scores and states are KenLM's and the id contract is ours.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lm/arpa_reader.h"
#include "lm/ngram_model.h"

namespace speechdecode {
namespace kenlm {

enum ModelType : int32_t {
  kProbing = 0,
  kRestProbing = 1,
  kTrie = 2,
  kQuantTrie = 3,
  kArrayTrie = 4,
  kQuantArrayTrie = 5,
};
const char* model_type_name(int32_t type);

// "mmap lm http://kheafield.com/code" (every KenLM binary starts with it, complete or not).
bool has_binary_magic(const char* data, size_t size);

uint64_t murmur_hash64a(const void* key, size_t length, uint64_t seed);
inline uint64_t word_hash(std::string_view word) { return murmur_hash64a(word.data(), word.size(), 0); }
inline uint64_t combine_word_hash(uint64_t current, uint32_t next) {
  return (current * 8978948897894561157ULL) ^ (static_cast<uint64_t>(1 + next) * 17894857484156487943ULL);
}
// Bits needed to store max_value (0 for 0).
uint8_t required_bits(uint64_t max_value);

// Fixed parameters of a model, from a header or chosen for writing.
struct Layout {
  int32_t type = kProbing;
  int order = 0;
  float probing_multiplier = 1.5f;
  bool has_vocabulary = true;
  std::vector<uint64_t> counts;
  uint8_t prob_bits = 0, backoff_bits = 0;  // quantized tries
  uint8_t pointer_bits = 0;                 // array-compressed tries: the -a maximum

  bool trie() const { return type >= kTrie; }
  bool quantized() const { return type == kQuantTrie || type == kQuantArrayTrie; }
  bool array_pointers() const { return type == kArrayTrie || type == kQuantArrayTrie; }
  uint32_t search_version() const { return trie() ? 1 : 0; }

  size_t header_bytes() const;
  uint64_t probing_buckets(uint64_t entries) const;
  uint64_t vocab_bytes() const;
  uint64_t unigram_bytes() const;
  uint64_t quant_bytes() const;
  uint8_t middle_value_bits() const { return quantized() ? prob_bits + backoff_bits : 63; }
  uint8_t longest_value_bits() const { return quantized() ? prob_bits : 31; }
  // For the trie middle of order n (2 <= n < order): pointer bits kept inline, bits chopped
  // into the offset array, the array's length, and the section's bytes.
  uint8_t chop_bits(int n) const;
  uint8_t inline_pointer_bits(int n) const;
  uint64_t offset_array_length(int n) const;
  uint64_t middle_bytes(int n) const;
  uint64_t longest_bytes() const;
  // Bytes of order n's section (unigrams for n == 1), and of the whole search part.
  uint64_t order_bytes(int n) const;
  uint64_t search_bytes() const;
  // Offset of the vocabulary strings: the end of the fixed-size part.
  uint64_t strings_offset() const;
};

// The header bytes for layout (magic, sanity block, parameters, counts, padding).
std::string header_bytes(const Layout& layout);

class KenlmBinary {
 public:
  // Maps and checks path. Throws InputFileError(path, -1, reason) for a file that is not a
  // complete KenLM binary this reader supports, FileReadError when it cannot be opened.
  static std::shared_ptr<const KenlmBinary> open(const std::string& path);
  ~KenlmBinary();
  KenlmBinary(const KenlmBinary&) = delete;
  KenlmBinary& operator=(const KenlmBinary&) = delete;

  const Layout& layout() const { return layout_; }
  const std::string& path() const { return path_; }
  int order() const { return layout_.order; }
  size_t vocab_size() const { return bound_; }
  uint64_t file_bytes() const { return size_; }
  // Our id of word, or StringIds::kNotFound.
  WordId find(std::string_view word) const;
  bool has_words() const { return !word_offsets_.empty(); }
  // KenLM's own id of our word id `id` (what KenLM's query prints).
  WordId kenlm_id(WordId id) const { return to_kenlm(id); }
  // The word of our id (the file must have its vocabulary; throws otherwise).
  std::string_view word(WordId id) const;

  NgramModel::State begin_sentence_state() const;
  NgramModel::FullScore score_word(const NgramModel::State& in, WordId w, NgramModel::State* out) const;
  // score_word after a context given as words only (most recent first); the state's backoffs
  // are looked up first. Writes the minimised next context to out_context.
  NgramModel::FullScore score_context(const WordId* context, int length, WordId w, WordId* out_context,
                                      int* out_length) const;

  // score_sentence of sentences [first, last) of a packed batch (our ids, checked by the caller)
  // into out, every sentence from `start`, many words' lookups in flight (lm/ngram_pipeline.h).
  void score_packed(const NgramModel::State& start, const WordId* ids, const int64_t* offsets, int64_t first,
                    int64_t last, bool bos, bool eos, double* out) const;

  // For writing an ARPA file back from a trie: calls on_ngram(n, words (our ids, oldest first),
  // prob, backoff) for every stored n-gram, orders ascending; backoff is 0 for the highest order.
  // Throws InputFileError for a probing file (it stores hashes, not words).
  void for_each_ngram(const std::function<void(int, const WordId*, float, float)>& on_ngram) const;

 private:
  KenlmBinary() = default;
  void check_and_index();
  [[noreturn]] [[gnu::cold]] [[gnu::noinline]] void corrupt(const std::string& what) const;

  WordId to_kenlm(WordId ours) const {
    if (ours == swap2_a_) {
      ours = swap2_b_;
    } else if (ours == swap2_b_) {
      ours = swap2_a_;
    }
    if (ours == swap1_a_) return swap1_b_;
    if (ours == swap1_b_) return swap1_a_;
    return ours;
  }
  WordId to_ours(WordId k) const {
    if (k == swap1_a_) {
      k = swap1_b_;
    } else if (k == swap1_b_) {
      k = swap1_a_;
    }
    if (k == swap2_a_) return swap2_b_;
    if (k == swap2_b_) return swap2_a_;
    return k;
  }
  WordId kenlm_index(std::string_view word) const;

  // One trie or probing lookup step, KenLM ids.
  struct Node {
    uint64_t begin = 0, end = 0;  // trie: child range in the next order; probing: begin = hash
  };
  struct Found {
    bool found = false;
    bool independent_left = true;
    float prob = 0.0f;
    float backoff = 0.0f;
  };
  // The lookup core's steps (lm/ngram_lookup.h) over this file, and the pipeline's stages.
  struct Steps;
  struct PipelineStore;
  Found lookup_unigram(WordId w, Node* node) const;
  Found lookup_middle(int order_minus_2, WordId w, Node* node) const;
  bool lookup_longest(WordId w, const Node& node, float* prob) const;
  // Probing: the entry of key in the table of order i + 2, or null; the lookups of lookup_middle
  // and lookup_longest by key.
  const uint8_t* probe(int i, uint64_t key) const;
  Found probe_middle(int i, uint64_t key) const;
  bool probe_longest(uint64_t key, float* prob) const;
  // Trie: index of word w among records [range.begin, range.end) of order n, or UINT64_MAX.
  uint64_t trie_find(int n, uint64_t begin, uint64_t end, WordId w) const;
  void trie_next(int n, uint64_t index, Node* node) const;
  uint64_t trie_word(int n, uint64_t index) const;
  float trie_prob(int n, uint64_t index) const;
  float trie_backoff(int n, uint64_t index) const;

  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  Layout layout_;
  WordId bound_ = 0;
  // Probing vocabulary table / sorted hashes.
  const uint8_t* vocab_table_ = nullptr;
  uint64_t vocab_buckets_ = 0;
  const uint8_t* sorted_hashes_ = nullptr;
  uint64_t sorted_count_ = 0;
  WordId swap1_a_ = 1, swap1_b_ = 1, swap2_a_ = 2, swap2_b_ = 2;
  std::vector<uint64_t> word_offsets_;  // by KenLM id

  // Search sections.
  const uint8_t* unigrams_ = nullptr;
  uint32_t unigram_stride_ = 8;
  struct Table {
    const uint8_t* base = nullptr;
    uint64_t buckets = 0;
    uint32_t stride = 0;
  };
  std::vector<Table> tables_;  // probing: orders 2..N (the last is the longest)
  struct Packed {
    const uint8_t* base = nullptr;  // bit-packed records
    uint64_t entries = 0;
    uint8_t word_bits = 0, value_bits = 0, inline_bits = 0, total_bits = 0;
    const uint8_t* offsets = nullptr;  // -a: sorted offset array (uint64 each)
    uint64_t offsets_length = 0;
    const float* prob_bins = nullptr;
    const float* backoff_bins = nullptr;
  };
  std::vector<Packed> packed_;  // trie: orders 2..N
};

// Writing. Builds the binary build_binary would build from an ARPA file's contents (the same
// vocabulary ids, table placement, trie order, missing-suffix entries and quantization bins) and
// writes it to the open descriptor fd; `name` names the output in errors. layout.type picks the
// structure (kProbing or one of the tries); prob_bits/backoff_bits (1..25) for quantized tries,
// pointer_bits (the -a maximum) for array-compressed ones. Throws ArpaFormatError for a model
// KenLM rejects (an n-gram whose context is missing, a duplicate n-gram), FileWriteError for I/O.
void write_binary(const ArpaContents& contents, const Layout& options, int fd, const std::string& name);

}  // namespace kenlm
}  // namespace speechdecode
