#include "decoding/ctc_greedy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "common/errors.h"
#include "common/parallel.h"

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

// float32: NaN compares false with everything, so it is detected explicitly.
__attribute__((target_clones("avx512f", "avx2", "default"))) RowArgmax argmax_f32(const float* x, int64_t n) {
  float best = -std::numeric_limits<float>::infinity();
  int invalid = 0;
#pragma omp simd reduction(max : best) reduction(| : invalid)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    best = v > best ? v : best;
    invalid |= (v != v) | (v == std::numeric_limits<float>::infinity());
  }
  auto identity = [](float v) { return v; };
  if (invalid) {
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(x[i]) || x[i] == std::numeric_limits<float>::infinity()) return {-1, i};
    }
  }
  return {first_equal(x, n, identity, best), -1};
}

// float16 and bfloat16 are both sign-magnitude: with key = +magnitude for positive values
// and -magnitude for negative ones the integer order is the float order, and -0 == +0.
// kExpMask is the all-ones exponent (+inf); a larger magnitude is NaN.
template <uint16_t kExpMask>
__attribute__((target_clones("avx512f", "avx2", "default"))) RowArgmax argmax_half(const uint16_t* x,
                                                                                   int64_t n) {
  auto key = [](uint16_t b) {
    const int32_t magnitude = b & 0x7FFF;
    return (b & 0x8000) ? -magnitude : magnitude;
  };
  // NaN (any sign: a magnitude above the exponent mask) or +inf (exactly the mask).
  auto is_invalid = [](uint16_t b) { return ((b & 0x7FFF) > kExpMask) | (b == kExpMask); };
  int32_t best = std::numeric_limits<int32_t>::min();
  int invalid = 0;
#pragma omp simd reduction(max : best) reduction(| : invalid)
  for (int64_t i = 0; i < n; ++i) {
    const int32_t k = key(x[i]);
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

RowArgmax row_argmax(const LogProbView& lp, int64_t b, int64_t t) {
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
      const RowArgmax r = row_argmax(lp, b, t);
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
