// Bindings for csrc/lm: check arguments, release the GIL, call, convert.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/errors.h"
#include "lm/arpa_reader.h"
#include "lm/kenlm_binary.h"
#include "lm/ngram_model.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

WordId checked_word(const NgramModel& m, int64_t word, const char* name) {
  if (word < 0 || word >= static_cast<int64_t>(m.vocab_size())) {
    throw TensorError(name, "a word id in [0, " + std::to_string(m.vocab_size()) + ")", std::to_string(word));
  }
  return static_cast<WordId>(word);
}

py::list vocab(const NgramModel& m) {
  py::list words(m.vocab_size());
  for (size_t id = 0; id < m.vocab_size(); ++id) {
    const std::string_view w = m.word(static_cast<WordId>(id));
    words[id] = py::str(w.data(), w.size());
  }
  return words;
}

py::list full_scores(const NgramModel& m, std::string_view sentence, bool bos, bool eos) {
  const std::vector<WordId> ids = m.word_ids(sentence);
  const std::vector<NgramModel::FullScore> scores = m.full_scores(ids.data(), ids.size(), bos, eos);
  py::list out(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    out[i] = py::make_tuple(scores[i].log10_prob, static_cast<int>(scores[i].ngram_length), scores[i].oov);
  }
  return out;
}

float score(const NgramModel& m, std::string_view sentence, bool bos, bool eos) {
  const std::vector<WordId> ids = m.word_ids(sentence);
  return m.score_sentence(ids.data(), ids.size(), bos, eos);
}

py::array_t<double> score_batch_text(const NgramModel& m, const py::sequence& sentences, bool bos, bool eos,
                                     int num_threads) {
  // The tuple keeps every str (and so its UTF-8 buffer) alive while the GIL is released.
  const py::tuple items(sentences);
  std::vector<std::string_view> views(items.size());
  for (size_t b = 0; b < items.size(); ++b) {
    PyObject* item = items[b].ptr();
    if (!PyUnicode_Check(item)) {
      throw TensorError("sentences", "a sequence of str (or of word-id arrays)",
                        std::string(Py_TYPE(item)->tp_name) + " at [" + std::to_string(b) + "]");
    }
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(item, &size);
    if (data == nullptr) throw py::error_already_set();
    views[b] = std::string_view(data, static_cast<size_t>(size));
  }
  py::array_t<double> out(static_cast<py::ssize_t>(views.size()));
  double* result = out.mutable_data();
  {
    py::gil_scoped_release release;
    m.score_batch(views, bos, eos, num_threads, result);
  }
  return out;
}

py::array_t<double> score_batch_ids(const NgramModel& m, const py::array& ids, const py::array& offsets,
                                    bool bos, bool eos, int num_threads) {
  checked<int32_t>(ids, "ids", {-1});
  checked<int64_t>(offsets, "offsets", {-1});
  if (offsets.shape(0) < 1) throw TensorError("offsets", "shape [B + 1]", shape_of(offsets));
  const int64_t count = offsets.shape(0) - 1;
  const auto* off = static_cast<const int64_t*>(offsets.data());
  if (off[0] != 0 || off[count] != ids.shape(0)) {
    throw TensorError("offsets",
                      "offsets[0] == 0 and offsets[-1] == len(ids) == " + std::to_string(ids.shape(0)),
                      std::to_string(off[0]) + " and " + std::to_string(off[count]));
  }
  py::array_t<double> out(static_cast<py::ssize_t>(count));
  double* result = out.mutable_data();
  const auto* words = static_cast<const WordId*>(ids.data());
  {
    py::gil_scoped_release release;
    m.score_batch(words, off, count, bos, eos, num_threads, result);
  }
  return out;
}

// The decoder's inner loop: tuples are read and built with the C API directly.
py::tuple score_word(const NgramModel& m, const py::handle& state, int64_t word) {
  const int columns = m.order() - 1;
  const py::tuple items = py::reinterpret_borrow<py::object>(state).cast<py::tuple>();
  const Py_ssize_t length = PyTuple_GET_SIZE(items.ptr());
  if (length > columns) {
    throw TensorError("state", "at most " + std::to_string(columns) + " word ids (order - 1)",
                      std::to_string(length));
  }
  WordId context[kMaxOrder];
  for (Py_ssize_t i = 0; i < length; ++i) {
    const long long id = PyLong_AsLongLong(PyTuple_GET_ITEM(items.ptr(), i));
    if (id == -1 && PyErr_Occurred()) throw py::error_already_set();
    context[i] = checked_word(m, id, "state");
  }
  WordId next[kMaxOrder];
  int next_length = 0;
  const auto r = m.score_context(context, static_cast<int>(length), checked_word(m, word, "word_id"), next,
                                 &next_length);
  py::tuple next_state(next_length);
  for (int i = 0; i < next_length; ++i)
    PyTuple_SET_ITEM(next_state.ptr(), i, PyLong_FromUnsignedLong(next[i]));
  return py::make_tuple(r.log10_prob, std::move(next_state));
}

py::tuple score_words(const NgramModel& m, const py::array& states, const py::array& words, int num_threads) {
  checked<int32_t>(words, "word_ids", {-1});
  const py::ssize_t count = words.shape(0);
  const py::ssize_t columns = m.order() - 1;
  checked<int32_t>(states, "states", {count, columns});
  py::array_t<float> probs(count);
  py::array_t<int32_t> next({count, columns});
  float* prob_data = probs.mutable_data();
  int32_t* next_data = next.mutable_data();
  const auto* state_data = static_cast<const int32_t*>(states.data());
  const auto* word_data = static_cast<const int32_t*>(words.data());
  {
    py::gil_scoped_release release;
    m.score_words(state_data, word_data, count, num_threads, prob_data, next_data);
  }
  return py::make_tuple(probs, next);
}

// Paths cross as bytes (os.fsencode) and go back as os.fsdecode would decode them.
py::object fs_path(const std::string& path) {
  PyObject* decoded = PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size()));
  if (decoded == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(decoded);
}

void translate_errors(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const ArpaFormatError& e) {
    // speechdecode.errors.ArpaFormatError(path, line, message); line None: the whole file.
    py::object cls = py::module_::import("speechdecode.errors").attr("ArpaFormatError");
    py::object line = e.line() ? py::object(py::int_(e.line())) : py::object(py::none());
    // The message quotes file content, which may not be UTF-8: bad bytes show as \xNN.
    PyObject* message = PyUnicode_DecodeUTF8(e.message().data(), static_cast<Py_ssize_t>(e.message().size()),
                                             "backslashreplace");
    if (message == nullptr) throw py::error_already_set();
    py::object err = cls(fs_path(e.path()), line, py::reinterpret_steal<py::object>(message));
    PyErr_SetObject(cls.ptr(), err.ptr());
  } catch (const FileReadError& e) {
    // OSError(errno, text, path) becomes FileNotFoundError, IsADirectoryError, ... by errno.
    const char* reason = e.error_number() ? std::strerror(e.error_number()) : "cannot read the file";
    py::object err =
        py::reinterpret_borrow<py::object>(PyExc_OSError)(e.error_number(), reason, fs_path(e.path()));
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(err.ptr())), err.ptr());
  }
}

}  // namespace

// csrc/bindings/lm_kenlm.cc
void bind_lm_kenlm(py::module_& m);

void bind_lm(py::module_& m) {
  py::register_exception_translator(&translate_errors);
  bind_lm_kenlm(m);

  py::class_<NgramModel>(m, "NgramModel",
                         "Back-off n-gram LM (KenLM's probing structure). Use speechdecode.lm.NgramModel.")
      .def_static("from_arpa", &NgramModel::from_arpa, py::arg("path"),
                  py::call_guard<py::gil_scoped_release>(),
                  "Loads an ARPA file (plain or gzip). Raises ArpaFormatError or OSError. Releases the GIL.")
      .def_static("load", &NgramModel::load, py::arg("path"), py::call_guard<py::gil_scoped_release>(),
                  "Loads an ARPA file (plain or gzip) or maps a KenLM binary, by content. Releases the GIL.")
      .def_property_readonly("kenlm_type",
                             [](const NgramModel& m) -> py::object {
                               if (m.kenlm_binary() == nullptr) return py::none();
                               return py::int_(m.kenlm_binary()->layout().type);
                             })
      .def(
          "kenlm_id",
          [](const NgramModel& m, int64_t id) {
            const WordId w = checked_word(m, id, "word_id");
            return m.kenlm_binary() == nullptr ? w : m.kenlm_binary()->kenlm_id(w);
          },
          py::arg("word_id"), "KenLM's own id of a word id (the same id for a model read from ARPA).")
      .def_property_readonly("order", &NgramModel::order)
      .def_property_readonly("vocab_size", &NgramModel::vocab_size)
      .def_property_readonly("counts", &NgramModel::counts)
      .def_property_readonly("memory_bytes", &NgramModel::memory_bytes)
      .def("vocab", &vocab, "All words, by id.")
      .def(
          "word_id", [](const NgramModel& m, std::string_view w) { return m.word_id(w); }, py::arg("word"))
      .def(
          "contains", [](const NgramModel& m, std::string_view w) { return m.contains(w); }, py::arg("word"))
      .def("score", &score, py::arg("sentence"), py::arg("bos"), py::arg("eos"))
      .def("full_scores", &full_scores, py::arg("sentence"), py::arg("bos"), py::arg("eos"))
      .def("score_batch_text", &score_batch_text, py::arg("sentences"), py::arg("bos"), py::arg("eos"),
           py::arg("num_threads") = 0)
      .def("score_batch_ids", &score_batch_ids, py::arg("ids"), py::arg("offsets"), py::arg("bos"),
           py::arg("eos"), py::arg("num_threads") = 0)
      .def("score_word", &score_word, py::arg("state"), py::arg("word_id"))
      .def("score_words", &score_words, py::arg("states"), py::arg("word_ids"), py::arg("num_threads") = 0);
}

}  // namespace speechdecode
