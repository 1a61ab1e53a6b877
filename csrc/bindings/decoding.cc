// Bindings for csrc/decoding: check arguments, release the GIL, call, convert.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/errors.h"
#include "decoding/ctc_greedy.h"
#include "decoding/hypothesis.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

LogProbView log_prob_view(const py::array& a, const std::string& score_type) {
  if (a.ndim() != 3) {
    throw TensorError("log_probs", "a 3-D array [B, T, V]", std::to_string(a.ndim()) + "-D array");
  }
  const char kind = a.dtype().kind();
  LogProbView view;
  if (score_type == "float32") {
    if (kind != 'f' || a.itemsize() != 4) throw TensorError("log_probs", "dtype float32", dtype_name(a));
    view.type = ScoreType::kFloat32;
  } else if (score_type == "float16" || score_type == "bfloat16") {
    // 16-bit scores cross as their bit patterns (numpy has no bfloat16).
    if (a.itemsize() != 2 || (kind != 'f' && kind != 'u' && kind != 'i')) {
      throw TensorError("log_probs", "16-bit " + score_type + " scores", dtype_name(a));
    }
    view.type = score_type == "float16" ? ScoreType::kFloat16 : ScoreType::kBFloat16;
  } else {
    throw TensorError("score_type", "float32, float16 or bfloat16", "'" + score_type + "'");
  }
  check_rows(a, "log_probs");
  const auto item = a.itemsize();
  view.data = a.data();
  view.batch = a.shape(0);
  view.frames = a.shape(1);
  view.vocab = a.shape(2);
  view.stride_batch = a.strides(0) / item;
  view.stride_frame = a.strides(1) / item;
  return view;
}

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
  return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

py::tuple ctc_greedy_py(const py::array& log_probs, const std::optional<py::array>& lengths, int64_t blank,
                        const std::string& score_type, int num_threads) {
  const LogProbView view = log_prob_view(log_probs, score_type);
  const int64_t* length_data = lengths ? checked_lengths(*lengths, view.batch, view.frames) : nullptr;
  CtcGreedyOutput out;
  {
    py::gil_scoped_release release;
    out = ctc_greedy(view, length_data, blank, num_threads);
  }
  return py::make_tuple(to_numpy(out.tokens), to_numpy(out.frames), to_numpy(out.offsets));
}

// A vector as a Python tuple (the Python Hypothesis is frozen: its fields are tuples).
template <typename T>
py::tuple as_tuple(const std::vector<T>& items) {
  py::tuple out(items.size());
  for (size_t i = 0; i < items.size(); ++i) out[i] = py::cast(items[i]);
  return out;
}

}  // namespace

void bind_decoding(py::module_& m) {
  py::class_<CtcHypothesis>(m, "Hypothesis",
                            "One hypothesis of a CTC search (csrc/decoding/hypothesis.h), read-only; "
                            "speechdecode.decoding.Hypothesis is built from it.")
      .def_property_readonly("tokens", [](const CtcHypothesis& h) { return as_tuple(h.tokens); })
      .def_property_readonly("token_frames", [](const CtcHypothesis& h) { return as_tuple(h.token_frames); })
      .def_property_readonly("words", [](const CtcHypothesis& h) { return as_tuple(h.words); })
      .def_property_readonly("word_ids", [](const CtcHypothesis& h) { return as_tuple(h.word_ids); })
      .def_property_readonly("word_frames", [](const CtcHypothesis& h) { return as_tuple(h.word_frames); })
      .def_readonly("score", &CtcHypothesis::score)
      .def_readonly("am_score", &CtcHypothesis::am_score)
      .def_readonly("lm_score", &CtcHypothesis::lm_score)
      .def_readonly("reached_final", &CtcHypothesis::reached_final);
  m.def("ctc_greedy", &ctc_greedy_py, py::arg("log_probs"), py::arg("lengths"), py::arg("blank"),
        py::arg("score_type") = "float32", py::arg("num_threads") = 0,
        R"doc(Greedy CTC decoding of log_probs [B, T, V] (float32, or 16-bit float bit patterns with
score_type "float16" / "bfloat16"). lengths: int64 [B] or None. Returns packed (tokens, frames,
offsets) int64 arrays; utterance b is tokens[offsets[b]:offsets[b+1]]. Releases the GIL.)doc");
}

}  // namespace speechdecode
