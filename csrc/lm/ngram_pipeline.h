// Batched sentence scoring with many table lookups in flight, for a KenLM binary's probing
// tables or trie (kenlm_binary.cc).
//
// Scoring one word is a chain of dependent lookups (lm/ngram_lookup.h): the 2-gram, then the
// 3-gram, ..., each a likely cache miss; in a trie, where order n + 1 is looked up, too, depends
// on what order n found. One chain alone waits a memory latency per order, but the chains of
// different words are independent: the lookups depend only on the words of the sentence, never
// on the scores. So the words of a batch run through a software pipeline (sentences one after
// another, through sentence boundaries): a word enters kStageWords * (order - 1) words before it
// is scored, with the memory of its 2-gram lookup requested (a prefetch); every kStageWords words
// later its next order is looked up (by then in cache) and the memory of the order after it
// requested, as long as the chain goes on. When the word's turn comes every step of its chain is
// known, and the state walk of ngram_lookup::score_state reads them, so scores and states are
// those of the one-word-at-a-time walk, bit for bit. Only memory that the chain reads is
// requested. (NgramModel's own tables know every key of a word before its first probe and are
// prefetched whole, words ahead, instead: on them this pipeline measured slower.)
//
// The chain is looked up for the deepest history the sentence has (up to order - 1 words); the
// walk asks only for the orders its state reaches, which that chain always holds: a state's
// words are the sentence's most recent words, and a chain stops exactly where the walk's would.
//
// A Store provides, for one word in flight (its Cursor):
//   LookupStep start(WordId w, const WordId* history, int depth, Cursor* c) const;
//       w's unigram; history: the depth words before w, most recent first (copied as needed)
//   void prefetch(const Cursor& c, int i) const;     requests the first memory the (i + 2)-gram's
//                                                    lookup reads
//   LookupStep middle(Cursor* c, int i) const;       the (i + 2)-gram, for i + 2 < order
//   bool longest(Cursor* c, int i, float* prob) const;   the order-gram (i + 2 == order)
// middle and longest are called in order of i, each after prefetch(c, i).
#pragma once

#include <cstdint>

#include "lm/arpa_reader.h"
#include "lm/ngram_lookup.h"
#include "lm/ngram_model.h"

namespace speechdecode {
namespace ngram_pipeline {

// Words scored between two lookups of one word's chain: the time a prefetch has to arrive
// (measured best among 4, 6, 8 and 12 on the KJV 5-gram's probing and trie binaries).
constexpr int kStageWords = 4;

// score_sentence of sentences [first, last) of a packed batch (ids[offsets[b] : offsets[b + 1]])
// into out[b], every sentence starting from `start` (with <s> as its first history word when
// bos) and ending with </s> when eos. Ids must be valid.
template <typename Store>
void score_packed(const Store& store, int order, const NgramModel::State& start, const WordId* ids,
                  const int64_t* offsets, int64_t first, int64_t last, bool bos, bool eos, double* out) {
  struct Slot {
    typename Store::Cursor cursor;
    WordId word;
    int depth;    // history words the chain may use
    int pending;  // the i of the next lookup of the chain, or -1 when it has ended
    ngram_lookup::LookupStep steps[kMaxOrder];  // [0]: the unigram; [i + 1]: middle(i)
    float longest_prob;
    bool longest_found;
  };
  // The steps of one slot's chain, for the state walk.
  struct Cached {
    const Slot& slot;
    ngram_lookup::LookupStep unigram() const { return slot.steps[0]; }
    ngram_lookup::LookupStep middle(int i) const { return slot.steps[i + 1]; }
    bool longest(int, float* prob) const {
      if (slot.longest_found) *prob = slot.longest_prob;
      return slot.longest_found;
    }
  };
  const int lookups = order - 1;                                         // orders 2..order
  const int64_t span = static_cast<int64_t>(lookups) * kStageWords + 1;  // words in flight
  Slot ring[(kMaxOrder - 1) * kStageWords + 1];
  const int64_t extra = eos ? 1 : 0;
  auto words_in = [&](int64_t b) { return offsets[b + 1] - offsets[b] + extra; };
  const int64_t total = offsets[last] - offsets[first] + extra * (last - first);

  // Entering: word e of the stream is word `in_i` of sentence `in_b`.
  int64_t in_b = first, in_i = 0;
  auto enter = [&](Slot& slot) {
    while (in_i == words_in(in_b)) {
      ++in_b;
      in_i = 0;
    }
    const WordId* sentence = ids + offsets[in_b];
    const int64_t length = offsets[in_b + 1] - offsets[in_b];
    const WordId w = in_i < length ? sentence[in_i] : kEosId;
    WordId history[kMaxOrder - 1];
    int depth = 0;
    for (int64_t j = in_i - 1; depth < lookups && j >= 0; --j) history[depth++] = sentence[j];
    if (bos && depth < lookups) history[depth++] = kBosId;
    slot.word = w;
    slot.depth = depth;
    slot.steps[0] = store.start(w, history, depth, &slot.cursor);
    slot.pending = -1;
    if (slot.steps[0].extends_left && depth > 0) {
      slot.pending = 0;
      store.prefetch(slot.cursor, 0);
    }
    slot.longest_found = false;
    ++in_i;
  };
  auto resolve = [&](Slot& slot, int i) {
    if (i + 2 == order) {
      slot.longest_found = store.longest(&slot.cursor, i, &slot.longest_prob);
      slot.pending = -1;
      return;
    }
    // Written in place and read back field by field (a copy of the whole step read right after
    // its fields were stored would wait for the stores to retire).
    ngram_lookup::LookupStep& step = slot.steps[i + 1];
    step = store.middle(&slot.cursor, i);
    slot.pending = -1;
    if (step.found && step.extends_left && i + 1 < slot.depth) {
      slot.pending = i + 1;
      store.prefetch(slot.cursor, i + 1);
    }
  };

  // Scoring: word t of the stream is word `at_i` of sentence `at_b`.
  int64_t at_b = first, at_i = 0;
  NgramModel::State states[2] = {start, NgramModel::State()};
  int cur = 0;
  float sum = 0.0f;
  // Word e enters at slot e % span (`pos`); word e - k sits at slot (pos - k) mod span.
  int64_t pos = 0;
  auto slot_of = [&](int64_t k) -> Slot& { return ring[pos >= k ? pos - k : pos - k + span]; };
  const int64_t lead = static_cast<int64_t>(lookups) * kStageWords;
  for (int64_t e = 0; e < total + lead; ++e) {
    if (e < total) enter(ring[pos]);
    for (int i = 0; i < lookups; ++i) {
      const int64_t k = static_cast<int64_t>(i + 1) * kStageWords;
      if (e - k < 0 || e - k >= total) continue;
      Slot& slot = slot_of(k);
      if (slot.pending == i) resolve(slot, i);
    }
    if (e >= lead) {
      while (at_i == words_in(at_b)) {
        out[at_b++] = sum;
        at_i = 0;
        sum = 0.0f;
        cur = 0;
        states[0] = start;
      }
      const Slot& slot = slot_of(lead);
      Cached cached{slot};
      sum += ngram_lookup::score_state(cached, order, states[cur], slot.word, &states[cur ^ 1]).log10_prob;
      cur ^= 1;
      ++at_i;
    }
    if (++pos == span) pos = 0;
  }
  // The last sentence with words, then those without.
  for (; at_b < last; ++at_b) {
    out[at_b] = sum;
    sum = 0.0f;
  }
}

}  // namespace ngram_pipeline
}  // namespace speechdecode
