#include "decoding/dia_scores.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "common/parallel.h"

namespace speechdecode {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kElementsPerThread = 1 << 17;  // as the sampling kernel: rows spread only when worth it

// An unsigned key in the order of torch.topk: larger floats give larger keys, -0 equals +0, and
// NaN is above everything (+inf included).
inline uint32_t rank_key(float x) {
  if (std::isnan(x)) return UINT32_MAX;
  if (x == 0.0f) x = 0.0f;  // -0 -> +0
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

// Step 1 for one row, into out.
void guide_row(const float* c, const float* u, int64_t vocab, const DiaScoresOptions& o, float* out) {
  if (o.top_k == 0) {
    for (int64_t i = 0; i < vocab; ++i) {
      const float scaled = (c[i] - u[i]) * o.scale;
      out[i] = c[i] + scaled;
    }
    return;
  }
  thread_local std::vector<uint32_t> keys, sorted;
  keys.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) {
    const float scaled = (c[i] - u[i]) * o.scale;
    keys[i] = rank_key(c[i] + scaled);
  }
  sorted = keys;
  const auto kth = sorted.begin() + (o.top_k - 1);
  std::nth_element(sorted.begin(), kth, sorted.end(), std::greater<uint32_t>());
  const uint32_t cut = *kth;
  int64_t ties = o.top_k - std::count_if(sorted.begin(), kth, [cut](uint32_t k) { return k > cut; });
  for (int64_t i = 0; i < vocab; ++i) {
    const bool kept = keys[i] > cut || (keys[i] == cut && ties-- > 0);
    out[i] = kept ? c[i] : -kInf;
  }
}

// The first index of the largest value (the first NaN if any), as torch.argmax.
int64_t first_max(const float* x, int64_t vocab) {
  float top = -kInf;
  int nan = 0;
#pragma omp simd reduction(max : top) reduction(| : nan)
  for (int64_t i = 0; i < vocab; ++i) {
    top = x[i] > top ? x[i] : top;
    nan |= x[i] != x[i];
  }
  for (int64_t i = 0; i < vocab; ++i) {
    if (nan ? x[i] != x[i] : x[i] == top) return i;
  }
  return 0;
}

// Step 2 on one row of scores; returns whether eos was its largest score.
bool end_filter(float* x, int64_t vocab, int64_t channel, int64_t eos) {
  std::fill(x + (channel == 0 ? eos + 1 : eos), x + vocab, -kInf);
  if (first_max(x, vocab) != eos) {
    x[eos] = -kInf;
    return false;
  }
  const float kept = x[eos];
  std::fill(x, x + vocab, -kInf);
  x[eos] = kept;
  return true;
}

}  // namespace

void dia_scores(const float* logits, int64_t rows, int64_t vocab, const DiaScoresOptions& o, float* out,
                bool* ending, int64_t* countdown, int num_threads) {
  thread_local std::vector<uint8_t> ends;
  ends.assign(static_cast<size_t>(rows), 0);
  const int64_t wanted =
      rows * vocab / kElementsPerThread;  // one thread without asking, as the sampling kernel
  const int threads =
      wanted <= 1 ? 1 : static_cast<int>(std::min<int64_t>(resolve_num_threads(num_threads), wanted));
  uint8_t* row_ends = ends.data();
  parallel_for(rows, threads, [&](int64_t r) {
    const float* c = logits + r * vocab;
    float* x = out + r * vocab;
    if (o.guided) {
      guide_row(c, c + rows * vocab, vocab, o, x);
    } else {
      std::copy(c, c + vocab, x);
    }
    row_ends[r] = end_filter(x, vocab, r % o.channels, o.eos) ? 1 : 0;
  });
  for (int64_t b = 0; b * o.channels < rows; ++b) {  // step 3
    ending[b] = ending[b] || row_ends[b * o.channels] != 0 || o.end_all;
    if (!ending[b]) continue;
    for (int64_t r = b * o.channels; r < (b + 1) * o.channels; ++r) {
      if (countdown[r] == 0) {
        std::fill(out + r * vocab, out + (r + 1) * vocab, -kInf);
        out[r * vocab + o.eos] = 0.0f;
      }
      countdown[r] -= 1;
    }
  }
}

}  // namespace speechdecode
