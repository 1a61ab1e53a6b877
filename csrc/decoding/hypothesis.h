// The result every CTC search returns (prefix beam search, WFST search): one hypothesis of one
// utterance. Bound once as speechdecode._native.Hypothesis (read-only); the Python
// speechdecode.decoding.Hypothesis is built from it field by field.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace speechdecode {

struct CtcHypothesis {
  // Acoustic-model output ids, blanks removed and repeats merged, and the frame each starts at.
  std::vector<int32_t> tokens;
  std::vector<int32_t> token_frames;
  // The words as text (prefix search), or empty where the search outputs word ids instead.
  std::vector<std::string> words;
  // The words as output labels of the decoding graph (WFST search; words.txt ids), or empty.
  std::vector<int32_t> word_ids;
  // (first, last) frame of each word.
  std::vector<std::pair<int32_t, int32_t>> word_frames;
  // score = what the search ranked by; am_score its acoustic part, lm_score its weighted LM or
  // graph part (each search's header says how they add up).
  double score = 0.0;
  double am_score = 0.0;
  double lm_score = 0.0;
  // Whether the path ended in a final state of the graph (WFST search; always true otherwise).
  bool reached_final = true;
};

}  // namespace speechdecode
