// Token sampling from LM logits, one fused pass per row: temperature / top-k / top-p (nucleus,
// Holtzman et al. 2020) / min-p sampling, and repetition-aware sampling (RAS, VALL-E 2, Chen et
// al. 2024, section 3.4.1) with the paper / CosyVoice / FlashCosyVoice presets.
//
// The definitions are those of the Python references, which these functions must reproduce
// draw for draw on the same uniforms: speechdecode.kernels.sampling (sample) and
// speechdecode.decoding.ras (RAS; docs/DEFINITIONS.md section 4). Per row: one scan (checks, maximum),
// vectorized exponentials, histograms of the probabilities that locate the top-k cut (so that
// only the values of one fine bucket are ordered) and the nucleus cut (only the few values above
// it are sorted), the cuts themselves, and an inverse-CDF draw in vocabulary order with the
// supplied uniform; RAS then counts the candidate in the row's recent history and redraws over
// the full distribution if needed.
//
// Rounding: cumulative sums accumulate in double and are rounded to float32 at each position,
// as torch.cumsum does on CPU, and comparisons are float32 as in the references. Totals are
// summed in another order than torch.sum and exp is a polynomial within 2 ulp, so a draw whose
// uniform (or a top-p boundary) falls within float32 rounding of a cumulative value may differ
// from the reference; random uniforms stay clear of that (ties are exact: equal logits give
// equal probabilities).
#pragma once

#include <cstdint>

namespace speechdecode {

// Read-only logits [batch, vocab] float32; the vocab axis is contiguous, rows are `stride`
// elements apart.
struct LogitsView {
  const float* data = nullptr;
  int64_t batch = 0;
  int64_t vocab = 0;
  int64_t stride = 0;
};

// A per-row parameter: row b reads values[b * stride]; stride 0 shares one value.
template <typename T>
struct RowParam {
  const T* values = nullptr;
  int64_t stride = 0;
  T at(int64_t row) const { return values[row * stride]; }
};

// temperature >= 0 (0: greedy, the first maximum), top_k >= 1 (>= vocab: off), top_p in
// (0, 1] (1: off), min_p in [0, 1], uniforms in [0, 1).
struct SampleParams {
  RowParam<float> temperature;
  RowParam<int64_t> top_k;
  RowParam<float> top_p;
  RowParam<float> min_p;
  RowParam<float> uniforms;
};

// Draws out[b] for every row. Throws TensorError naming the first bad row: logits with NaN,
// +inf or all -inf; a parameter outside its range (named "temperature", "top_k", ...).
// Runs on up to num_threads threads (<= 0: hardware threads; small batches stay on one).
// Takes no Python lock.
void sample(const LogitsView& logits, const SampleParams& params, int64_t* out, int num_threads);

// Classifier-free guidance of a row from two or three logit rows (all [batch, vocab], rows
// `stride` elements apart), in float32 and in this order of operations, as transformers' CFG
// processors compute it:
//   kUncond (MusicGen):  u + (c - u) * s
//   kDual (VoiceLDM):    u + (c - u) * s + (c2 - u) * s2
//   kCond (Dia):         c + (c - u) * s
// A token that is -inf in any input row stays -inf (the formulas would give NaN for some).
enum class GuidanceCenter { kUncond, kDual, kCond };

struct Guidance {
  LogitsView uncond;
  LogitsView cond2;  // kDual only
  float scale = 1;
  float scale2 = 0;
  GuidanceCenter center = GuidanceCenter::kUncond;
};

// sample() of the guided logits of `cond`: each row is guided into a per-thread scratch row and
// drawn from there, in the same parallel loop (no [B, V] guided array). Throws TensorError for
// NaN or +inf in an input (named "cond", "uncond" or "cond2", with the row), for a row with no
// token finite in every input, and for bad parameters as sample() does.
void guided_sample(const LogitsView& cond, const Guidance& guidance, const SampleParams& params, int64_t* out,
                   int num_threads);

enum class RasPreset { kPaper, kCosyVoice, kFlashCosyVoice };

struct RasOptions {
  int64_t window = 10;   // K >= 1
  double threshold = 0;  // t_r in [0, 1]
  int64_t top_k = 0;     // nucleus size cap, <= 0: none
  double top_p = 0.8;    // (0, 1]
  RasPreset preset = RasPreset::kPaper;
};

// Generated codes [batch, length] int64, most recent last, -1 for padding; rows `stride`
// elements apart, columns contiguous.
struct HistoryView {
  const int64_t* data = nullptr;
  int64_t length = 0;
  int64_t stride = 0;
};

// RAS for every row with uniforms [batch, 2] (contiguous: candidate, redraw). Throws
// TensorError for bad logits (as sample), history values < -1 or uniforms outside [0, 1),
// naming the first bad row. Threads and locking as sample.
void repetition_aware_sample(const LogitsView& logits, const HistoryView& history, const RasOptions& options,
                             const float* uniforms, int64_t* out, int num_threads);

// repetition_aware_sample() of the guided logits of `cond` divided by temperature (> 0; guided
// first, as transformers runs CFG before its temperature warper): each row is guided into a
// per-thread scratch row and drawn from there (no [B, V] guided array). Throws as
// guided_sample() and repetition_aware_sample().
void guided_repetition_aware_sample(const LogitsView& cond, const Guidance& guidance, float temperature,
                                    const HistoryView& history, const RasOptions& options,
                                    const float* uniforms, int64_t* out, int num_threads);

}  // namespace speechdecode
