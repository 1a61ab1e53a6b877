// One step of Dia's logits processors over the rows of all channels, for
// speechdecode.models.hf_dia.dia_generate: transformers' DiaClassifierFreeGuidanceLogitsProcessor,
// DiaEOSChannelFilterLogitsProcessor and the forced ends of DiaEOSDelayPatternLogitsProcessor,
// one pass per row.
//
// Row r is channel c = r % channels of sequence b = r / channels. Per row, from the conditional
// logits (and the unconditional ones when guided):
//   1. guidance, in transformers' order of float32 operations: x = c + (c - u) * scale; with
//      top_k, the scores are c on the top_k largest x (NaN ranks above everything, as in
//      torch.topk; among equal x the lower ids come first) and -inf elsewhere, else x itself;
//   2. only channel 0 may end: ids above eos (channel 0) or from eos on (the others) become -inf;
//      a row whose largest score (the first; NaN counts as largest, as in torch.argmax) is at
//      eos keeps only eos, any other row loses eos;
//   3. sequence b is ending once channel 0's largest score was eos (or when end_all is set);
//      while it is, a channel whose countdown is 0 gets the scores of EOS alone (0 at eos, -inf
//      elsewhere), and every countdown of the sequence goes down by one.
#pragma once

#include <cstdint>

namespace speechdecode {

struct DiaScoresOptions {
  bool guided = false;  // logits hold the conditional rows, then as many unconditional ones
  float scale = 1.0f;
  int64_t top_k = 0;  // 0: none; else 1 <= top_k <= vocab (used only when guided)
  int64_t channels = 1;
  int64_t eos = 0;       // 0 <= eos < vocab
  bool end_all = false;  // every sequence is ending from this step on
};

// logits: `rows` (x2 when guided) contiguous float32 rows of vocab; out: rows x vocab scores;
// ending: [rows / channels] flags and countdown: [rows] steps, both read and updated (step 3).
void dia_scores(const float* logits, int64_t rows, int64_t vocab, const DiaScoresOptions& options, float* out,
                bool* ending, int64_t* countdown, int num_threads);

}  // namespace speechdecode
