// Bindings for csrc/decoding/sampling: check arguments, release the GIL, call, convert.
#include "decoding/sampling.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/errors.h"
#include "decoding/dia_scores.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

LogitsView logits_view(const py::array& a) {
  check_float32(a, "logits", 2, -1, "[B, V]");
  if (a.shape(1) < 1 || a.shape(1) > INT32_MAX) {
    throw TensorError("logits", "between 1 and 2^31 - 1 columns", describe(a));
  }
  return {static_cast<const float*>(a.data()), a.shape(0), a.shape(1), a.strides(0) / 4};
}

// A scalar (0-d or one element: shared by every row) or a contiguous [batch] parameter.
template <typename T>
RowParam<T> row_param(const Array<T>& a, const char* name, int64_t batch) {
  if (a.size() == 1 && a.ndim() <= 1) return {a.data(), 0};
  if (a.ndim() != 1 || a.shape(0) != batch) {
    throw TensorError(name, "a scalar or shape [" + std::to_string(batch) + "]", describe(a));
  }
  return {a.data(), 1};
}

SampleParams sample_params(const Array<float>& temperature, const Array<int64_t>& top_k,
                           const Array<float>& top_p, const Array<float>& min_p, const Array<float>& uniforms,
                           int64_t batch) {
  return {row_param(temperature, "temperature", batch), row_param(top_k, "top_k", batch),
          row_param(top_p, "top_p", batch), row_param(min_p, "min_p", batch),
          row_param(uniforms, "uniforms", batch)};
}

py::array_t<int64_t> sample_py(const py::array& logits, const Array<float>& temperature,
                               const Array<int64_t>& top_k, const Array<float>& top_p,
                               const Array<float>& min_p, const Array<float>& uniforms, int num_threads) {
  const LogitsView view = logits_view(logits);
  const SampleParams params = sample_params(temperature, top_k, top_p, min_p, uniforms, view.batch);
  py::array_t<int64_t> out(view.batch);
  int64_t* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    sample(view, params, data, num_threads);
  }
  return out;
}

// A guidance input: float32 like logits_view, and the shape of cond.
LogitsView guidance_view(const py::array& a, const char* name, const LogitsView& cond) {
  if (a.ndim() != 2 || a.shape(0) != cond.batch || a.shape(1) != cond.vocab) {
    throw TensorError(
        name, "the shape of cond [" + std::to_string(cond.batch) + ", " + std::to_string(cond.vocab) + "]",
        describe(a));
  }
  try {
    return logits_view(a);
  } catch (const TensorError&) {
    throw TensorError(name, "a float32 array with a contiguous vocabulary axis", describe(a));
  }
}

// The guidance of cond by uncond (and cond2); `second` holds cond2's array while it is read.
Guidance make_guidance(const LogitsView& view, const py::array& uncond, const py::object& cond2, double scale,
                       double scale2, const std::string& center, py::array& second) {
  Guidance guidance;
  guidance.uncond = guidance_view(uncond, "uncond", view);
  guidance.scale = static_cast<float>(scale);
  guidance.scale2 = static_cast<float>(scale2);
  if (center == "uncond") {
    guidance.center = cond2.is_none() ? GuidanceCenter::kUncond : GuidanceCenter::kDual;
  } else if (center == "cond" && cond2.is_none()) {
    guidance.center = GuidanceCenter::kCond;
  } else {
    throw TensorError("center", "'uncond' (with or without cond2) or 'cond' (without)", "'" + center + "'");
  }
  if (!cond2.is_none()) {
    second = cond2.cast<py::array>();
    guidance.cond2 = guidance_view(second, "cond2", view);
  }
  return guidance;
}

py::array_t<int64_t> guided_sample_py(const py::array& cond, const py::array& uncond, const py::object& cond2,
                                      double scale, double scale2, const std::string& center,
                                      const Array<float>& temperature, const Array<int64_t>& top_k,
                                      const Array<float>& top_p, const Array<float>& min_p,
                                      const Array<float>& uniforms, int num_threads) {
  const LogitsView view = logits_view(cond);
  py::array second;
  const Guidance guidance = make_guidance(view, uncond, cond2, scale, scale2, center, second);
  const SampleParams params = sample_params(temperature, top_k, top_p, min_p, uniforms, view.batch);
  py::array_t<int64_t> out(view.batch);
  int64_t* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    guided_sample(view, guidance, params, data, num_threads);
  }
  return out;
}

RasPreset ras_preset(const std::string& name) {
  if (name == "paper") return RasPreset::kPaper;
  if (name == "cosyvoice") return RasPreset::kCosyVoice;
  if (name == "flashcosyvoice") return RasPreset::kFlashCosyVoice;
  throw TensorError("preset", "one of paper, cosyvoice, flashcosyvoice", "'" + name + "'");
}

py::array_t<int64_t> ras_py(const py::array& logits, const Array<int64_t>& history, int64_t window,
                            double threshold, int64_t top_k, double top_p, const std::string& preset,
                            const Array<float>& uniforms, int num_threads, const py::object& uncond,
                            const py::object& cond2, double scale, double scale2, const std::string& center,
                            double temperature) {
  const LogitsView view = logits_view(logits);
  const std::string rows = std::to_string(view.batch);
  if (history.ndim() != 2 || history.shape(0) != view.batch) {
    throw TensorError("history", "shape [" + rows + ", L]", describe(history));
  }
  if (uniforms.ndim() != 2 || uniforms.shape(0) != view.batch || uniforms.shape(1) != 2) {
    throw TensorError("uniforms", "shape [" + rows + ", 2]", describe(uniforms));
  }
  if (window < 1) throw TensorError("window", "an integer >= 1", std::to_string(window));
  if (!(threshold >= 0 && threshold <= 1))
    throw TensorError("threshold", "a number in [0, 1]", std::to_string(threshold));
  if (!(top_p > 0 && top_p <= 1)) throw TensorError("top_p", "a number in (0, 1]", std::to_string(top_p));
  const RasOptions options{window, threshold, top_k, top_p, ras_preset(preset)};
  const HistoryView hist{history.data(), history.shape(1), history.shape(1)};
  py::array_t<int64_t> out(view.batch);
  int64_t* data = out.mutable_data();
  if (uncond.is_none()) {
    py::gil_scoped_release release;
    repetition_aware_sample(view, hist, options, uniforms.data(), data, num_threads);
  } else {
    py::array second;
    const Guidance guidance =
        make_guidance(view, uncond.cast<py::array>(), cond2, scale, scale2, center, second);
    py::gil_scoped_release release;
    guided_repetition_aware_sample(view, guidance, static_cast<float>(temperature), hist, options,
                                   uniforms.data(), data, num_threads);
  }
  return out;
}

// A C-contiguous array of `kind` items of `itemsize` bytes and the given shape, checked without
// building any string unless it is wrong (this runs once per generated step).
template <typename T>
T* step_array(py::array& a, const char* name, char kind, const std::vector<py::ssize_t>& shape) {
  bool ok = a.dtype().kind() == kind && a.itemsize() == static_cast<py::ssize_t>(sizeof(T)) &&
            a.ndim() == static_cast<py::ssize_t>(shape.size()) && (a.flags() & py::array::c_style) &&
            a.writeable();
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = a.shape(d) == shape[d];
  if (!ok) {
    std::string expected =
        "a writeable C-contiguous " + py::str(py::dtype::of<T>()).cast<std::string>() + " array of shape [";
    for (size_t d = 0; d < shape.size(); ++d) expected += (d ? ", " : "") + std::to_string(shape[d]);
    throw TensorError(name, expected + "]", describe(a));
  }
  return static_cast<T*>(a.mutable_data());
}

void dia_scores_py(const py::array& logits, py::array& out, py::array& ending, py::array& countdown,
                   bool guided, double scale, int64_t top_k, int64_t eos, bool end_all, int num_threads) {
  check_float32(logits, "logits", 2, -1, "[N, V] (2N rows when guided)");
  if (!(logits.flags() & py::array::c_style) || (guided && logits.shape(0) % 2 != 0)) {
    throw TensorError("logits", std::string("a C-contiguous float32 array") + (guided ? " of 2N rows" : ""),
                      describe(logits));
  }
  if (countdown.ndim() != 2) throw TensorError("countdown", "shape [B, C]", describe(countdown));
  const int64_t vocab = logits.shape(1), rows = guided ? logits.shape(0) / 2 : logits.shape(0);
  const int64_t batch = countdown.shape(0), channels = countdown.shape(1);
  if (channels < 1 || batch * channels != rows) {
    throw TensorError("countdown", "[B, C] with B * C = " + std::to_string(rows) + " rows",
                      describe(countdown));
  }
  float* scores = step_array<float>(out, "out", 'f', {rows, vocab});
  bool* ends = step_array<bool>(ending, "ending", 'b', {batch});
  int64_t* steps = step_array<int64_t>(countdown, "countdown", 'i', {batch, channels});
  if (eos < 0 || eos >= vocab) {
    throw TensorError("eos", "an id in [0, " + std::to_string(vocab) + ")", std::to_string(eos));
  }
  if (top_k < 0 || top_k > vocab) {
    throw TensorError("top_k", "0 (none) or in [1, " + std::to_string(vocab) + "]", std::to_string(top_k));
  }
  const DiaScoresOptions options{guided, static_cast<float>(scale), guided ? top_k : 0, channels, eos,
                                 end_all};
  const auto* data = static_cast<const float*>(logits.data());
  py::gil_scoped_release release;
  dia_scores(data, rows, vocab, options, scores, ends, steps, num_threads);
}

}  // namespace

void bind_sampling(py::module_& m) {
  m.def("sample", &sample_py, py::arg("logits"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
        py::arg("min_p"), py::arg("uniforms"), py::arg("num_threads") = 0,
        R"doc(Draws one token per row of float32 logits [B, V] (vocabulary axis contiguous) with
temperature / top-k / top-p / min-p, by speechdecode.kernels.sampling's definition. Parameters
are scalars or [B] arrays; uniforms in [0, 1). Returns int64 [B]. Releases the GIL.)doc");
  m.def("guided_sample", &guided_sample_py, py::arg("cond"), py::arg("uncond"), py::arg("cond2"),
        py::arg("scale"), py::arg("scale2"), py::arg("center"), py::arg("temperature"), py::arg("top_k"),
        py::arg("top_p"), py::arg("min_p"), py::arg("uniforms"), py::arg("num_threads") = 0,
        R"doc(sample() of classifier-free-guided logits: center 'uncond' gives u + (c - u) * s (and
+ (c2 - u) * s2 with cond2), 'cond' gives c + (c - u) * s; a token -inf in any input stays -inf.
cond, uncond, cond2: float32 [B, V], vocabulary axis contiguous. Each row is guided and drawn in
one parallel loop. Returns int64 [B]. Releases the GIL.)doc");
  m.def("repetition_aware_sample", &ras_py, py::arg("logits"), py::arg("history"), py::arg("window"),
        py::arg("threshold"), py::arg("top_k"), py::arg("top_p"), py::arg("preset"), py::arg("uniforms"),
        py::arg("num_threads") = 0, py::arg("uncond") = py::none(), py::arg("cond2") = py::none(),
        py::arg("scale") = 1.0, py::arg("scale2") = 0.0, py::arg("center") = "uncond",
        py::arg("temperature") = 1.0,
        R"doc(VALL-E 2 repetition-aware sampling of float32 logits [B, V] with history int64 [B, L]
(-1 padding), as speechdecode.decoding.ras defines it; top_k <= 0 means none; uniforms
float32 [B, 2]. With uncond (and cond2), the logits are cond, guided as guided_sample guides
them and divided by temperature, row by row in the same loop. Returns int64 [B]. Releases the GIL.)doc");
  m.def("dia_scores", &dia_scores_py, py::arg("logits"), py::arg("out"), py::arg("ending"),
        py::arg("countdown"), py::arg("guided"), py::arg("scale"), py::arg("top_k"), py::arg("eos"),
        py::arg("end_all"), py::arg("num_threads") = 0,
        R"doc(One step of Dia's guidance, end-of-speech filter and forced ends
(csrc/decoding/dia_scores.h) over float32 logits [N, V] (guided: [2N, V], the conditional rows
first), C-contiguous; row r is channel r % C of sequence r // C. top_k 0 means none (it applies
only when guided). Writes the scores into out (float32 [N, V]) and updates ending (bool [B]) and
countdown (int64 [B, C]) in place; end_all: every sequence is ending from this step on. Releases
the GIL.)doc");
}

}  // namespace speechdecode
