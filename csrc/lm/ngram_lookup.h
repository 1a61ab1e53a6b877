// The back-off lookup under every scoring call, for both stores of a model: NgramModel's probing
// tables (ngram_model.cc) and a mapped KenLM binary (kenlm_binary.cc).
//
// Scoring w after a history h1..hk (most recent first) reads the longest stored n-gram
// hi..h1 w, one order at a time: the unigram w, then the 2-gram h1 w, the 3-gram h2 h1 w, ...
// It stops at the first order that is missing, at an n-gram that no longer n-gram ends with
// (extends_left false: no longer match can exist), or at the highest order. The state after w
// keeps the longest match that some longer n-gram extends (its backoff is not the -0.0 mark;
// see ngram_model.h), right-minimised as KenLM's.
//
// A store is a type `Tables` with three steps for the word being scored:
//   LookupStep unigram();                 // w itself (always stored)
//   LookupStep middle(int i);             // the (i + 2)-gram h(i+1)..h1 w, for i + 2 < order
//   bool longest(int i, float* prob);     // the order-gram (i + 2 == order)
// Steps are made in order and the store may carry state from one step to the next.
#pragma once

#include <cstdint>
#include <cstring>

#include "lm/arpa_reader.h"
#include "lm/ngram_model.h"

namespace speechdecode {
namespace ngram_lookup {

// A backoff of -0.0 (the bit pattern, not the number) marks an n-gram that is nobody's context.
constexpr uint32_t kNoExtensionBits = 0x80000000u;
inline bool has_extension(float backoff) {
  uint32_t bits;
  std::memcpy(&bits, &backoff, sizeof bits);
  return bits != kNoExtensionBits;
}

struct LookupStep {
  bool found = false;
  bool extends_left = false;  // some longer n-gram ends with this one
  float prob = 0.0f;          // log10, <= 0
  float backoff = 0.0f;
};

// The longest match: its probability and length, and `keep`, the length of the state after w.
struct Match {
  float prob;
  int length;
  int keep;
};

// The longest match of w after `depth` history words. backoffs, when given, receives the backoff
// of every matched n-gram: [0] w's, [i + 1] the (i + 2)-gram's.
template <typename Tables>
inline Match longest_match(Tables& tables, int order, int depth, float* backoffs) {
  const LookupStep unigram = tables.unigram();
  Match m{unigram.prob, 1, has_extension(unigram.backoff) ? 1 : 0};
  if (backoffs != nullptr) backoffs[0] = unigram.backoff;
  bool more = unigram.extends_left;
  for (int i = 0; i < depth && more; ++i) {
    const int n = i + 2;
    if (n == order) {
      float prob;
      if (tables.longest(i, &prob)) {
        m.prob = prob;
        m.length = n;
      }
      break;
    }
    const LookupStep step = tables.middle(i);
    if (!step.found) break;
    m.prob = step.prob;
    m.length = n;
    if (backoffs != nullptr) backoffs[i + 1] = step.backoff;
    if (has_extension(step.backoff)) m.keep = n;
    more = step.extends_left;
  }
  return m;
}

// Scores w after state `in` and writes the state after it to *out (out must not alias in): the
// longest match plus the backoffs of the contexts longer than the match, added in KenLM's order
// (the shortest unmatched context first), so sums equal KenLM's bit for bit.
template <typename Tables>
inline NgramModel::FullScore score_state(Tables& tables, int order, const NgramModel::State& in, WordId w,
                                         NgramModel::State* out) {
  const Match m = longest_match(tables, order, in.length, out->backoff);
  float prob = m.prob;
  for (int j = m.length - 1; j < in.length; ++j) prob += in.backoff[j];
  out->words[0] = w;
  out->length = static_cast<uint8_t>(m.keep);
  for (int j = 1; j < m.keep; ++j) out->words[j] = in.words[j - 1];
  return {prob, static_cast<uint8_t>(m.length), w == kUnkId};
}

}  // namespace ngram_lookup
}  // namespace speechdecode
