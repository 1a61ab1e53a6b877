#include "lm/kneser_ney.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <type_traits>

#include "common/errors.h"
#include "common/parallel.h"

namespace speechdecode {
namespace {

constexpr int32_t kUnk = 0;
constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;

// Positions inside one order's table. Order 1 is indexed by word id (every id is a unigram).
using Index = uint32_t;
constexpr Index kNone = std::numeric_limits<Index>::max();
constexpr int64_t kMaxRows = static_cast<int64_t>(kNone) - 1;

// Items per parallel work item at least: below this, scheduling costs more than it saves.
constexpr int64_t kMinChunk = 1 << 14;
// Work items per thread: enough to balance uneven chunks.
constexpr int64_t kChunksPerThread = 8;

// How parallel passes are cut: up to `threads` threads, work items of at least `grain` items.
struct Workers {
  int threads = 1;
  int64_t grain = kMinChunk;
};

int64_t chunk_count(int64_t n, const Workers& workers) {
  const int64_t grain = std::max<int64_t>(1, workers.grain);
  return std::max<int64_t>(1, std::min<int64_t>((n + grain - 1) / grain,
                                                static_cast<int64_t>(workers.threads) * kChunksPerThread));
}

// Splits [0, n) into chunks and runs fn(chunk, begin, end) for each, in parallel.
template <typename Fn>
void for_chunks(int64_t n, const Workers& workers, Fn&& fn) {
  if (n <= 0) return;
  const int64_t chunks = chunk_count(n, workers);
  parallel_for(chunks, workers.threads, [&](int64_t c) { fn(c, n * c / chunks, n * (c + 1) / chunks); });
}

inline void atomic_increment(Index* value) { __atomic_fetch_add(value, 1u, __ATOMIC_RELAXED); }

// Lexicographic comparison of n word ids.
inline int compare_ids(const int32_t* a, const int32_t* b, int n) {
  for (int j = 0; j < n; ++j) {
    if (a[j] != b[j]) return a[j] < b[j] ? -1 : 1;
  }
  return 0;
}

// a before b in lmplz's suffix order: last word first, then the one before, ...
inline bool suffix_less(const int32_t* a, const int32_t* b, int n) {
  for (int j = n - 1; j >= 0; --j) {
    if (a[j] != b[j]) return a[j] < b[j];
  }
  return false;
}

std::string argument_name(const char* what, int order) {
  return std::string(what) + "[" + std::to_string(order - 1) + "]";
}

std::string describe_row(const int32_t* row, int n, int64_t i) {
  std::string text = "row " + std::to_string(i) + " [";
  for (int j = 0; j < n; ++j) text += (j ? ", " : "") + std::to_string(row[j]);
  return text + "]";
}

std::string format_number(double value) {
  std::ostringstream out;
  out.precision(8);
  out << value;
  return out.str();
}

// The raw counts and the link structure between consecutive orders.
struct Tables {
  int order = 0;
  int64_t vocab = 0;
  std::vector<NgramTableView> view;  // view[n-1]: order n
  std::vector<uint64_t> unigram;     // raw count by word id (0: not counted)
  // child_begin[m][c]: first n-gram of order m+1 whose first m words are context c of order m
  // (c a word id for m = 1); one entry more than there are contexts.
  std::vector<std::vector<Index>> child_begin;
  // suffix[n][i]: index in order n-1 of the last n-1 words of n-gram i (n >= 2).
  std::vector<std::vector<Index>> suffix;
  // continuation[n][i]: distinct words v with (v, n-gram i) in order n+1 (n < N).
  std::vector<std::vector<Index>> continuation;
  // [bos_begin[n], bos_end[n]): the n-grams starting with <s> (contiguous: rows are sorted).
  std::vector<int64_t> bos_begin, bos_end;

  int64_t size(int n) const { return n == 1 ? vocab : view[n - 1].size; }
  const int32_t* row(int n, int64_t i) const { return view[n - 1].rows + i * n; }
  uint64_t raw(int n, int64_t i) const {
    return n == 1 ? unigram[i] : static_cast<uint64_t>(view[n - 1].counts[i]);
  }
  bool starts_with_bos(int n, int64_t i) const {
    return n == 1 ? i == kBos : (i >= bos_begin[n] && i < bos_end[n]);
  }
  // a(g): the raw count at the highest order and for n-grams starting with <s>, else the
  // number of distinct left extensions; a(<s>) = 0 (lmplz never sees <s> as a predicted word).
  uint64_t adjusted(int n, int64_t i) const {
    if (n == 1 && i == kBos) return 0;
    if (n == order || starts_with_bos(n, i)) return raw(n, i);
    return continuation[n][i];
  }
};

void validate_order(const Tables& t, int n, const Workers& workers) {
  const NgramTableView& v = t.view[n - 1];
  if (v.size > kMaxRows) {
    throw TensorError(argument_name("ngrams", n), "at most " + std::to_string(kMaxRows) + " rows",
                      std::to_string(v.size));
  }
  for_chunks(v.size, workers, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t* r = t.row(n, i);
      for (int j = 0; j < n; ++j) {
        if (r[j] < 0 || r[j] >= t.vocab) {
          throw TensorError(argument_name("ngrams", n), "word ids in [0, " + std::to_string(t.vocab) + ")",
                            describe_row(r, n, i));
        }
        if (j > 0 && r[j] == kBos) {
          throw TensorError(argument_name("ngrams", n), "<s> (id 1) only as the first word",
                            describe_row(r, n, i));
        }
      }
      if (i > 0 && compare_ids(r - n, r, n) >= 0) {
        throw TensorError(argument_name("ngrams", n), "rows sorted lexicographically without duplicates",
                          describe_row(r, n, i) + " after " + describe_row(r - n, n, i - 1));
      }
      if (v.counts[i] <= 0) {
        throw TensorError(argument_name("counts", n), "positive counts",
                          std::to_string(v.counts[i]) + " at [" + std::to_string(i) + "]");
      }
    }
  });
}

std::string missing_lower(int n, const int32_t* r, int64_t i, const char* part) {
  return std::string("every ") + std::to_string(n) + "-gram's " + part + " " + std::to_string(n - 1) +
         " words to be a " + std::to_string(n - 1) + "-gram; " + describe_row(r, n, i) + " has none";
}

// child_begin[n-1]: a chunked merge of order n's prefixes with order n-1's rows.
void link_prefixes(Tables& t, int n, const Workers& workers) {
  const int64_t contexts = t.size(n - 1);
  const int64_t m = t.view[n - 1].size;
  std::vector<Index>& begin_of = t.child_begin[n - 1];
  begin_of.assign(contexts + 1, 0);
  if (n == 2) {
    // Contexts are word ids: count bigrams per first word, then prefix sums.
    int64_t i = 0;
    for (int64_t w = 0; w < contexts; ++w) {
      begin_of[w] = static_cast<Index>(i);
      while (i < m && t.row(2, i)[0] == w) {
        if (t.unigram[w] == 0 || t.unigram[t.row(2, i)[1]] == 0) {
          const bool first = t.unigram[w] == 0;
          throw TensorError(argument_name("ngrams", 2),
                            missing_lower(2, t.row(2, i), i, first ? "first" : "last"),
                            "a word without a unigram count");
        }
        ++i;
      }
    }
    begin_of[contexts] = static_cast<Index>(m);
    return;
  }
  const int k = n - 1;
  auto prefix_vs_row = [&](int64_t i, int64_t p) { return compare_ids(t.row(n, i), t.row(k, p), k); };
  // First n-gram whose prefix is >= context p.
  auto lower = [&](int64_t p) {
    int64_t lo = 0, hi = m;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (prefix_vs_row(mid, p) < 0) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  };
  for_chunks(contexts, workers, [&](int64_t, int64_t p0, int64_t p1) {
    int64_t i = p0 == 0 ? 0 : lower(p0);
    const int64_t i1 = p1 == contexts ? m : lower(p1);
    for (int64_t p = p0; p < p1; ++p) {
      if (i < i1 && prefix_vs_row(i, p) < 0) {
        throw TensorError(argument_name("ngrams", n), missing_lower(n, t.row(n, i), i, "first"),
                          "a missing prefix");
      }
      begin_of[p] = static_cast<Index>(i);
      while (i < i1 && prefix_vs_row(i, p) == 0) ++i;
    }
    if (i < i1) {
      throw TensorError(argument_name("ngrams", n), missing_lower(n, t.row(n, i), i, "first"),
                        "a missing prefix");
    }
  });
  begin_of[contexts] = static_cast<Index>(m);
}

// suffix[n]: for the extensions of context p (sorted by last word), the last words are looked
// up among the extensions of p's own suffix, which are sorted the same way.
void link_suffixes(Tables& t, int n, const Workers& workers) {
  const int64_t m = t.view[n - 1].size;
  std::vector<Index>& out = t.suffix[n];
  out.assign(m, 0);
  if (n == 2) {
    for_chunks(m, workers, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = static_cast<Index>(t.row(2, i)[1]);
    });
    return;
  }
  const int64_t contexts = t.size(n - 1);
  const std::vector<Index>& children = t.child_begin[n - 1];
  const std::vector<Index>& lower_children = t.child_begin[n - 2];
  const std::vector<Index>& context_suffix = t.suffix[n - 1];
  for_chunks(contexts, workers, [&](int64_t, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      if (children[p] == children[p + 1]) continue;
      const Index q = context_suffix[p];
      int64_t lo = lower_children[q];
      const int64_t hi = lower_children[q + 1];
      auto last_word = [&](int64_t j) { return t.row(n - 1, j)[n - 2]; };
      for (int64_t i = children[p]; i < children[p + 1]; ++i) {
        const int32_t word = t.row(n, i)[n - 1];
        // Galloping search from lo: the next extension is usually close.
        int64_t a = lo, b = lo;
        for (int64_t step = 1; b < hi && last_word(b) < word; step *= 2) {
          a = b + 1;
          b = std::min(hi, b + step);
        }
        while (a < b) {
          const int64_t mid = a + (b - a) / 2;
          if (last_word(mid) < word) {
            a = mid + 1;
          } else {
            b = mid;
          }
        }
        if (a == hi || t.row(n - 1, a)[n - 2] != word) {
          throw TensorError(argument_name("ngrams", n), missing_lower(n, t.row(n, i), i, "last"),
                            "a missing suffix");
        }
        out[i] = static_cast<Index>(a);
        lo = a + 1;
      }
    }
  });
}

void count_continuations(Tables& t, int n, const Workers& workers) {
  std::vector<Index>& cont = t.continuation[n];
  cont.assign(t.size(n), 0);
  const std::vector<Index>& sfx = t.suffix[n + 1];
  for_chunks(static_cast<int64_t>(sfx.size()), workers, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) atomic_increment(&cont[sfx[i]]);
  });
  // Counts of whole padded sentences give every counted n-gram that does not start with <s> a
  // left neighbour; without one its adjusted count would be 0 and its context's mass undefined.
  for_chunks(t.size(n), workers, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (cont[i] == 0 && t.raw(n, i) > 0 && !t.starts_with_bos(n, i)) {
        const int32_t word = static_cast<int32_t>(i);
        const int32_t* r = n == 1 ? &word : t.row(n, i);
        throw TensorError(argument_name("ngrams", n + 1),
                          "a " + std::to_string(n + 1) + "-gram (v, g) for every " + std::to_string(n) +
                              "-gram g not starting with <s> (counts of whole <s>-padded sentences)",
                          "none for " + std::to_string(n) + "-gram " + describe_row(r, n, i));
      }
    }
  });
}

bool is_pruned(const Tables& t, const std::vector<uint64_t>& prune, int n, int64_t i) {
  const uint64_t threshold = prune[n - 1];
  if (threshold == 0) return false;
  if (n == 1 && (i == kUnk || i == kBos || i == kEos)) return false;
  return t.raw(n, i) <= threshold;
}

std::array<int64_t, 4> count_of_counts(const Tables& t, int n, const Workers& workers) {
  const int64_t size = t.size(n);
  std::vector<std::array<int64_t, 4>> partial(chunk_count(size, workers), std::array<int64_t, 4>{});
  for_chunks(size, workers, [&](int64_t c, int64_t begin, int64_t end) {
    std::array<int64_t, 4> local{};
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t a = t.adjusted(n, i);
      if (a >= 1 && a <= 4) ++local[a - 1];
    }
    partial[c] = local;
  });
  std::array<int64_t, 4> total{};
  for (const auto& p : partial) {
    for (int k = 0; k < 4; ++k) total[k] += p[k];
  }
  return total;
}

// Index of the n-gram `ids` in order n (it exists: every suffix was linked), by binary search.
int64_t find_row(const Tables& t, int n, const int32_t* ids) {
  if (n == 1) return ids[0];
  int64_t lo = 0, hi = t.view[n - 1].size;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (compare_ids(t.row(n, mid), ids, n) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// kenlm issue 427. lmplz streams its N-grams in suffix order, with every sentence start padded
// by N-1 <s> (so `<s> <s> w` stands for our bigram `<s> w` at N = 3), and derives the lower
// orders from that stream, keeping the current suffix of each order in a buffer. The buffered
// n-grams still there at the end of the stream (the suffixes of the last N-gram, up to the one
// that starts at its last <s>) are tallied with their raw count, not their adjusted count.
void apply_count_of_counts_quirk(const Tables& t, std::vector<std::array<int64_t, 4>>& counts,
                                 const Workers& workers) {
  const int order = t.order;
  if (order < 2) return;
  std::vector<int32_t> last;  // the last N-gram of lmplz's stream, as N ids
  int suffix_orders = 0;      // how many of its suffixes (lengths 1..) are buffered
  auto consider = [&](const std::vector<int32_t>& candidate, int buffered) {
    if (last.empty() || suffix_less(last.data(), candidate.data(), order)) {
      last = candidate;
      suffix_orders = buffered;
    }
  };
  const NgramTableView& top = t.view[order - 1];
  if (top.size > 0) {
    std::vector<int64_t> best(chunk_count(top.size, workers), -1);
    for_chunks(top.size, workers, [&](int64_t c, int64_t begin, int64_t end) {
      int64_t b = begin;
      for (int64_t i = begin + 1; i < end; ++i) {
        if (suffix_less(t.row(order, b), t.row(order, i), order)) b = i;
      }
      best[c] = b;
    });
    for (int64_t b : best) {
      if (b >= 0) consider(std::vector<int32_t>(t.row(order, b), t.row(order, b) + order), order - 1);
    }
  }
  for (int k = 2; k < order; ++k) {
    for (int64_t i = t.bos_begin[k]; i < t.bos_end[k]; ++i) {
      std::vector<int32_t> padded(order - k, kBos);
      padded.insert(padded.end(), t.row(k, i), t.row(k, i) + k);
      consider(padded, k);
    }
  }
  if (last.empty()) return;
  for (int m = 1; m <= suffix_orders; ++m) {
    const int64_t i = find_row(t, m, last.data() + order - m);
    const uint64_t adjusted = t.adjusted(m, i);
    const uint64_t raw = m == 1 && i == kBos ? 0 : t.raw(m, i);
    if (adjusted >= 1 && adjusted <= 4) --counts[m - 1][adjusted - 1];
    if (raw >= 1 && raw <= 4) ++counts[m - 1][raw - 1];
  }
}

// Chen & Goodman's equation (26), in lmplz's float operations or in double.
template <typename Real>
std::array<Real, 4> discounts_for(const std::array<int64_t, 4>& tk, const std::array<double, 3>& fallback,
                                  int n, std::string& reason) {
  std::array<Real, 4> d{};
  for (int k = 1; k <= 3; ++k) {
    if (tk[k - 1] == 0) {
      reason = "no " + std::to_string(n) + "-grams with adjusted count " + std::to_string(k);
      break;
    }
  }
  if (reason.empty()) {
    const auto t = [&](int k) { return static_cast<uint64_t>(tk[k - 1]); };
    Real y;
    if (std::is_same<Real, float>::value) {
      y = static_cast<float>(t(1)) / static_cast<float>(t(1) + 2.0 * t(2));
    } else {
      y = static_cast<double>(t(1)) / (static_cast<double>(t(1)) + 2.0 * static_cast<double>(t(2)));
    }
    for (int k = 1; k <= 3; ++k) {
      d[k] = static_cast<Real>(k) -
             static_cast<Real>(k + 1) * y * static_cast<Real>(t(k + 1)) / static_cast<Real>(t(k));
      if (d[k] < 0 || d[k] > k) {
        char text[64];
        std::snprintf(text, sizeof(text), "D%d=%.6g is outside [0, %d]", k, static_cast<double>(d[k]), k);
        reason = text;
        break;
      }
    }
  }
  if (!reason.empty()) {
    for (int k = 1; k <= 3; ++k) d[k] = static_cast<Real>(fallback[k - 1]);
  }
  d[0] = 0;
  return d;
}

template <typename Real>
inline Real discount_of(const std::array<Real, 4>& d, uint64_t a) {
  return d[std::min<uint64_t>(a, 3)];
}

// gamma(c) from the tallies of its extensions, in lmplz's order of operations.
template <typename Real>
inline Real gamma_of(const std::array<Real, 4>& d, const uint64_t n_k[4], uint64_t pruned_mass,
                     uint64_t total) {
  Real gamma = 0;
  for (int k = 1; k <= 3; ++k) gamma += d[k] * static_cast<Real>(n_k[k]);
  gamma += static_cast<Real>(pruned_mass);
  gamma /= static_cast<Real>(total);
  return gamma;
}

template <typename Real>
inline Real log10_of(Real x) {
  return std::log10(x);
}

// Gives contexts [0, contexts) to threads in chunks of about equal numbers of extensions.
template <typename Fn>
void for_context_chunks(const std::vector<Index>& children, int64_t contexts, const Workers& workers,
                        Fn&& fn) {
  const int64_t total = children[contexts];
  const int64_t chunks = chunk_count(std::max(total, contexts), workers);
  std::vector<int64_t> bounds(chunks + 1);
  for (int64_t c = 0; c <= chunks; ++c) {
    const int64_t target = total * c / chunks;
    bounds[c] = std::lower_bound(children.begin(), children.begin() + contexts, static_cast<Index>(target)) -
                children.begin();
  }
  bounds[chunks] = contexts;
  parallel_for(chunks, workers.threads, [&](int64_t c) { fn(bounds[c], bounds[c + 1]); });
}

template <typename Real>
class Estimator {
 public:
  Estimator(Tables& tables, const KneserNeyOptions& options, const Workers& workers,
            std::vector<KneserNeyOrder>& out, KneserNeySink* sink)
      : t_(tables), options_(options), workers_(workers), out_(out), sink_(sink) {}

  void run(const std::vector<std::array<Real, 4>>& discounts) {
    const int order = t_.order;
    std::vector<Real> previous_probs, probs, gammas;
    std::vector<Index> previous_rank, rank;
    for (int n = 1; n <= order; ++n) {
      if (n == 1) {
        probs = unigram_probs(discounts[0]);
      } else {
        gammas.assign(t_.size(n - 1), Real(1));
        probs = extend(n, discounts[n - 1], previous_probs, gammas);
        rank = finish(n - 1, previous_probs, &gammas, previous_rank);
        hand_to_sink(n - 1);
        previous_rank.swap(rank);
        // Order n-1 is done: free what only it used.
        t_.suffix[n - 1] = std::vector<Index>();
        t_.child_begin[n - 1] = std::vector<Index>();
        t_.continuation[n - 1] = std::vector<Index>();
      }
      previous_probs.swap(probs);
    }
    finish(order, previous_probs, nullptr, previous_rank);
    hand_to_sink(order);
  }

 private:
  void hand_to_sink(int n) {
    if (!sink_) return;
    KneserNeyOrder& o = out_[n - 1];
    sink_->order(n, o);
    o.rows = std::vector<int32_t>();
    o.log10_probs = std::vector<double>();
    o.backoffs = std::vector<double>();
  }

  std::vector<Real> unigram_probs(const std::array<Real, 4>& d) {
    const int64_t vocab = t_.vocab;
    uint64_t total = 0, pruned_mass = 0, n_k[4] = {0, 0, 0, 0};
    int64_t kept = 0;
    for (int64_t w = 0; w < vocab; ++w) {
      const uint64_t a = t_.adjusted(1, w);
      total += a;
      if (is_pruned(t_, options_.prune, 1, w)) {
        pruned_mass += a;
      } else {
        ++kept;
        if (a > 0) ++n_k[std::min<uint64_t>(a, 3)];
      }
    }
    if (total == 0) {
      throw TensorError("counts[0]", "counts of at least one word besides <s>", "none");
    }
    const Real gamma = gamma_of(d, n_k, pruned_mass, total);
    Real uniform;
    if (std::is_same<Real, float>::value) {
      uniform = static_cast<float>(1.0 / static_cast<float>(static_cast<uint64_t>(kept - 1)));
    } else {
      uniform = Real(1) / static_cast<Real>(kept - 1);
    }
    std::vector<Real> probs(vocab);
    for (int64_t w = 0; w < vocab; ++w) {
      if (w == kBos) {
        probs[w] = Real(1);
        continue;
      }
      const uint64_t a = t_.adjusted(1, w);
      const Real u = (static_cast<Real>(a) - discount_of(d, a)) / static_cast<Real>(total);
      probs[w] = u + gamma * uniform;
    }
    return probs;
  }

  // One pass over the contexts of order n-1: their gammas and the probabilities of order n.
  std::vector<Real> extend(int n, const std::array<Real, 4>& d, const std::vector<Real>& lower,
                           std::vector<Real>& gammas) {
    const std::vector<Index>& children = t_.child_begin[n - 1];
    const std::vector<Index>& sfx = t_.suffix[n];
    std::vector<Real> probs(t_.view[n - 1].size);
    for_context_chunks(children, t_.size(n - 1), workers_, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t begin = children[p], end = children[p + 1];
        if (begin == end) continue;
        uint64_t total = 0, pruned_mass = 0, n_k[4] = {0, 0, 0, 0};
        for (int64_t i = begin; i < end; ++i) {
          const uint64_t a = t_.adjusted(n, i);
          total += a;
          if (is_pruned(t_, options_.prune, n, i)) {
            pruned_mass += a;
          } else if (a > 0) {
            ++n_k[std::min<uint64_t>(a, 3)];
          }
        }
        const Real gamma = gamma_of(d, n_k, pruned_mass, total);
        gammas[p] = gamma;
        const Real denominator = static_cast<Real>(total);
        for (int64_t i = begin; i < end; ++i) {
          if (is_pruned(t_, options_.prune, n, i)) continue;
          const uint64_t a = t_.adjusted(n, i);
          const Real u = (static_cast<Real>(a) - discount_of(d, a)) / denominator;
          const Real backed_off = gamma * lower[sfx[i]];
          probs[i] = u + backed_off;
        }
      }
    });
    return probs;
  }

  // Writes order n's kept n-grams in suffix order; returns each kept n-gram's output position.
  std::vector<Index> finish(int n, const std::vector<Real>& probs, const std::vector<Real>* gammas,
                            const std::vector<Index>& lower_rank) {
    const int64_t size = t_.size(n);
    std::vector<Index> position(size, kNone);
    int64_t kept = 0;
    if (n == 1) {
      for (int64_t w = 0; w < size; ++w) {
        if (!is_pruned(t_, options_.prune, 1, w)) position[w] = static_cast<Index>(kept++);
      }
    } else {
      kept = suffix_sort(n, lower_rank, position);
    }
    KneserNeyOrder& out = out_[n - 1];
    out.rows.resize(kept * n);
    out.log10_probs.resize(kept);
    if (gammas) out.backoffs.resize(kept);
    // Reads in index order, writes at the output positions (writes scatter better than reads).
    for_chunks(size, workers_, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Index r = position[i];
        if (r == kNone) continue;
        if (n == 1) {
          out.rows[r] = static_cast<int32_t>(i);
        } else {
          const int32_t* from = t_.row(n, i);
          int32_t* to = out.rows.data() + static_cast<int64_t>(r) * n;
          for (int j = 0; j < n; ++j) to[j] = from[j];
        }
        out.log10_probs[r] = std::min(Real(0), log10_of(probs[i]));
        if (gammas) out.backoffs[r] = log10_of((*gammas)[i]);
      }
    });
    return position;
  }

  // Output positions of the kept n-grams of order n, sorted by (suffix's output position, first
  // word); returns how many are kept. A counting sort with one bucket per kept suffix: rows are
  // lexicographic, so within a bucket a smaller index is a smaller first word, and filling the
  // buckets in index order is the stable sort. Each thread owns a range of buckets and scans all
  // rows for its own (a sequential read of 4 bytes per row): no atomics, and a result that does
  // not depend on scheduling.
  int64_t suffix_sort(int n, const std::vector<Index>& lower_rank, std::vector<Index>& position) {
    const int64_t size = t_.view[n - 1].size;
    const std::vector<Index>& sfx = t_.suffix[n];
    int64_t buckets = 0;
    for (Index r : lower_rank) buckets += r != kNone;
    std::vector<Index> bucket_of(size);  // kNone: pruned
    for_chunks(size, workers_, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        bucket_of[i] = is_pruned(t_, options_.prune, n, i) ? kNone : lower_rank[sfx[i]];
      }
    });
    const int64_t ranges = std::max<int64_t>(1, std::min<int64_t>(workers_.threads, buckets));
    auto range_begin = [&](int64_t k) { return static_cast<Index>(buckets * k / ranges); };
    std::vector<Index> cursor(buckets + 1, 0);  // first counts, then the next free slot per bucket
    std::vector<int64_t> range_rows(ranges + 1, 0);
    parallel_for(ranges, workers_.threads, [&](int64_t k) {
      const Index lo = range_begin(k), hi = range_begin(k + 1);
      int64_t rows = 0;
      for (int64_t i = 0; i < size; ++i) {
        const Index b = bucket_of[i];
        if (b >= lo && b < hi) {
          ++cursor[b];
          ++rows;
        }
      }
      range_rows[k + 1] = rows;
    });
    for (int64_t k = 0; k < ranges; ++k) range_rows[k + 1] += range_rows[k];
    parallel_for(ranges, workers_.threads, [&](int64_t k) {
      const Index lo = range_begin(k), hi = range_begin(k + 1);
      Index next = static_cast<Index>(range_rows[k]);
      for (Index b = lo; b < hi; ++b) {
        const Index rows = cursor[b];
        cursor[b] = next;
        next += rows;
      }
      for (int64_t i = 0; i < size; ++i) {
        const Index b = bucket_of[i];
        if (b >= lo && b < hi) {
          const Index r = cursor[b]++;
          position[i] = r;
        }
      }
    });
    return range_rows[ranges];
  }

  Tables& t_;
  const KneserNeyOptions& options_;
  Workers workers_;
  std::vector<KneserNeyOrder>& out_;
  KneserNeySink* sink_;
};

// How many n-grams of each order the model keeps: finish() keeps an n-gram when it is not
// pruned and its suffix was kept.
std::vector<int64_t> kept_rows(const Tables& t, const std::vector<uint64_t>& prune) {
  std::vector<int64_t> kept(t.order, 0);
  std::vector<uint8_t> lower, keep;
  for (int n = 1; n <= t.order; ++n) {
    keep.assign(t.size(n), 0);
    for (int64_t i = 0; i < t.size(n); ++i) {
      keep[i] = !is_pruned(t, prune, n, i) && (n == 1 || lower[t.suffix[n][i]]);
      kept[n - 1] += keep[i];
    }
    lower.swap(keep);
  }
  return kept;
}

}  // namespace

std::vector<KneserNeyOrder> estimate_mkn(const std::vector<NgramTableView>& counts, int64_t vocab_size,
                                         const KneserNeyOptions& options, KneserNeySink* sink) {
  const int order = static_cast<int>(counts.size());
  if (order < 1) throw TensorError("ngrams", "tables for orders 1..N, N >= 1", "none");
  if (vocab_size < 3 || vocab_size > std::numeric_limits<int32_t>::max()) {
    throw TensorError("vocab_size", "at least 3 (<unk>, <s>, </s>) and below 2^31",
                      std::to_string(vocab_size));
  }
  if (static_cast<int>(options.prune.size()) != order) {
    throw TensorError("prune", std::to_string(order) + " thresholds", std::to_string(options.prune.size()));
  }
  for (int n = 2; n <= order; ++n) {
    if (options.prune[n - 1] < options.prune[n - 2]) {
      throw TensorError("prune", "non-decreasing thresholds", "a decrease at order " + std::to_string(n));
    }
  }
  for (int k = 0; k < 3; ++k) {
    const double d = options.fallback[k];
    if (!(d >= 0 && d <= k + 1)) {
      throw TensorError("discount_fallback",
                        "D" + std::to_string(k + 1) + " in [0, " + std::to_string(k + 1) + "]",
                        format_number(d));
    }
  }
  int64_t total_rows = 0;
  for (const auto& v : counts) total_rows += v.size;
  Workers workers;
  workers.grain = options.grain > 0 ? options.grain : kMinChunk;
  workers.threads = total_rows < 4 * workers.grain ? 1 : resolve_num_threads(options.num_threads);

  Tables t;
  t.order = order;
  t.vocab = vocab_size;
  t.view = counts;
  for (int n = 1; n <= order; ++n) validate_order(t, n, workers);
  t.unigram.assign(vocab_size, 0);
  for (int64_t i = 0; i < counts[0].size; ++i)
    t.unigram[counts[0].rows[i]] = static_cast<uint64_t>(counts[0].counts[i]);
  t.bos_begin.assign(order + 1, 0);
  t.bos_end.assign(order + 1, 0);
  for (int n = 2; n <= order; ++n) {
    // Rows are sorted, so those starting with <s> are one run: [first word >= 1, first word >= 2).
    const NgramTableView& v = counts[n - 1];
    auto first_at_least = [&](int32_t word) {
      int64_t lo = 0, hi = v.size;
      while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (v.rows[mid * n] < word) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    };
    t.bos_begin[n] = first_at_least(kBos);
    t.bos_end[n] = first_at_least(kBos + 1);
  }

  t.child_begin.resize(order);
  t.suffix.resize(order + 1);
  t.continuation.resize(order);
  for (int n = 2; n <= order; ++n) {
    link_prefixes(t, n, workers);
    link_suffixes(t, n, workers);
  }
  for (int n = 1; n < order; ++n) count_continuations(t, n, workers);

  std::vector<KneserNeyOrder> out(order);
  for (int n = 1; n <= order; ++n) out[n - 1].count_of_counts = count_of_counts(t, n, workers);
  if (!options.float64) {
    std::vector<std::array<int64_t, 4>> tk(order);
    for (int n = 1; n <= order; ++n) tk[n - 1] = out[n - 1].count_of_counts;
    apply_count_of_counts_quirk(t, tk, workers);
    for (int n = 1; n <= order; ++n) out[n - 1].count_of_counts = tk[n - 1];
  }

  auto run = [&](auto zero) {
    using Real = decltype(zero);
    std::vector<std::array<Real, 4>> discounts(order);
    for (int n = 1; n <= order; ++n) {
      KneserNeyOrder& o = out[n - 1];
      discounts[n - 1] = discounts_for<Real>(o.count_of_counts, options.fallback, n, o.fallback_reason);
      for (int k = 0; k < 3; ++k) o.discounts[k] = discounts[n - 1][k + 1];
    }
    for (const KneserNeyOrder& o : out) {
      if (!o.fallback_reason.empty() && !options.allow_fallback) return;
    }
    if (sink) sink->begin(kept_rows(t, options.prune));
    Estimator<Real>(t, options, workers, out, sink).run(discounts);
  };
  if (options.float64) {
    run(0.0);
  } else {
    run(0.0f);
  }
  return out;
}

}  // namespace speechdecode
