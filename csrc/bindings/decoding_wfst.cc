// Bindings for csrc/decoding/wfst_decoder: check arguments, release the GIL, call, convert.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "bindings/graph_arrays.h"
#include "common/errors.h"
#include "decoding/wfst_decoder.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

std::shared_ptr<WfstGraph> make_graph(int64_t start, const py::array& final_weights,
                                      const py::array& arc_offsets, const py::array& ilabels,
                                      const py::array& olabels, const py::array& weights,
                                      const py::array& nextstates, int64_t num_tokens, int64_t blank) {
  const GraphArrays graph = graph_arrays(start, final_weights, arc_offsets, ilabels, olabels, weights,
                                         nextstates, num_tokens, blank);
  py::gil_scoped_release release;
  return std::make_shared<WfstGraph>(graph);
}

std::vector<std::vector<CtcHypothesis>> decode(const std::shared_ptr<const WfstGraph>& graph,
                                               const py::array& log_probs,
                                               const std::optional<py::array>& lengths,
                                               const WfstOptions& options, int num_threads) {
  check_scores(log_probs, "log_probs", 3, graph->num_tokens(), "the graph's num_tokens");
  const int64_t batch = log_probs.shape(0);
  const int64_t* length_data = lengths ? checked_lengths(*lengths, batch, log_probs.shape(1)) : nullptr;
  std::vector<std::vector<CtcHypothesis>> results;
  {
    py::gil_scoped_release release;
    results = wfst_decode(graph, options, static_cast<const float*>(log_probs.data()), batch,
                          log_probs.shape(1), log_probs.shape(2), log_probs.strides(0) / 4,
                          log_probs.strides(1) / 4, length_data, num_threads);
  }
  return results;
}

// A stream with a lock, as the prefix stream has: Python threads may share one (accept and
// finish run without the GIL), and calls from several threads take turns.
class PyWfstSearch {
 public:
  PyWfstSearch(std::shared_ptr<const WfstGraph> graph, const WfstOptions& options)
      : search_(std::move(graph), options) {}

  void accept(const py::array& chunk) {
    check_scores(chunk, "chunk", 2, search_.graph().num_tokens(), "the graph's num_tokens");
    const auto* data = static_cast<const float*>(chunk.data());
    const int64_t count = chunk.shape(0), stride = chunk.strides(0) / 4;
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    search_.accept(data, count, stride);
  }

  std::optional<CtcHypothesis> partial() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return search_.partial();
  }

  std::vector<CtcHypothesis> finish() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return search_.finish();
  }

  int64_t frames_accepted() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return search_.frames_accepted();
  }

 private:
  WfstSearch search_;
  std::mutex mutex_;
};

}  // namespace

void bind_decoding_wfst(py::module_& m) {
  py::class_<WfstGraph, std::shared_ptr<WfstGraph>>(
      m, "WfstGraph", "A decoding graph in flat arrays (CSR by state, arcs sorted by ilabel), checked once.")
      .def(py::init(&make_graph), py::arg("start"), py::arg("final_weights"), py::arg("arc_offsets"),
           py::arg("ilabels"), py::arg("olabels"), py::arg("weights"), py::arg("nextstates"),
           py::arg("num_tokens"), py::arg("blank"))
      .def_property_readonly("num_states", &WfstGraph::num_states)
      .def_property_readonly("num_arcs", &WfstGraph::num_arcs)
      .def_property_readonly("num_tokens", &WfstGraph::num_tokens)
      .def_property_readonly("blank", &WfstGraph::blank)
      .def_property_readonly("start", &WfstGraph::start);

  py::class_<WfstOptions>(m, "WfstOptions",
                          "The WFST search's options (csrc/decoding/wfst_decoder.h); validate() checks them.")
      .def(py::init<>())
      .def_readwrite("beam", &WfstOptions::beam)
      .def_readwrite("max_active", &WfstOptions::max_active)
      .def_readwrite("acoustic_scale", &WfstOptions::acoustic_scale)
      .def_readwrite("blank_skip_threshold", &WfstOptions::blank_skip_threshold)
      .def_readwrite("lattice_beam", &WfstOptions::lattice_beam)
      .def_readwrite("nbest", &WfstOptions::nbest)
      .def_readwrite("word_boundary", &WfstOptions::word_boundary)
      .def_readwrite("max_nbest_expansions", &WfstOptions::max_nbest_expansions)
      .def("validate", &WfstOptions::validate,
           "Raises TensorError naming the first option out of range (the graph-dependent bound of "
           "word_boundary is checked by the search).");

  m.def("wfst_decode", &decode, py::arg("graph"), py::arg("log_probs"), py::arg("lengths"),
        py::arg("options"), py::arg("num_threads") = 0,
        R"doc(Beam-searches log_probs [B, T, V] (float32, last axis contiguous) over graph; one n-best list
of Hypothesis (word_ids: the graph's output labels) per utterance. Releases the GIL and runs
utterances on num_threads threads (0: all cores).)doc");

  py::class_<PyWfstSearch>(m, "WfstSearch",
                           "The streaming search state of one utterance; threads may share it.")
      .def(py::init<std::shared_ptr<const WfstGraph>, const WfstOptions&>(), py::arg("graph"),
           py::arg("options"))
      .def("accept", &PyWfstSearch::accept, py::arg("chunk"))
      .def("partial", &PyWfstSearch::partial, "The best path so far (final weights ignored), or None.")
      .def("finish", &PyWfstSearch::finish, "The n-best list of the frames accepted so far.")
      .def_property_readonly("frames_accepted", &PyWfstSearch::frames_accepted);
}

}  // namespace speechdecode
