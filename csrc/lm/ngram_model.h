// NgramModel: queries of a back-off n-gram language model, as KenLM's probing model answers them.
//
// The model. Katz, "Estimation of probabilities from sparse data for the language model
// component of a speech recognizer" (IEEE TASSP 1987): the probability of w after a context
// w1..wn is read from the longest stored n-gram wi..wn w; when w1..wn w itself is missing, the
// back-off weights of the contexts longer than the match are added (in log10):
//     log p(w | w1..wn) = log p(w | wi..wn) + sum_{j < i} log b(wj..wn).
// The tables come from an ARPA file (lm/arpa_reader.h), every number as a float32, and every
// sum is a float32 sum in KenLM's order, so scores equal KenLM's bit for bit.
//
// The data structure is the PROBING one of Heafield, "KenLM: Faster and Smaller Language Model
// Queries" (WMT 2011): unigrams in an array indexed by word id; each higher order
// in an open-addressing hash table with linear probing and 1.5 slots per entry, keyed by a
// 64-bit hash of the word ids (most recent word first) and holding float log10 probability and
// backoff (the highest order: probability only). Words are not stored, so a query n-gram whose
// hash equals a stored one's (odds ~ entries / 2^64 per lookup) reads that entry, as in KenLM;
// stored n-grams never share a key (the loader re-seeds the hash if they would).
// Two bits ride on signs, as in KenLM: a probability's sign bit is clear when some longer
// n-gram ends with this one, so a lookup chain stops as soon as no longer match can exist; a
// backoff of -0.0 marks an n-gram that is the context of nothing, so states can drop it.
//
// Missing lower orders. Like KenLM, the loader rejects an n-gram whose context w1..wn-1 is not
// stored, and when the suffix w2..wn is missing (SRILM pruning does this) it inserts it, with
// the probability that backing off gives and backoff 0: scores do not change, only the
// reported n-gram length grows, exactly as in KenLM. (Contexts are checked once all suffixes
// of an order are in, so, unlike KenLM, a context that only an inserted suffix provides is
// accepted wherever its line is.) Loading parses the sections and fills the tables on all cores.
//
// States. A State holds up to order-1 context words, most recent first, with their backoffs,
// right-minimised as KenLM's: only as many words as the longest match that some longer n-gram
// extends, so that two histories that predict every next word identically compare equal. (One
// difference: when the file lacks <unk>, KenLM's added <unk> stays in states, ours does not.)
// The model is read-only after from_arpa: every const method is safe from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lm/arpa_reader.h"
#include "lm/ngram_model_hash.h"
#include "lm/ngram_model_memory.h"

namespace speechdecode {

namespace kenlm {
class KenlmBinary;
}

class NgramModel {
 public:
  struct FullScore {
    float log10_prob;
    uint8_t ngram_length;  // length of the longest stored n-gram that matched
    bool oov;              // the word is <unk>
  };

  struct State {
    WordId words[kMaxOrder - 1];   // words[0] is the most recent
    float backoff[kMaxOrder - 1];  // backoff[i]: log10 backoff of the context words[i]..words[0]
    uint8_t length = 0;

    bool operator==(const State& other) const;
    bool operator!=(const State& other) const { return !(*this == other); }
    size_t hash() const;
  };
  struct StateHash {
    size_t operator()(const State& s) const { return s.hash(); }
  };

  // Loads an ARPA file (plain or gzip). Throws ArpaFormatError (file and line) for a malformed
  // file and FileReadError when it cannot be read.
  static NgramModel from_arpa(const std::string& path);
  // Maps a KenLM binary file (csrc/lm/kenlm_binary.h): every query reads the file in place.
  // Throws InputFileError (file and reason) for a file that is not a complete KenLM binary.
  static NgramModel from_kenlm_binary(const std::string& path);
  // from_kenlm_binary or from_arpa, decided by the file's first bytes.
  static NgramModel load(const std::string& path);

  int order() const { return order_; }
  size_t vocab_size() const;
  std::string_view word(WordId id) const;
  // The mapped KenLM binary behind the model, or null for a model read from an ARPA file.
  const kenlm::KenlmBinary* kenlm_binary() const { return binary_.get(); }
  // The id of word; kUnkId when it is not in the vocabulary.
  WordId word_id(std::string_view word) const;
  bool contains(std::string_view word) const;
  // Ids of the whitespace-separated words of sentence (ASCII whitespace, as Python's bytes.split).
  std::vector<WordId> word_ids(std::string_view sentence) const;
  // N-gram counts per order as the file declares them.
  const std::vector<uint64_t>& counts() const { return counts_; }
  // Bytes held by the vocabulary and the tables.
  size_t memory_bytes() const;

  // The context `<s>` (for order 1: the empty context).
  State begin_sentence_state() const;
  State null_context_state() const;

  // Scores w after in and writes the next state to *out (out must not alias in). w must be
  // below vocab_size(); the checked entry points below verify ids.
  FullScore score_word(const State& in, WordId w, State* out) const;

  // score_word for a context given as words only (most recent first, length <= order - 1, ids
  // checked by the caller): backoffs are looked up as needed. Writes the minimised next context
  // to out_context (room for order - 1 words, may alias context) and returns its length in
  // *out_length.
  FullScore score_context(const WordId* context, int length, WordId w, WordId* out_context,
                          int* out_length) const;

  // log10 p(sentence) summed in float32 as KenLM's Python module does: the words of ids, then
  // </s> if eos, starting from <s> if bos (else from the empty context). Ids must be valid.
  float score_sentence(const WordId* ids, size_t count, bool bos, bool eos) const;
  // One FullScore per word (and for </s> if eos).
  std::vector<FullScore> full_scores(const WordId* ids, size_t count, bool bos, bool eos) const;

  // score_sentence of sentence b = ids[offsets[b] : offsets[b + 1]] into out[b], for b < count,
  // on num_threads threads (<= 0: all cores). Throws TensorError("sentences", ...) naming the
  // first invalid id. Takes no Python lock.
  void score_batch(const WordId* ids, const int64_t* offsets, int64_t count, bool bos, bool eos,
                   int num_threads, double* out) const;
  // The same for sentences given as text (words split on ASCII whitespace, unknown -> <unk>).
  void score_batch(const std::vector<std::string_view>& sentences, bool bos, bool eos, int num_threads,
                   double* out) const;

  // Vectorised score_context. Row r of states (count x (order - 1), int32) is a context: word ids,
  // most recent first, then -1 padding. Writes log10 probs[r] and the next states (same layout).
  // Throws TensorError naming the first bad state row or word id.
  void score_words(const int32_t* states, const int32_t* words, int64_t count, int num_threads, float* probs,
                   int32_t* next_states) const;

 private:
  struct Unigram {
    float prob;  // sign bit clear: some bigram ends with this word
    float backoff;
  };
  struct MiddleEntry {
    uint64_t key;
    float prob;
    float backoff;
  };
#pragma pack(push, 4)
  struct LongestEntry {
    uint64_t key;
    float prob;
  };
#pragma pack(pop)

  // Open addressing with linear probing over slots; bucket = high bits of key * slots.
  template <typename Entry>
  struct ProbingTable {
    ngram_memory::HugeVector<Entry> slots;

    size_t bucket(uint64_t key) const {
      return static_cast<size_t>((static_cast<unsigned __int128>(key) * slots.size()) >> 64);
    }
    void prefetch(uint64_t key) const { __builtin_prefetch(&slots[bucket(key)]); }
    const Entry* find(uint64_t key) const {
      const size_t size = slots.size();
      for (size_t i = bucket(key);;) {
        const Entry& e = slots[i];
        if (e.key == key) return &e;
        if (e.key == 0) return nullptr;
        if (++i == size) i = 0;
      }
    }
  };

  // The table keys of every lookup that scoring one word may make, computed before any probe:
  // keys[i] is the (i + 2)-gram word, history[0..i]; context_keys[i] the (i + 2)-gram
  // history[0..i + 1] (score_context's backoffs). history is most recent first.
  struct Probes {
    WordId word;
    uint64_t keys[kMaxOrder - 1];
    uint64_t context_keys[kMaxOrder - 1];
  };
  // Fills *out for w after depth <= order - 1 history words; with_context adds context_keys;
  // prefetch asks for every key's first slot.
  void probes_for(WordId w, const WordId* history, int depth, bool with_context, bool prefetch,
                  Probes* out) const;
  // The steps of the lookup core (lm/ngram_lookup.h) over these tables, from the keys of a Probes.
  struct ProbingSteps;
  // score_word from the keys of p: all of them are known before the first probe, so the core can
  // start the loads of longer n-grams while it waits on shorter ones.
  FullScore score_word(const State& in, const Probes& p, State* out) const;
  FullScore score_context(const WordId* context, int length, const Probes& p, WordId* out_context,
                          int* out_length) const;
  // score_sentence of sentences [first, last) of a packed batch into out, the slots of the word
  // kWordsAhead positions ahead prefetched while a word is scored (a KenLM binary: its pipeline,
  // lm/ngram_pipeline.h).
  void score_packed(const WordId* ids, const int64_t* offsets, int64_t first, int64_t last, bool bos,
                    bool eos, double* out) const;

  class Builder;
  friend class Builder;

  NgramModel() = default;

  // Calls on_score(FullScore) for each word of the sentence, as score_sentence scores them.
  template <typename Fn>
  void walk_sentence(const WordId* ids, size_t count, bool bos, bool eos, Fn&& on_score) const;
  void append_word_ids(std::string_view sentence, std::vector<WordId>* ids) const;
  // Checks a state row of score_words; returns its length.
  int checked_state_length(const int32_t* row, int64_t r) const;

  int order_ = 0;
  ngram_hash::NgramHasher hasher_;
  std::vector<uint64_t> counts_;
  StringIds vocab_;
  ngram_memory::HugeVector<Unigram> unigrams_;
  std::vector<ProbingTable<MiddleEntry>> middle_;  // middle_[n - 2] holds order n, 2 <= n < order
  ProbingTable<LongestEntry> longest_;             // the highest order, when it is >= 2
  // Set for a KenLM binary: queries go to it and the tables above stay empty.
  std::shared_ptr<const kenlm::KenlmBinary> binary_;
};

}  // namespace speechdecode
