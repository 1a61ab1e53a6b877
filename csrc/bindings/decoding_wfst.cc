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
#include "common/errors.h"
#include "decoding/wfst_decoder.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

std::shared_ptr<WfstGraph> make_graph(int64_t start, const CArray<float>& final_weights,
                                      const CArray<int64_t>& arc_offsets, const CArray<int32_t>& ilabels,
                                      const CArray<int32_t>& olabels, const CArray<float>& weights,
                                      const CArray<int32_t>& nextstates, int64_t num_tokens, int64_t blank) {
  const py::ssize_t states = final_weights.size(), arcs = ilabels.size();
  if (final_weights.ndim() != 1) throw TensorError("final_weights", "a 1-D array", "another shape");
  if (arc_offsets.ndim() != 1 || arc_offsets.size() != states + 1) {
    throw TensorError("arc_offsets", "a 1-D array of " + std::to_string(states + 1) + " offsets (states + 1)",
                      std::to_string(arc_offsets.size()) + " elements");
  }
  const std::pair<const char*, py::ssize_t> sizes[] = {
      {"olabels", olabels.size()}, {"weights", weights.size()}, {"nextstates", nextstates.size()}};
  for (const auto& [name, size] : sizes) {
    if (size != arcs) {
      throw TensorError(name, std::to_string(arcs) + " arcs (as many as ilabels)", std::to_string(size));
    }
  }
  py::gil_scoped_release release;
  return std::make_shared<WfstGraph>(start, final_weights.data(), states, arc_offsets.data(), ilabels.data(),
                                     olabels.data(), weights.data(), nextstates.data(), arcs, num_tokens,
                                     blank);
}

WfstOptions make_options(double beam, int64_t max_active, double acoustic_scale, double blank_skip_threshold,
                         double lattice_beam, int64_t nbest, int64_t word_boundary) {
  WfstOptions o;
  o.beam = beam;
  o.max_active = max_active;
  o.acoustic_scale = acoustic_scale;
  o.blank_skip_threshold = blank_skip_threshold;
  o.lattice_beam = lattice_beam;
  o.nbest = nbest;
  o.word_boundary = word_boundary;
  return o;
}

py::tuple to_python(const WfstResult& r) {
  return py::make_tuple(r.tokens, r.token_frames, r.words, r.word_frames, r.score, r.am_score, r.lm_score,
                        r.reached_final);
}

py::list to_python(const std::vector<WfstResult>& results) {
  py::list out;
  for (const WfstResult& r : results) out.append(to_python(r));
  return out;
}

py::list decode(const std::shared_ptr<const WfstGraph>& graph, const py::array& log_probs,
                const std::optional<py::array>& lengths, double beam, int64_t max_active,
                double acoustic_scale, double blank_skip_threshold, double lattice_beam, int64_t nbest,
                int64_t word_boundary, int num_threads) {
  check_scores(log_probs, "log_probs", 3, graph->num_tokens(), "the graph's num_tokens");
  const int64_t batch = log_probs.shape(0);
  const int64_t* length_data = lengths ? checked_lengths(*lengths, batch, log_probs.shape(1)) : nullptr;
  const WfstOptions options = make_options(beam, max_active, acoustic_scale, blank_skip_threshold,
                                           lattice_beam, nbest, word_boundary);
  std::vector<std::vector<WfstResult>> results;
  {
    py::gil_scoped_release release;
    results = wfst_decode(graph, options, static_cast<const float*>(log_probs.data()), batch,
                          log_probs.shape(1), log_probs.shape(2), log_probs.strides(0) / 4,
                          log_probs.strides(1) / 4, length_data, num_threads);
  }
  py::list out;
  for (const auto& nbest_list : results) out.append(to_python(nbest_list));
  return out;
}

// A stream with a lock, as the prefix stream has: Python threads may share one (accept and
// finalize run without the GIL), and calls from several threads take turns.
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

  py::object partial() {
    std::optional<WfstResult> result;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      result = search_.partial();
    }
    return result ? py::object(to_python(*result)) : py::object(py::none());
  }

  py::list finalize() {
    std::vector<WfstResult> results;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      results = search_.finalize();
    }
    return to_python(results);
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

  m.def("wfst_decode", &decode, py::arg("graph"), py::arg("log_probs"), py::arg("lengths"), py::arg("beam"),
        py::arg("max_active"), py::arg("acoustic_scale"), py::arg("blank_skip_threshold"),
        py::arg("lattice_beam"), py::arg("nbest"), py::arg("word_boundary"), py::arg("num_threads") = 0,
        R"doc(Beam-searches log_probs [B, T, V] (float32, last axis contiguous) over graph; one n-best list
of (tokens, token_frames, words, word_frames, score, am_score, lm_score, reached_final) per utterance.
Releases the GIL and runs utterances on num_threads threads (0: all cores).)doc");

  py::class_<PyWfstSearch>(m, "WfstSearch",
                           "The streaming search state of one utterance; threads may share it.")
      .def(py::init([](std::shared_ptr<const WfstGraph> graph, double beam, int64_t max_active,
                       double acoustic_scale, double blank_skip_threshold, double lattice_beam, int64_t nbest,
                       int64_t word_boundary) {
             return std::make_unique<PyWfstSearch>(
                 std::move(graph), make_options(beam, max_active, acoustic_scale, blank_skip_threshold,
                                                lattice_beam, nbest, word_boundary));
           }),
           py::arg("graph"), py::arg("beam"), py::arg("max_active"), py::arg("acoustic_scale"),
           py::arg("blank_skip_threshold"), py::arg("lattice_beam"), py::arg("nbest"),
           py::arg("word_boundary"))
      .def("accept", &PyWfstSearch::accept, py::arg("chunk"))
      .def("partial", &PyWfstSearch::partial)
      .def("finalize", &PyWfstSearch::finalize)
      .def_property_readonly("frames_accepted", &PyWfstSearch::frames_accepted);
}

}  // namespace speechdecode
