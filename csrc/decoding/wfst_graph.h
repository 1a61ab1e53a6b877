// The flat-array decoding graph (graphs/export.py writes it, the WFST decoder reads it) and the
// one check of its rules, used by graphs.load_graph / export_npz and by WfstGraph alike.
#pragma once

#include <cstdint>
#include <vector>

namespace speechdecode {

// The graph's arrays, borrowed: the arcs of state s are [arc_offsets[s], arc_offsets[s + 1]).
// Input label 0 is epsilon, i in 1..num_tokens acoustic output i - 1; weights are tropical costs,
// final weights +inf where a state is not final.
struct GraphArrays {
  int64_t start = 0;
  const float* final_weights = nullptr;  // [num_states]
  int64_t num_states = 0;
  const int64_t* arc_offsets = nullptr;  // [num_offsets] = [num_states + 1]
  int64_t num_offsets = 0;
  const int32_t* ilabels = nullptr;  // [num_arcs]
  int64_t num_arcs = 0;
  const int32_t* olabels = nullptr;  // [num_olabels] = [num_arcs]
  int64_t num_olabels = 0;
  const float* weights = nullptr;  // [num_weights] = [num_arcs]
  int64_t num_weights = 0;
  const int32_t* nextstates = nullptr;  // [num_nextstates] = [num_arcs]
  int64_t num_nextstates = 0;
  int64_t num_tokens = 0;
  int64_t blank = 0;
};

// Checks every rule of the format: 1 <= states and arcs < 2^31 - 1, the arrays' lengths,
// 1 <= num_tokens < 2^31 - 1, blank in [0, num_tokens), start a state, final weights finite or
// +inf, offsets from 0 to the number of arcs and non-decreasing, input labels in 0..num_tokens,
// output labels >= 0, next states in [0, states), finite arc costs, the arcs of each state sorted
// by input label, and no cycle of epsilon arcs. Throws TensorError naming the first array that
// breaks a rule, with what it expects and what it holds (and where).
//
// Returns the states in a topological order of the epsilon arcs (which exists: no cycles).
std::vector<int32_t> check_graph(const GraphArrays& graph);

}  // namespace speechdecode
