// CTC greedy (best-path) decoding.
//
// Graves et al., "Connectionist Temporal Classification" (ICML 2006), section 3.2 "best path
// decoding": take the most probable label of every frame, merge consecutive repeats, then
// drop blanks. Ties between labels of equal score go to the lowest label id (the first
// maximum, as numpy.argmax and torch.argmax do).
//
// The work is split in two: argmax over the vocabulary for chunks of frames (in parallel,
// the memory-bound part), then a sequential collapse per utterance over the argmax ids.
#pragma once

#include <cstdint>
#include <vector>

namespace speechdecode {

enum class ScoreType { kFloat32, kFloat16, kBFloat16 };

// A read-only view of log-probs [batch, frames, vocab]. The vocab axis is contiguous;
// strides of the other two axes are in elements and may be anything (sliced inputs).
struct LogProbView {
  const void* data = nullptr;
  ScoreType type = ScoreType::kFloat32;
  int64_t batch = 0;
  int64_t frames = 0;
  int64_t vocab = 0;
  int64_t stride_batch = 0;
  int64_t stride_frame = 0;
};

// Packed result: utterance b owns tokens[offsets[b] : offsets[b + 1]]; frames[i] is the
// first frame of the run that emitted tokens[i].
struct CtcGreedyOutput {
  std::vector<int64_t> tokens;
  std::vector<int64_t> frames;
  std::vector<int64_t> offsets;
};

// Greedy-decodes every utterance; frames t >= lengths[b] are ignored (lengths may be null:
// all frames). Throws TensorError for a NaN or +inf score inside the lengths, naming the
// position, and for lengths or blank out of range. Thread-safe; runs on num_threads threads
// (<= 0: all hardware threads). Takes no Python lock: callers may release the GIL.
CtcGreedyOutput ctc_greedy(const LogProbView& log_probs, const int64_t* lengths, int64_t blank,
                           int num_threads);

}  // namespace speechdecode
