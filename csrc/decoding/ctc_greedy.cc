#include "decoding/ctc_greedy.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "common/errors.h"
#include "common/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace speechdecode {
namespace {

// Frames handled by one parallel work item: large enough to amortise scheduling, small
// enough that a few long utterances still spread over all threads.
constexpr int64_t kFramesPerItem = 256;
// Elements scanned per step when searching for the first maximum; a fixed trip count lets
// the compiler vectorise the comparison before the scalar scan inside the hit block.
constexpr int64_t kScanBlock = 32;
// Below ~1M scores (~100 us of work) starting threads costs more than it saves.
constexpr double kMinScoresPerThread = 1 << 20;

// Result of one row's argmax: the index, or -1 with bad_index set to the first invalid
// score (NaN or +inf) of the row.
struct RowArgmax {
  int64_t index;
  int64_t bad_index;
};

template <typename T, typename Key>
inline int64_t first_equal(const T* x, int64_t n, Key key, decltype(key(x[0])) target) {
  int64_t i = 0;
  for (; i + kScanBlock <= n; i += kScanBlock) {
    int hit = 0;
    for (int64_t j = 0; j < kScanBlock; ++j) hit |= key(x[i + j]) == target;
    if (hit) break;
  }
  for (; i < n; ++i) {
    if (key(x[i]) == target) return i;
  }
  return -1;
}

constexpr float kInf = std::numeric_limits<float>::infinity();

// The row's first invalid score (NaN or +inf), as the result of a row that has one.
RowArgmax first_invalid(const float* x) {
  for (int64_t i = 0;; ++i) {
    if (std::isnan(x[i]) || x[i] == kInf) return {-1, i};
  }
}

// float32, portable: the maximum (a reduction the compiler vectorises for the baseline ISA),
// then the first score equal to it. NaN compares false with everything, so it is detected
// explicitly.
RowArgmax argmax_f32_portable(const float* x, int64_t n) {
  float best = -kInf;
  int invalid = 0;
#pragma omp simd reduction(max : best) reduction(| : invalid)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    best = v > best ? v : best;
    invalid |= v != v;
  }
  if (invalid || best == kInf) return first_invalid(x);
  return {first_equal(x, n, [](float v) { return v; }, best), -1};
}

#if defined(__x86_64__) && defined(__GNUC__)
// The row's result from the lanes' maxima and their indices: the smallest index that holds the
// overall maximum, or the first invalid score (nan: some lane saw a NaN).
template <int kLanes>
RowArgmax first_maximum(const float* x, const float (&values)[kLanes], const int32_t (&indices)[kLanes],
                        bool nan) {
  float top = -kInf;
  for (float v : values) top = v > top ? v : top;
  if (nan || top == kInf) return first_invalid(x);
  int64_t index = std::numeric_limits<int64_t>::max();
  for (int k = 0; k < kLanes; ++k) {
    if (values[k] == top && indices[k] < index) index = indices[k];
  }
  return {index, -1};
}

// float32 with AVX2 (8 lanes) and AVX-512 (16 lanes): every lane keeps its own first maximum
// and that maximum's index (a strictly greater score replaces it), two accumulators so that
// the compare-and-blend chains overlap; lanes past the row's end load -inf. The row's argmax
// is the smallest index among the lanes that hold the overall maximum: the first maximum, as
// numpy's. An unordered self-compare flags NaN; a maximum of +inf flags +inf.
// One vector v of scores at indices `at` into a lane's running maximum and its index.
__attribute__((target("avx2"))) inline void keep_greater(__m256 v, __m256i at, __m256& best, __m256i& where,
                                                         __m256& nan) {
  const __m256 greater = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
  best = _mm256_blendv_ps(best, v, greater);
  where = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(where), _mm256_castsi256_ps(at), greater));
  nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

__attribute__((target("avx2"))) RowArgmax argmax_f32_avx2(const float* x, int64_t n) {
  const __m256 minus_inf = _mm256_set1_ps(-kInf);
  const __m256i step = _mm256_set1_epi32(8);
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256 best[2] = {minus_inf, minus_inf};
  __m256i where[2] = {iota, _mm256_add_epi32(iota, step)};
  __m256i at[2] = {iota, _mm256_add_epi32(iota, step)};
  __m256 nan = _mm256_setzero_ps();
  const __m256i step2 = _mm256_set1_epi32(16);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 2; ++k) {
      keep_greater(_mm256_loadu_ps(x + i + 8 * k), at[k], best[k], where[k], nan);
      at[k] = _mm256_add_epi32(at[k], step2);
    }
  }
  for (int k = 0; i < n; i += 8, ++k) {
    const __m256i in_row =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(n - i, 8))), iota);
    const __m256 v =
        _mm256_blendv_ps(minus_inf, _mm256_maskload_ps(x + i, in_row), _mm256_castsi256_ps(in_row));
    keep_greater(v, at[k], best[k], where[k], nan);
  }
  alignas(32) float values[16];
  alignas(32) int32_t indices[16];
  _mm256_store_ps(values, best[0]);
  _mm256_store_ps(values + 8, best[1]);
  _mm256_store_si256(reinterpret_cast<__m256i*>(indices), where[0]);
  _mm256_store_si256(reinterpret_cast<__m256i*>(indices + 8), where[1]);
  return first_maximum(x, values, indices, _mm256_movemask_ps(nan) != 0);
}

__attribute__((target("avx512f"))) inline void keep_greater(__m512 v, __m512i at, __m512& best,
                                                            __m512i& where, __mmask16& nan) {
  const __mmask16 greater = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
  best = _mm512_mask_mov_ps(best, greater, v);
  where = _mm512_mask_mov_epi32(where, greater, at);
  nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

// GCC 12's AVX-512 headers pass an undefined vector as the unused merge source, which -Wall
// reports as uninitialized (GCC bug 105593); the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Horizontal max / min by folding halves.
__attribute__((target("avx512f"))) inline float lanes_max(__m512 v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = _mm512_max_ps(v, _mm512_permute_ps(v, 0x4E));
  v = _mm512_max_ps(v, _mm512_permute_ps(v, 0xB1));
  return _mm_cvtss_f32(_mm512_castps512_ps128(v));
}

__attribute__((target("avx512f"))) inline int32_t lanes_min(__m512i v) {
  v = _mm512_min_epi32(v, _mm512_shuffle_i32x4(v, v, 0x4E));
  v = _mm512_min_epi32(v, _mm512_shuffle_i32x4(v, v, 0xB1));
  v = _mm512_min_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_BADC));
  v = _mm512_min_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_CDAB));
  return _mm_cvtsi128_si32(_mm512_castsi512_si128(v));
}

__attribute__((target("avx512f"))) RowArgmax argmax_f32_avx512(const float* x, int64_t n) {
  const __m512 minus_inf = _mm512_set1_ps(-kInf);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step2 = _mm512_set1_epi32(32);
  __m512 best[2] = {minus_inf, minus_inf};
  __m512i where[2] = {iota, _mm512_add_epi32(iota, _mm512_set1_epi32(16))};
  __m512i at[2] = {where[0], where[1]};
  __mmask16 nan = 0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 2; ++k) {
      keep_greater(_mm512_loadu_ps(x + i + 16 * k), at[k], best[k], where[k], nan);
      at[k] = _mm512_add_epi32(at[k], step2);
    }
  }
  for (int k = 0; i < n; i += 16, ++k) {
    const __mmask16 in_row = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    keep_greater(_mm512_mask_loadu_ps(minus_inf, in_row, x + i), at[k], best[k], where[k], nan);
  }
  // Lane maxima reduced in registers: the overall maximum, then the smallest index holding it.
  const float top = lanes_max(_mm512_max_ps(best[0], best[1]));
  if (nan != 0 || top == kInf) return first_invalid(x);
  const __m512 top_v = _mm512_set1_ps(top);
  const __m512i none = _mm512_set1_epi32(std::numeric_limits<int32_t>::max());
  const __m512i first0 =
      _mm512_mask_mov_epi32(none, _mm512_cmp_ps_mask(best[0], top_v, _CMP_EQ_OQ), where[0]);
  const __m512i first1 =
      _mm512_mask_mov_epi32(none, _mm512_cmp_ps_mask(best[1], top_v, _CMP_EQ_OQ), where[1]);
  return {lanes_min(_mm512_min_epi32(first0, first1)), -1};
}
#pragma GCC diagnostic pop
#endif

using ArgmaxF32 = RowArgmax (*)(const float*, int64_t);

// The float32 row argmax for this CPU, or the one SPEECHDECODE_CPU_ISA names ("avx512", "avx2",
// "portable"; tests force each): a named ISA the CPU lacks is an error, not a silent fallback.
ArgmaxF32 select_argmax_f32() {
  const char* forced = std::getenv("SPEECHDECODE_CPU_ISA");
  const std::string isa = forced ? forced : "";
#if defined(__x86_64__) && defined(__GNUC__)
  const bool avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2");
  if (isa.empty()) return avx512 ? argmax_f32_avx512 : avx2 ? argmax_f32_avx2 : argmax_f32_portable;
  if (isa == "avx512" && avx512) return argmax_f32_avx512;
  if (isa == "avx2" && avx2) return argmax_f32_avx2;
#else
  if (isa.empty()) return argmax_f32_portable;
#endif
  if (isa == "portable") return argmax_f32_portable;
  throw TensorError("SPEECHDECODE_CPU_ISA", "empty, portable, or an ISA this CPU has (avx2, avx512)",
                    "'" + isa + "'");
}

// float16 and bfloat16 are both sign-magnitude: with key = +magnitude for positive values
// and -magnitude for negative ones the integer order is the float order, and -0 == +0.
// kExpMask is the all-ones exponent (+inf); a larger magnitude is NaN.
template <uint16_t kExpMask>
__attribute__((target_clones("avx512f", "avx2", "default"))) RowArgmax argmax_half(const uint16_t* x,
                                                                                   int64_t n) {
  // 16-bit keys (magnitudes fit in 15 bits), so a vector holds as many keys as the input has values.
  auto key = [](uint16_t b) {
    const int16_t magnitude = static_cast<int16_t>(b & 0x7FFF);
    return static_cast<int16_t>((b & 0x8000) ? -magnitude : magnitude);
  };
  // NaN (any sign: a magnitude above the exponent mask) or +inf (exactly the mask).
  auto is_invalid = [](uint16_t b) { return ((b & 0x7FFF) > kExpMask) | (b == kExpMask); };
  int16_t best = std::numeric_limits<int16_t>::min();
  int invalid = 0;
#pragma omp simd reduction(max : best) reduction(| : invalid)
  for (int64_t i = 0; i < n; ++i) {
    const int16_t k = key(x[i]);
    best = k > best ? k : best;
    invalid |= is_invalid(x[i]);
  }
  if (invalid) {
    for (int64_t i = 0; i < n; ++i) {
      if (is_invalid(x[i])) return {-1, i};
    }
  }
  return {first_equal(x, n, key, best), -1};
}

RowArgmax row_argmax(const LogProbView& lp, ArgmaxF32 argmax_f32, int64_t b, int64_t t) {
  const int64_t offset = b * lp.stride_batch + t * lp.stride_frame;
  switch (lp.type) {
    case ScoreType::kFloat32:
      return argmax_f32(static_cast<const float*>(lp.data) + offset, lp.vocab);
    case ScoreType::kFloat16:
      return argmax_half<0x7C00>(static_cast<const uint16_t*>(lp.data) + offset, lp.vocab);
    case ScoreType::kBFloat16:
      return argmax_half<0x7F80>(static_cast<const uint16_t*>(lp.data) + offset, lp.vocab);
  }
  return {-1, 0};
}

// The next row is requested while this one is scanned: the scan of a row is short, and
// without this the loads of the next row only start when the hardware prefetcher notices.
inline void prefetch_row(const LogProbView& lp, int64_t b, int64_t t) {
  const int64_t item = lp.type == ScoreType::kFloat32 ? 4 : 2;
  const char* row = static_cast<const char*>(lp.data) + (b * lp.stride_batch + t * lp.stride_frame) * item;
  for (int64_t byte = 0; byte < lp.vocab * item; byte += 64) __builtin_prefetch(row + byte);
}

std::string describe_bad_score(const LogProbView& lp, int64_t b, int64_t t, int64_t v) {
  const int64_t offset = b * lp.stride_batch + t * lp.stride_frame + v;
  bool nan = false;
  if (lp.type == ScoreType::kFloat32) {
    nan = std::isnan(static_cast<const float*>(lp.data)[offset]);
  } else {
    const uint16_t bits = static_cast<const uint16_t*>(lp.data)[offset] & 0x7FFF;
    nan = bits > (lp.type == ScoreType::kFloat16 ? 0x7C00 : 0x7F80);
  }
  return std::string(nan ? "NaN" : "+inf") + " at [" + std::to_string(b) + ", " + std::to_string(t) + ", " +
         std::to_string(v) + "]";
}

}  // namespace

CtcGreedyOutput ctc_greedy(const LogProbView& lp, const int64_t* lengths, int64_t blank, int num_threads) {
  if (lp.batch < 0 || lp.frames < 0 || lp.vocab <= 0) {
    throw TensorError("log_probs", "shape [B, T, V] with V >= 1",
                      "[" + std::to_string(lp.batch) + ", " + std::to_string(lp.frames) + ", " +
                          std::to_string(lp.vocab) + "]");
  }
  if (blank < 0 || blank >= lp.vocab) {
    throw TensorError("blank", "a label id in [0, " + std::to_string(lp.vocab) + ")", std::to_string(blank));
  }
  // Work items: (utterance, chunk of frames) pairs; first_item[b] is utterance b's first.
  std::vector<int64_t> length(lp.batch), first_item(lp.batch + 1, 0), first_frame(lp.batch + 1, 0);
  for (int64_t b = 0; b < lp.batch; ++b) {
    const int64_t n = lengths ? lengths[b] : lp.frames;
    if (n < 0 || n > lp.frames) {
      throw TensorError("lengths", "values in [0, " + std::to_string(lp.frames) + "]",
                        std::to_string(n) + " at [" + std::to_string(b) + "]");
    }
    length[b] = n;
    first_item[b + 1] = first_item[b] + (n + kFramesPerItem - 1) / kFramesPerItem;
    first_frame[b + 1] = first_frame[b] + n;
  }

  const ArgmaxF32 argmax_f32 = select_argmax_f32();
  std::vector<int32_t> best(first_frame[lp.batch]);
  const int64_t items = first_item[lp.batch];
  const double work = static_cast<double>(first_frame[lp.batch]) * static_cast<double>(lp.vocab);
  const int threads = work < kMinScoresPerThread ? 1 : resolve_num_threads(num_threads);
  parallel_for(items, threads, [&](int64_t item) {
    const int64_t b = static_cast<int64_t>(std::upper_bound(first_item.begin(), first_item.end(), item) -
                                           first_item.begin() - 1);
    const int64_t t0 = (item - first_item[b]) * kFramesPerItem;
    const int64_t t1 = std::min(length[b], t0 + kFramesPerItem);
    int32_t* out = best.data() + first_frame[b];
    for (int64_t t = t0; t < t1; ++t) {
      if (t + 1 < t1) prefetch_row(lp, b, t + 1);
      const RowArgmax r = row_argmax(lp, argmax_f32, b, t);
      if (r.index < 0) {
        throw TensorError("log_probs", "finite log-probabilities or -inf",
                          describe_bad_score(lp, b, t, r.bad_index));
      }
      out[t] = static_cast<int32_t>(r.index);
    }
  });

  CtcGreedyOutput result;
  result.offsets.resize(lp.batch + 1, 0);
  for (int64_t b = 0; b < lp.batch; ++b) {
    const int32_t* ids = best.data() + first_frame[b];
    int32_t previous = -1;
    for (int64_t t = 0; t < length[b]; ++t) {
      const int32_t id = ids[t];
      if (id != previous && id != blank) {
        result.tokens.push_back(id);
        result.frames.push_back(t);
      }
      previous = id;
    }
    result.offsets[b + 1] = static_cast<int64_t>(result.tokens.size());
  }
  return result;
}

}  // namespace speechdecode
