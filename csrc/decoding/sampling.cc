#include "decoding/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"

namespace speechdecode {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Candidates for a nucleus cut (top-p, RAS) are found with a histogram of the probabilities over
// quarter-octave bins (bin b holds values in [2^(b/4 - 40), 2^((b+1)/4 - 40)); bin 0 also holds
// everything smaller): the bins that hold the cut give a value floor, and only the values above
// it are sorted. The sort, not the histogram, decides the cut, so the floor only has to be low
// enough; when it is not (a rounding corner), everything is collected.
constexpr int kBins = 161;
constexpr int kBinOffset = 348;  // float32 bits >> 21 of 2^-40: 8 exponent bits, 2 mantissa bits
// Rows are spread over threads only when a call has enough work to pay for starting them.
constexpr int64_t kElementsPerThread = 1 << 17;
// Blocks of the inverse-CDF scan: a block whose sum keeps the running total below the target
// is added whole instead of element by element.
constexpr int64_t kDrawBlock = 256;

std::string number(double v) {
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

std::string at_row(double v, int64_t row) { return number(v) + " at row " + std::to_string(row); }

// Scans a row for NaN / +inf / all -inf (errors name the row) and returns its maximum.
float checked_max(const float* x, int64_t vocab, int64_t row) {
  float mx = -kInf;
  int bad = 0;
#pragma omp simd reduction(max : mx) reduction(| : bad)
  for (int64_t i = 0; i < vocab; ++i) {
    bad |= !(x[i] < kInf);       // NaN or +inf
    mx = mx > x[i] ? mx : x[i];  // this form (not std::max) vectorizes
  }
  if (bad) {
    for (int64_t i = 0; i < vocab; ++i) {
      if (std::isnan(x[i])) throw TensorError("logits", "no NaN", "NaN in row " + std::to_string(row));
    }
    throw TensorError("logits", "no +inf", "+inf in row " + std::to_string(row));
  }
  if (mx == -kInf) {
    throw TensorError("logits", "at least one finite logit per row",
                      "row " + std::to_string(row) + " all -inf");
  }
  return mx;
}

int64_t first_index_of(const float* x, int64_t vocab, float value) {
  for (int64_t i = 0; i < vocab; ++i) {
    if (x[i] == value) return i;
  }
  return 0;
}

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// exp(x) in float32 for x >= -87 (Cephes expf: Cody-Waite reduction by ln 2 and a degree-6
// polynomial, within 2 ulp), branch-free so that loops over it vectorize; exp(0) is exactly 1.
// Smaller x give garbage: callers flag them and recompute.
inline float exp_core(float x) {
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float q = 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  const float y = q * r * r + r + 1.0f;
  return y * from_bits(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
}

// sum of w(i) over [begin, end) in double, four independent accumulators (the loop is bound by
// add latency otherwise; double reductions do not vectorize with SSE2)
template <typename Weight>
double sum_of(int64_t begin, int64_t end, Weight w) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    a0 += w(i);
    a1 += w(i + 1);
    a2 += w(i + 2);
    a3 += w(i + 3);
  }
  for (; i < end; ++i) a0 += w(i);
  return (a0 + a1) + (a2 + a3);
}

// e[i] = exp(raw[i] / divisor - shift), in the references' order of float32 operations;
// returns the double sum of e.
double exponentials(const float* raw, int64_t vocab, float divisor, float shift, float* e) {
  int small = 0;
#pragma omp simd reduction(| : small)
  for (int64_t i = 0; i < vocab; ++i) {
    const float x = raw[i] / divisor - shift;
    small |= x < -87.0f;
    e[i] = exp_core(x);
  }
  if (small) {  // finite but below float32's normal range: the exact exp
    for (int64_t i = 0; i < vocab; ++i) {
      const float x = raw[i] / divisor - shift;
      if (x < -87.0f) e[i] = x > -kInf ? std::exp(x) : 0.0f;
    }
  }
  return sum_of(0, vocab, [e](int64_t i) { return e[i]; });
}

int bin_of(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return std::min(kBins - 1, std::max(0, static_cast<int>(bits >> 21) - kBinOffset));
}

float bin_floor(int b) { return b <= 0 ? 0.0f : from_bits(static_cast<uint32_t>(b + kBinOffset) << 21); }

struct Histogram {
  int64_t count[kBins];
  double mass[kBins];
};

// Four interleaved partial histograms, merged at the end: consecutive values often share a bin,
// and one set of counters would serialize on their store-to-load latency.
void fill_histogram(const float* e, int64_t vocab, Histogram& h) {
  int32_t count[4][kBins] = {};
  double mass[4][kBins] = {};
  int64_t i = 0;
  for (; i + 4 <= vocab; i += 4) {
    for (int lane = 0; lane < 4; ++lane) {
      const int b = bin_of(e[i + lane]);
      ++count[lane][b];
      mass[lane][b] += e[i + lane];
    }
  }
  for (; i < vocab; ++i) {
    const int b = bin_of(e[i]);
    ++count[0][b];
    mass[0][b] += e[i];
  }
  for (int b = 0; b < kBins; ++b) {
    h.count[b] = int64_t{count[0][b]} + count[1][b] + count[2][b] + count[3][b];
    h.mass[b] = (mass[0][b] + mass[1][b]) + (mass[2][b] + mass[3][b]);
  }
}

// The highest bin b such that bins >= b hold at least `count` values or at least `mass`.
int cut_bin(const Histogram& h, int64_t count, double mass) {
  int64_t c = 0;
  double m = 0;
  for (int b = kBins - 1; b > 0; --b) {
    c += h.count[b];
    m += h.mass[b];
    if (c >= count || m >= mass) return b;
  }
  return 0;
}

// Inverse CDF in vocabulary order over weights w(i) >= 0: the first i whose float32
// cumulative sum exceeds u * total, else the last i with positive weight (-1: none).
// Blocks whose sum keeps the running total clearly below the target are skipped whole.
template <typename Weight>
int64_t inverse_cdf(int64_t vocab, float u, Weight w) {
  const float x = u * static_cast<float>(sum_of(0, vocab, w));
  const double skip_below = static_cast<double>(x) * (1 - 1e-9);
  double acc = 0;
  for (int64_t start = 0; start < vocab; start += kDrawBlock) {
    const int64_t end = std::min(vocab, start + kDrawBlock);
    const double block = sum_of(start, end, w);
    if (acc + block < skip_below) {
      acc += block;
      continue;
    }
    for (int64_t i = start; i < end; ++i) {
      acc += w(i);
      if (static_cast<float>(acc) > x) return i;
    }
  }
  for (int64_t i = vocab - 1; i >= 0; --i) {
    if (w(i) > 0) return i;
  }
  return -1;
}

// The top-k cut's finer histogram: counts over 64 buckets per octave of the 16 octaves below 1
// (probabilities e are in [0, 1], the maximum exactly 1): bucket b >= 1 holds the values whose
// float32 bits >> 17 are b + kFineBase (1 alone in the top bucket), bucket 0 everything smaller.
// The bucket of the k-th largest value then holds few values, and only those are ordered.
constexpr int kFineBuckets = 1024;
constexpr int kFineShift = 17;
constexpr int kFineBase = (0x3F800000 >> kFineShift) - (kFineBuckets - 1);

int fine_bucket(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const int b = static_cast<int>(bits >> kFineShift) - kFineBase;
  return b < 0 ? 0 : (b > kFineBuckets - 1 ? kFineBuckets - 1 : b);
}

float fine_floor(int b) { return from_bits(static_cast<uint32_t>(b + kFineBase) << kFineShift); }

struct Buffers {
  std::vector<float> values;
  std::vector<float> picked;
  std::vector<int32_t> fine;     // kFineBuckets counts
  std::vector<uint64_t> ranked;  // rank_key(probability, id)
  std::vector<int32_t> kept;
  Histogram histogram;
};

Buffers& thread_buffers() {
  thread_local Buffers buffers;
  return buffers;
}

int threads_for(int64_t batch, int64_t vocab, int num_threads) {
  const int64_t wanted = batch * vocab / kElementsPerThread;
  // one thread without asking how many there are: hardware_concurrency reads /sys on Linux,
  // tens of microseconds on the caches a model's forward has just emptied
  if (wanted <= 1) return 1;
  return static_cast<int>(std::min<int64_t>(resolve_num_threads(num_threads), wanted));
}

// --- sample -----------------------------------------------------------------------------------

void check_sample_params(const SampleParams& p, int64_t row) {
  const float t = p.temperature.at(row);
  if (!(t >= 0) || std::isinf(t)) throw TensorError("temperature", "a finite value >= 0", at_row(t, row));
  const int64_t k = p.top_k.at(row);
  if (k < 1) throw TensorError("top_k", "a value >= 1", std::to_string(k) + " at row " + std::to_string(row));
  const float top_p = p.top_p.at(row);
  if (!(top_p > 0 && top_p <= 1)) throw TensorError("top_p", "a value in (0, 1]", at_row(top_p, row));
  const float min_p = p.min_p.at(row);
  if (!(min_p >= 0 && min_p <= 1)) throw TensorError("min_p", "a value in [0, 1]", at_row(min_p, row));
  const float u = p.uniforms.at(row);
  if (!(u >= 0 && u < 1)) throw TensorError("uniforms", "a value in [0, 1)", at_row(u, row));
}

// Calls emit(i) for every i with e[i] >= floor, in increasing order. The cut leaves few values
// above the floor, so blocks are first tested with a vectorized maximum and mostly skipped.
template <typename Emit>
void for_each_at_least(const float* e, int64_t vocab, float floor, Emit emit) {
  constexpr int64_t kBlock = 16;
  int64_t start = 0;
  for (; start + kBlock <= vocab; start += kBlock) {
    float mx = 0;
#pragma omp simd reduction(max : mx)
    for (int64_t i = start; i < start + kBlock; ++i) mx = mx > e[i] ? mx : e[i];
    if (mx < floor) continue;
    for (int64_t i = start; i < start + kBlock; ++i) {
      if (e[i] >= floor) emit(i);
    }
  }
  for (int64_t i = start; i < vocab; ++i) {
    if (e[i] >= floor) emit(i);
  }
}

// Calls emit(i) for every i with low <= e[i] < high, in increasing order: a vectorized test
// skips the blocks that hold none (one histogram bucket's worth of values is few).
template <typename Emit>
void for_each_within(const float* e, int64_t vocab, float low, float high, Emit emit) {
  constexpr int64_t kBlock = 16;
  int64_t start = 0;
  for (; start + kBlock <= vocab; start += kBlock) {
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t i = start; i < start + kBlock; ++i) any |= (e[i] >= low) & (e[i] < high);
    if (!any) continue;
    for (int64_t i = start; i < start + kBlock; ++i) {
      if (e[i] >= low && e[i] < high) emit(i);
    }
  }
  for (int64_t i = start; i < vocab; ++i) {
    if (e[i] >= low && e[i] < high) emit(i);
  }
}

void collect(const float* e, int64_t vocab, float floor, std::vector<float>& out) {
  out.clear();
  for_each_at_least(e, vocab, floor, [e, &out](int64_t i) { out.push_back(e[i]); });
}

// The top-p threshold: the smallest weight of the shortest most-likely prefix of the weights
// >= kth (float32 total `total`) in which the mass before each kept weight is < top_p * total.
// kth_bin: the histogram bin of kth (0 without top-k).
float top_p_threshold(const float* e, int64_t vocab, float kth, int kth_bin, float top_p, float total,
                      Buffers& buf) {
  const float limit = top_p * total;
  int b = std::max(kth_bin, cut_bin(buf.histogram, std::numeric_limits<int64_t>::max(), limit * (1 + 1e-6)));
  for (;;) {
    const float floor = std::max(kth, bin_floor(b));
    collect(e, vocab, floor, buf.picked);
    std::sort(buf.picked.begin(), buf.picked.end(), std::greater<float>());
    double acc = 0;
    float threshold = buf.picked[0];
    for (const float v : buf.picked) {
      acc += v;
      if (!(static_cast<float>(acc) - v < limit)) return threshold;
      threshold = v;
    }
    // every collected weight is kept: the next one is not if the mass before it clearly reaches
    // the limit (then no rounding can decide otherwise); else collect every candidate
    if (floor <= kth || acc >= limit * (1 + 1e-6)) return threshold;
    b = kth_bin;
  }
}

// The k-th largest of the probabilities e [vocab] (in [0, 1]), 1 <= k < vocab; 0 when at most k
// are positive (keeping every token then draws as keeping the positive ones). A count of the
// positives, the fine histogram, then the values of the bucket that holds the k-th largest,
// gathered and partially ordered.
float kth_largest(const float* e, int64_t vocab, int64_t k, Buffers& buf) {
  int64_t positive = 0;
#pragma omp simd reduction(+ : positive)
  for (int64_t i = 0; i < vocab; ++i) positive += e[i] > 0;
  if (positive <= k) return 0.0f;
  buf.fine.assign(kFineBuckets, 0);
  int32_t* count = buf.fine.data();
  for (int64_t i = 0; i < vocab; ++i) ++count[fine_bucket(e[i])];
  int b = kFineBuckets - 1;
  int64_t above = 0;  // values in the buckets above b
  while (above + count[b] < k) above += count[b--];
  const float low = b > 0 ? fine_floor(b) : 0.0f;
  const float high = b < kFineBuckets - 1 ? fine_floor(b + 1) : kInf;
  std::vector<float>& picked = buf.picked;
  picked.clear();
  for_each_within(e, vocab, low, high, [e, &picked](int64_t i) { picked.push_back(e[i]); });
  const auto rank = picked.begin() + (k - above - 1);  // within the bucket, begin() = its largest
  std::nth_element(picked.begin(), rank, picked.end(), std::greater<float>());
  return *rank;
}

int64_t sample_row(const float* raw, int64_t vocab, const SampleParams& p, int64_t row) {
  const float raw_max = checked_max(raw, vocab, row);
  check_sample_params(p, row);
  const float t = p.temperature.at(row);
  if (t == 0) return first_index_of(raw, vocab, raw_max);

  Buffers& buf = thread_buffers();
  buf.values.resize(static_cast<size_t>(vocab));
  float* e = buf.values.data();
  const float x_max = raw_max / t;  // the maximum of raw / t (division by t > 0 is monotone)
  if (!std::isfinite(x_max)) {
    throw TensorError("temperature", "a value for which logits / temperature stay finite", at_row(t, row));
  }
  exponentials(raw, vocab, t, x_max, e);

  const int64_t k = std::min(p.top_k.at(row), vocab);
  const float top_p = p.top_p.at(row);
  const float kth = k < vocab ? kth_largest(e, vocab, k, buf) : 0.0f;
  float threshold = std::max(kth, p.min_p.at(row));  // min-p: e >= min_p * max(e), max(e) = 1
  if (top_p < 1) {
    fill_histogram(e, vocab, buf.histogram);
    const double total = sum_of(0, vocab, [e, kth](int64_t i) { return e[i] >= kth ? e[i] : 0.0f; });
    threshold = std::max(threshold,
                         top_p_threshold(e, vocab, kth, bin_of(kth), top_p, static_cast<float>(total), buf));
  }
  if (threshold > 0) {  // the filters, as one branch-free pass: e becomes the kept weights
#pragma omp simd
    for (int64_t i = 0; i < vocab; ++i) e[i] = e[i] >= threshold ? e[i] : 0.0f;
  }
  const int64_t token = inverse_cdf(vocab, p.uniforms.at(row), [e](int64_t i) { return e[i]; });
  return token >= 0 ? token : first_index_of(raw, vocab, raw_max);
}

// --- repetition-aware sampling ----------------------------------------------------------------

void check_ras_row(const int64_t* history, int64_t length, const float* u, int64_t row) {
  for (int64_t j = 0; j < length; ++j) {
    if (history[j] < -1) {
      throw TensorError(
          "history", "codes >= 0 or -1 for padding",
          std::to_string(history[j]) + " at row " + std::to_string(row) + ", column " + std::to_string(j));
    }
  }
  for (int c = 0; c < 2; ++c) {
    if (!(u[c] >= 0 && u[c] < 1)) {
      throw TensorError("uniforms", "values in [0, 1)",
                        number(u[c]) + " at row " + std::to_string(row) + ", column " + std::to_string(c));
    }
  }
}

// A probability p >= 0 and its id packed so that larger keys come first in the stable descending
// order (higher p, then lower id): non-negative floats order like their bit patterns.
uint64_t rank_key(float p, int64_t id) {
  uint32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  return (uint64_t{bits} << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(id));
}
float key_probability(uint64_t key) { return from_bits(static_cast<uint32_t>(key >> 32)); }
int32_t key_id(uint64_t key) { return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(key)); }

// The nucleus of probabilities e / z: ids, in vocabulary order, of the longest prefix of the
// stable descending order (higher probability, then lower id) that the preset keeps.
void nucleus(const float* e, int64_t vocab, float z, double z_sum, const RasOptions& o, Buffers& buf) {
  const int64_t cap = o.top_k > 0 ? std::min(o.top_k, vocab) : vocab;
  fill_histogram(e, vocab, buf.histogram);
  int b = cut_bin(buf.histogram, cap, o.top_p * z_sum * (1 + 1e-6));
  auto& ranked = buf.ranked;
  int64_t size = 0;
  for (;;) {
    const float floor = bin_floor(b);
    ranked.clear();
    for_each_at_least(e, vocab, floor,
                      [e, z, &ranked](int64_t i) { ranked.push_back(rank_key(e[i] / z, i)); });
    std::sort(ranked.begin(), ranked.end(), std::greater<uint64_t>());
    const int64_t n = static_cast<int64_t>(ranked.size());
    double acc = 0;
    size = std::min(n, cap);
    bool cut = size == cap;
    for (int64_t r = 0; r < std::min(n, cap); ++r) {
      const float v = key_probability(ranked[r]);
      acc += v;
      const float inclusive = static_cast<float>(acc);
      const bool ok = o.preset == RasPreset::kFlashCosyVoice ? (r == 0 || inclusive <= o.top_p)
                                                             : static_cast<double>(inclusive - v) < o.top_p;
      if (!ok) {
        size = r;
        cut = true;
        break;
      }
    }
    // every collected token is kept: the next one is not if the mass clearly reaches top_p (no
    // rounding can decide otherwise); else the nucleus may reach below the floor: take every token
    if (cut || b == 0 || acc >= o.top_p * (1 + 1e-6)) break;
    b = 0;
  }
  buf.kept.resize(static_cast<size_t>(size));
  for (int64_t r = 0; r < size; ++r) buf.kept[r] = key_id(ranked[r]);
  std::sort(buf.kept.begin(), buf.kept.end());
}

int64_t ras_row(const float* raw, int64_t vocab, const int64_t* history, int64_t length, const RasOptions& o,
                const float* u, int64_t row) {
  const float mx = checked_max(raw, vocab, row);
  check_ras_row(history, length, u, row);

  // softmax in float32: p = exp(x - max) / z, computed where needed from e
  Buffers& buf = thread_buffers();
  buf.values.resize(static_cast<size_t>(vocab));
  float* e = buf.values.data();
  const double z_sum = exponentials(raw, vocab, 1.0f, mx, e);
  const float z = static_cast<float>(z_sum);
  nucleus(e, vocab, z, z_sum, o, buf);
  const std::vector<int32_t>& kept = buf.kept;

  // candidate: inverse CDF over the kept probabilities, in vocabulary order
  double total = 0;
  for (const int32_t i : kept) total += e[i] / z;
  const float x = u[0] * static_cast<float>(total);
  int64_t candidate = -1;
  double acc = 0;
  for (const int32_t i : kept) {
    acc += e[i] / z;
    if (static_cast<float>(acc) > x) {
      candidate = i;
      break;
    }
  }
  for (auto it = kept.rbegin(); candidate < 0 && it != kept.rend(); ++it) {
    if (e[*it] / z > 0) candidate = *it;
  }
  if (candidate < 0) candidate = first_index_of(raw, vocab, mx);

  // repetition: the candidate's count among the last `window` valid codes
  int64_t count = 0, seen = 0;
  for (int64_t j = length - 1; j >= 0 && seen < o.window; --j) {
    if (history[j] < 0) continue;
    ++seen;
    count += history[j] == candidate;
  }
  const double c = static_cast<double>(count);
  bool fire;
  switch (o.preset) {
    case RasPreset::kPaper:
      fire = c / static_cast<double>(o.window) > o.threshold;
      break;
    case RasPreset::kCosyVoice:
      fire = c >= static_cast<double>(o.window) * o.threshold;
      break;
    default:
      fire = seen > 0 && c / static_cast<double>(seen) >= o.threshold;
  }
  if (!fire) return candidate;
  const bool drop = o.preset == RasPreset::kCosyVoice;  // CosyVoice zeroes the candidate
  const int64_t redraw = inverse_cdf(
      vocab, u[1], [e, z, candidate, drop](int64_t i) { return drop && i == candidate ? 0.0f : e[i] / z; });
  return redraw >= 0 ? redraw : candidate;  // the candidate held all the mass
}

}  // namespace

void sample(const LogitsView& logits, const SampleParams& params, int64_t* out, int num_threads) {
  parallel_for(logits.batch, threads_for(logits.batch, logits.vocab, num_threads), [&](int64_t b) {
    out[b] = sample_row(logits.data + b * logits.stride, logits.vocab, params, b);
  });
}

namespace {

template <GuidanceCenter kCenter>
inline float guided_value(float c, float u, float c2, float s, float s2) {
  if (kCenter == GuidanceCenter::kCond) return c + (c - u) * s;
  if (kCenter == GuidanceCenter::kDual) return u + (c - u) * s + (c2 - u) * s2;
  return u + (c - u) * s;
}

// x = the guided row of c, u (and c2), straight through the formula: one vectorized pass that
// also returns the maximum and whether any value came out NaN or +inf. Where none did, x equals
// the masked definition (a token -inf in an input can only give -inf, NaN or +inf here, and
// only -inf passes); otherwise the caller redoes the row with guide_exact.
template <GuidanceCenter kCenter>
float guide_fast(const float* c, const float* u, const float* c2, float s, float s2, int64_t vocab, float* x,
                 bool* unusual) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float top = -kInf;
  int bad = 0;
#pragma omp simd reduction(max : top) reduction(| : bad)
  for (int64_t i = 0; i < vocab; ++i) {
    const float v = guided_value<kCenter>(c[i], u[i], kCenter == GuidanceCenter::kDual ? c2[i] : 0.0f, s, s2);
    x[i] = v;
    bad |= !(v < kInf);  // NaN or +inf
    top = v > top ? v : top;
  }
  *unusual = bad != 0;
  return top;
}

// The masked definition, one token at a time: -inf in any input gives -inf (the formula alone
// would give NaN or +inf for some). Returns false when an input holds NaN or +inf; *any_finite
// says whether a token survived.
template <GuidanceCenter kCenter>
bool guide_exact(const float* c, const float* u, const float* c2, float s, float s2, int64_t vocab, float* x,
                 bool* any_finite) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  bool kept = false;
  for (int64_t i = 0; i < vocab; ++i) {
    const float c2i = kCenter == GuidanceCenter::kDual ? c2[i] : 0.0f;
    for (const float v : {c[i], u[i], c2i}) {
      if (std::isnan(v) || v == kInf) return false;
    }
    const bool masked = c[i] == kNegInf || u[i] == kNegInf || c2i == kNegInf;
    x[i] = masked ? kNegInf : guided_value<kCenter>(c[i], u[i], c2i, s, s2);
    kept = kept || !masked;
  }
  *any_finite = kept;
  return true;
}

// The first input of a row that holds NaN or +inf, for the error.
const char* bad_input(const float* c, const float* u, const float* c2, int64_t vocab) {
  auto bad = [vocab](const float* x) {
    for (int64_t i = 0; i < vocab; ++i)
      if (std::isnan(x[i]) || x[i] == std::numeric_limits<float>::infinity()) return true;
    return false;
  };
  return bad(c) ? "cond" : bad(u) ? "uncond" : (c2 != nullptr && bad(c2)) ? "cond2" : "cond";
}

// Guides one row into x (fast pass, exact pass where needed); throws for bad inputs.
template <GuidanceCenter kCenter>
void guide_row(const float* c, const float* u, const float* c2, float s, float s2, int64_t vocab, float* x,
               int64_t row) {
  bool unusual = false;
  const float top = guide_fast<kCenter>(c, u, c2, s, s2, vocab, x, &unusual);
  bool any_finite = top > -std::numeric_limits<float>::infinity();
  if (unusual && !guide_exact<kCenter>(c, u, c2, s, s2, vocab, x, &any_finite)) {
    throw TensorError(bad_input(c, u, c2, vocab), "no NaN or +inf", "one in row " + std::to_string(row));
  }
  if (!any_finite) {
    throw TensorError("cond", "a token finite in every input in each row",
                      "none in row " + std::to_string(row));
  }
}

}  // namespace

namespace {

// Row b of cond guided by g into this thread's scratch row; returns the row.
float* guided_row(const LogitsView& cond, const Guidance& g, int64_t b) {
  thread_local std::vector<float> guided;
  guided.resize(static_cast<size_t>(cond.vocab));
  const float* c = cond.data + b * cond.stride;
  const float* u = g.uncond.data + b * g.uncond.stride;
  const float* c2 = g.center == GuidanceCenter::kDual ? g.cond2.data + b * g.cond2.stride : nullptr;
  switch (g.center) {
    case GuidanceCenter::kUncond:
      guide_row<GuidanceCenter::kUncond>(c, u, c2, g.scale, g.scale2, cond.vocab, guided.data(), b);
      break;
    case GuidanceCenter::kDual:
      guide_row<GuidanceCenter::kDual>(c, u, c2, g.scale, g.scale2, cond.vocab, guided.data(), b);
      break;
    default:
      guide_row<GuidanceCenter::kCond>(c, u, c2, g.scale, g.scale2, cond.vocab, guided.data(), b);
  }
  return guided.data();
}

}  // namespace

void guided_sample(const LogitsView& cond, const Guidance& g, const SampleParams& params, int64_t* out,
                   int num_threads) {
  parallel_for(cond.batch, threads_for(cond.batch, cond.vocab, num_threads),
               [&](int64_t b) { out[b] = sample_row(guided_row(cond, g, b), cond.vocab, params, b); });
}

void guided_repetition_aware_sample(const LogitsView& cond, const Guidance& g, float temperature,
                                    const HistoryView& history, const RasOptions& options,
                                    const float* uniforms, int64_t* out, int num_threads) {
  if (!(temperature > 0) || temperature == std::numeric_limits<float>::infinity()) {
    throw TensorError("temperature", "a finite number > 0", std::to_string(temperature));
  }
  parallel_for(cond.batch, threads_for(cond.batch, cond.vocab, num_threads), [&](int64_t b) {
    float* x = guided_row(cond, g, b);  // this thread's scratch row
    if (temperature != 1.0f) {
      for (int64_t i = 0; i < cond.vocab; ++i) x[i] /= temperature;
    }
    out[b] = ras_row(x, cond.vocab, history.data + b * history.stride, history.length, options,
                     uniforms + 2 * b, b);
  });
}

void repetition_aware_sample(const LogitsView& logits, const HistoryView& history, const RasOptions& options,
                             const float* uniforms, int64_t* out, int num_threads) {
  parallel_for(logits.batch, threads_for(logits.batch, logits.vocab, num_threads), [&](int64_t b) {
    out[b] = ras_row(logits.data + b * logits.stride, logits.vocab, history.data + b * history.stride,
                     history.length, options, uniforms + 2 * b, b);
  });
}

}  // namespace speechdecode
