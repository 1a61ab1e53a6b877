// Interpolated modified Kneser-Ney estimation, computed exactly as KenLM's lmplz computes it.
//
// The method is Chen & Goodman, "An Empirical Study of Smoothing Techniques for Language
// Modeling" (1998), section 3 (modified Kneser-Ney, interpolated; discounts from equation 26),
// with the choices of Heafield et al., "Scalable Modified Kneser-Ney Language Model Estimation"
// (ACL 2013) as lmplz implements them (lm/builder/{adjust_counts,initial_probabilities,
// interpolate}.cc in KenLM). For a model of order N over word ids (<unk> = 0, <s> = 1, </s> = 2):
//
//   a(g)      adjusted count: the raw count c(g) for order N and for n-grams starting with <s>,
//             else the number of distinct words v with c(v g) > 0; a(<s>) = 0.
//   t_{n,k}   number of order-n n-grams with a = k (k = 1..4), pruned ones included.
//   D_n(k)    k - (k+1) Y t_{n,k+1} / t_{n,k} with Y = t_{n,1} / (t_{n,1} + 2 t_{n,2}), k = 1..3
//             (D(0) = 0, D(k > 3) = D(3)); the fallback values when a t_{n,k} is 0 or a D
//             leaves [0, k].
//   gamma(c)  (sum_k D(k) N_k(c) + sum of a over pruned extensions) / S(c), S(c) = sum_x a(cx)
//   p(w|c)    (a(cw) - D(a(cw))) / S(c) + gamma(c) p(w|c'), c' = c minus its first word;
//             unigrams interpolate with the uniform 1/|V| (|V| = kept unigrams but <s>);
//             p(<s>) = 1.
//   pruning   (lmplz --prune) an n-gram is dropped when its raw count <= prune[n-1]; it still
//             counts in S(c), in gamma(c) (as above) and in t_{n,k}. Unigrams too when
//             prune[0] > 0 (ids without a count included), but never <unk>, <s>, </s> (lmplz
//             keeps and prints those three; a </s> seen <= prune[0] times it would print with
//             log10 p 0 and leave out of its header and of |V|: we keep it as a word). As
//             thresholds never decrease, an n-gram with a pruned word is pruned itself.
//
// KenLM computes in float32, in a fixed order of operations; the default mode repeats those
// operations (same roundings, log10f) so that the printed numbers agree with lmplz's digit for
// digit, and repeats its count-of-counts quirk (kenlm issue 427): the suffixes of the last
// N-gram of lmplz's stream (suffix order, <s>-padded N-grams included), held in its buffers when
// the stream ends, enter t_{n,k} with their raw count instead of their adjusted count. The
// float64 mode computes the same formulas in double without the quirk.
//
// Data flow (every order's table is lexicographically sorted, so the extensions c x of a
// context c are one contiguous run of the next order's table):
//   1. link      per order n >= 2: child_begin[n-1] (first n-gram of each (n-1)-gram context,
//                by a chunked merge) and suffix[n][i] (index of w2..wn in order n-1, found by
//                galloping search among the extensions of suffix[n-1][context]).
//   2. adjust    a for orders < N: a histogram of suffix[n+1] (atomic increments).
//   3. discount  t_{n,k} (parallel histogram, then the quirk), D_n(k), fallbacks.
//   4. estimate  per order, low to high: one pass over the contexts gives gamma(c) and, for
//                each kept extension, p = u + gamma(c) p(suffix) from the order below.
//   5. output    kept n-grams in lmplz's order (suffix order: by last word, then the one before,
//                ...): a stable counting sort of order n by the output position of its suffix
//                (rows are lexicographic, so ties come out by first word); log10 p (capped at
//                0) and log10 gamma as the back-off (0 where the n-gram is no context).
// Orders are finished one by one, low to high, and their working arrays freed: about 20 bytes
// per n-gram (links, adjusted counts, probabilities) on top of the input and output arrays.
// Every pass runs on num_threads threads; the result does not depend on their number.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace speechdecode {

// One order n of raw counts: rows[i * n .. i * n + n) are the word ids of n-gram i (int32,
// sorted lexicographically, unique), counts[i] its count (> 0).
struct NgramTableView {
  const int32_t* rows = nullptr;
  const int64_t* counts = nullptr;
  int64_t size = 0;
};

struct KneserNeyOptions {
  // Raw-count thresholds per order (size N), as lmplz's --prune after padding; 0 keeps all.
  std::vector<uint64_t> prune;
  // D1, D2, D3+ for an order whose discounts cannot be estimated (lmplz --discount_fallback).
  std::array<double, 3> fallback = {0.5, 1.0, 1.5};
  // Double precision without lmplz's roundings and count-of-counts quirk.
  bool float64 = false;
  int num_threads = 0;  // <= 0: all hardware threads
  // Items per parallel work item (0: the default, 16384); inputs under 4 items' worth run on
  // one thread. Tests make it small to run the parallel code paths on small inputs.
  int64_t grain = 0;
  // false: when an order needs the fallback discounts, stop before estimating (the result
  // holds the count-of-counts and fallback reasons only, and a sink sees nothing).
  bool allow_fallback = true;
};

// One order of the resulting back-off model: kept n-grams in lmplz's (suffix) order.
struct KneserNeyOrder {
  std::vector<int32_t> rows;                 // [kept, n]
  std::vector<double> log10_probs;           // [kept]
  std::vector<double> backoffs;              // [kept] log10; empty for the highest order
  std::array<int64_t, 4> count_of_counts{};  // t_{n,1..4} the discounts came from
  std::array<double, 3> discounts{};         // D1, D2, D3+ used
  std::string fallback_reason;               // why the fallback was used; empty if not
};

// Estimates the model from counts[n-1] (orders 1..N) over a vocabulary of vocab_size ids.
// Beyond what lmplz can be given: every id is a unigram of the model unless pruned (ids
// without a count get adjusted count 0, like an unseen <unk>, and are pruned when
// prune[0] > 0), and a <unk> that occurs in the counts is a word like any other (its own
// discounted count, and a back-off where it is a context).
// Throws TensorError naming "ngrams[k]" / "counts[k]" for unsorted or duplicate rows, ids out
// of range, <s> after the first position, non-positive counts, or an n-gram whose prefix or
// suffix is missing from the order below, and InvalidArgumentError-style TensorError for
// bad options. Takes no Python lock.
// With a sink, each order goes to the sink as soon as it is final (orders 1..N in turn, after
// begin() with the kept n-grams per order) and is freed after it: the model is never whole in
// memory, and the returned orders hold only count_of_counts, discounts and fallback_reason.
class KneserNeySink {
 public:
  virtual ~KneserNeySink() = default;
  virtual void begin(const std::vector<int64_t>& kept) = 0;
  virtual void order(int n, const KneserNeyOrder& o) = 0;
};

std::vector<KneserNeyOrder> estimate_mkn(const std::vector<NgramTableView>& counts, int64_t vocab_size,
                                         const KneserNeyOptions& options, KneserNeySink* sink = nullptr);

}  // namespace speechdecode
