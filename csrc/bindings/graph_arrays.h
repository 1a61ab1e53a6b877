// The decoding graph's arrays from Python, for check_graph and WfstGraph: each a C-contiguous
// 1-D numpy array of the export format's dtype (graphs/export.py), borrowed, not copied.
#pragma once

#include <pybind11/numpy.h>

#include <cstdint>

#include "bindings/arrays.h"
#include "decoding/wfst_graph.h"

namespace speechdecode {

template <typename T>
const T* graph_array(const pybind11::array& a, const char* name, int64_t* size) {
  checked<T>(a, name, {-1});
  *size = a.shape(0);
  return static_cast<const T*>(a.data());
}

inline GraphArrays graph_arrays(int64_t start, const pybind11::array& final_weights,
                                const pybind11::array& arc_offsets, const pybind11::array& ilabels,
                                const pybind11::array& olabels, const pybind11::array& weights,
                                const pybind11::array& nextstates, int64_t num_tokens, int64_t blank) {
  GraphArrays g;
  g.start = start;
  g.final_weights = graph_array<float>(final_weights, "final_weights", &g.num_states);
  g.arc_offsets = graph_array<int64_t>(arc_offsets, "arc_offsets", &g.num_offsets);
  g.ilabels = graph_array<int32_t>(ilabels, "ilabels", &g.num_arcs);
  g.olabels = graph_array<int32_t>(olabels, "olabels", &g.num_olabels);
  g.weights = graph_array<float>(weights, "weights", &g.num_weights);
  g.nextstates = graph_array<int32_t>(nextstates, "nextstates", &g.num_nextstates);
  g.num_tokens = num_tokens;
  g.blank = blank;
  return g;
}

}  // namespace speechdecode
