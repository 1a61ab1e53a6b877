// Bindings for csrc/decoding/wfst_graph (the one check of a decoding graph's arrays) and
// csrc/graphs/fst_ops (the native steps of TLG compilation, graphs/compile.py).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/graph_arrays.h"
#include "common/errors.h"
#include "decoding/wfst_graph.h"
#include "graphs/fst_ops.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

// An FST's CSR arrays (graphs.fst_io.FstArrays' dtypes), borrowed; `keep` holds them while the
// GIL is released.
FstView fst_view(int64_t start, const py::array& final_weights, const py::array& arc_offsets,
                 const py::array& ilabels, const py::array& olabels, const py::array& weights,
                 const py::array& nextstates, std::vector<py::array>* keep) {
  FstView fst;
  fst.start = start;
  int64_t offsets = 0, olabel_count = 0, weight_count = 0, next_count = 0;
  fst.final_weights = graph_array<float>(final_weights, "final_weights", &fst.num_states);
  fst.arc_offsets = graph_array<int64_t>(arc_offsets, "arc_offsets", &offsets);
  fst.ilabels = graph_array<int32_t>(ilabels, "ilabels", &fst.num_arcs);
  fst.olabels = graph_array<int32_t>(olabels, "olabels", &olabel_count);
  fst.weights = graph_array<float>(weights, "weights", &weight_count);
  fst.nextstates = graph_array<int32_t>(nextstates, "nextstates", &next_count);
  if (offsets != fst.num_states + 1) {
    throw TensorError("arc_offsets", "shape [" + std::to_string(fst.num_states + 1) + "] (states + 1)",
                      "[" + std::to_string(offsets) + "]");
  }
  for (const auto& [name, count] : {std::pair<const char*, int64_t>{"olabels", olabel_count},
                                    {"weights", weight_count},
                                    {"nextstates", next_count}}) {
    if (count != fst.num_arcs) {
      throw TensorError(name, "shape [" + std::to_string(fst.num_arcs) + "] (one per arc, as ilabels)",
                        "[" + std::to_string(count) + "]");
    }
  }
  *keep = {final_weights, arc_offsets, ilabels, olabels, weights, nextstates};
  return fst;
}

template <typename T>
py::array_t<T> owned_array(std::vector<T>&& values) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(owned->size())}, owned->data(), owner);
}

py::tuple result_arrays(FstArraysResult&& fst) {
  return py::make_tuple(fst.start, owned_array(std::move(fst.final_weights)),
                        owned_array(std::move(fst.arc_offsets)), owned_array(std::move(fst.ilabels)),
                        owned_array(std::move(fst.olabels)), owned_array(std::move(fst.weights)),
                        owned_array(std::move(fst.nextstates)));
}

}  // namespace

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
  m.def(
      "minimize_encoded",
      [](int64_t start, const py::array& final_weights, const py::array& arc_offsets,
         const py::array& ilabels, const py::array& olabels, const py::array& weights,
         const py::array& nextstates) {
        std::vector<py::array> keep;
        const FstView fst =
            fst_view(start, final_weights, arc_offsets, ilabels, olabels, weights, nextstates, &keep);
        FstArraysResult result;
        {
          py::gil_scoped_release release;
          result = minimize_encoded(fst);
        }
        return result_arrays(std::move(result));
      },
      py::arg("start"), py::arg("final_weights"), py::arg("arc_offsets"), py::arg("ilabels"),
      py::arg("olabels"), py::arg("weights"), py::arg("nextstates"),
      "OpenFst's minimization of a deterministic FST encoded over (input, output, weight); returns "
      "(start, final_weights, arc_offsets, ilabels, olabels, weights, nextstates), arcs sorted by input "
      "label.");
  m.def(
      "compose_ctc",
      [](int64_t start, const py::array& final_weights, const py::array& arc_offsets,
         const py::array& ilabels, const py::array& olabels, const py::array& weights,
         const py::array& nextstates, int64_t num_tokens, int64_t blank, int64_t num_disambig,
         const std::string& topology) {
        if (topology != "compact" && topology != "standard") {
          throw TensorError("topology", "one of compact, standard", "'" + topology + "'");
        }
        std::vector<py::array> keep;
        const FstView lg =
            fst_view(start, final_weights, arc_offsets, ilabels, olabels, weights, nextstates, &keep);
        FstArraysResult result;
        {
          py::gil_scoped_release release;
          result = compose_ctc(lg, num_tokens, blank, num_disambig, topology == "compact");
        }
        return result_arrays(std::move(result));
      },
      py::arg("start"), py::arg("final_weights"), py::arg("arc_offsets"), py::arg("ilabels"),
      py::arg("olabels"), py::arg("weights"), py::arg("nextstates"), py::arg("num_tokens"), py::arg("blank"),
      py::arg("num_disambig"), py::arg("topology"),
      "T∘LG for the CTC topology (compact or standard), as OpenFst's composition and connect give it for an "
      "LG "
      "without input epsilons; returns the arrays as minimize_encoded does, states in breadth-first order.");
}

}  // namespace speechdecode
