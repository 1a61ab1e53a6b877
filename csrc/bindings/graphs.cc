// Bindings for csrc/decoding/wfst_graph: the one check of a decoding graph's arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"
#include "bindings/graph_arrays.h"
#include "decoding/wfst_graph.h"

namespace py = pybind11;

namespace speechdecode {

void bind_graphs(py::module_& m) {
  m.def(
      "check_graph",
      [](int64_t start, const py::array& final_weights, const py::array& arc_offsets,
         const py::array& ilabels, const py::array& olabels, const py::array& weights,
         const py::array& nextstates, int64_t num_tokens, int64_t blank) {
        const GraphArrays graph = graph_arrays(start, final_weights, arc_offsets, ilabels, olabels, weights,
                                               nextstates, num_tokens, blank);
        py::gil_scoped_release release;
        check_graph(graph);
      },
      py::arg("start"), py::arg("final_weights"), py::arg("arc_offsets"), py::arg("ilabels"),
      py::arg("olabels"), py::arg("weights"), py::arg("nextstates"), py::arg("num_tokens"), py::arg("blank"),
      "Checks a decoding graph's arrays (graphs/export.py's format); TensorError names the first bad array.");
}

}  // namespace speechdecode
