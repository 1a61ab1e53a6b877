// Bindings for csrc/lm/kenlm_binary.h: writing KenLM binaries and reading a trie's tables back.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lm/arpa_reader.h"
#include "lm/arpa_writer.h"
#include "lm/kenlm_binary.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

void write_kenlm_binary_py(const py::bytes& arpa_path, int fd, const py::bytes& name_bytes, int type,
                           int prob_bits, int backoff_bits, int pointer_bits) {
  if (type < kenlm::kProbing || type > kenlm::kQuantArrayTrie || type == kenlm::kRestProbing) {
    throw std::invalid_argument("type: expected 0 (probing) or 2..5 (tries), got " + std::to_string(type));
  }
  if (pointer_bits < 0 || pointer_bits > 255) {
    throw std::invalid_argument("pointer_bits: expected 0..255, got " + std::to_string(pointer_bits));
  }
  const std::string path = arpa_path;
  const std::string name = name_bytes;
  kenlm::Layout options;
  options.type = type;
  options.prob_bits = static_cast<uint8_t>(std::clamp(prob_bits, 0, 255));
  options.backoff_bits = static_cast<uint8_t>(std::clamp(backoff_bits, 0, 255));
  options.pointer_bits = static_cast<uint8_t>(pointer_bits);
  try {
    py::gil_scoped_release release;
    const ArpaContents contents = read_arpa_file(path);
    kenlm::write_binary(contents, options, fd, name);
  } catch (const FileWriteError& e) {
    py::object path_object = py::reinterpret_steal<py::object>(
        PyUnicode_DecodeFSDefaultAndSize(e.path().data(), static_cast<Py_ssize_t>(e.path().size())));
    if (!path_object) throw py::error_already_set();
    py::object error =
        py::reinterpret_borrow<py::object>(PyExc_OSError)(e.error_number(), e.reason(), path_object);
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
    throw py::error_already_set();
  }
}

py::tuple kenlm_arpa_tables_py(const py::bytes& path_bytes) {
  const std::string path = path_bytes;
  std::vector<std::string> words;
  std::vector<std::vector<int32_t>> rows;
  std::vector<std::vector<double>> probs, backoffs;
  int order = 0;
  {
    py::gil_scoped_release release;
    const auto binary = kenlm::KenlmBinary::open(path);
    order = binary->order();
    words.reserve(binary->vocab_size());
    for (WordId id = 0; id < binary->vocab_size(); ++id) words.emplace_back(binary->word(id));
    rows.resize(order);
    probs.resize(order);
    backoffs.resize(order);
    binary->for_each_ngram([&](int n, const WordId* w, float prob, float backoff) {
      for (int k = 0; k < n; ++k) rows[n - 1].push_back(static_cast<int32_t>(w[k]));
      // Zeros print as "0", as lmplz prints them (the trie keeps -0.0 as a flag).
      probs[n - 1].push_back(prob == 0.0f ? 0.0 : prob);
      if (n < order) backoffs[n - 1].push_back(backoff == 0.0f ? 0.0 : backoff);
    });
  }
  py::list ngrams, log10_probs, backoff_list;
  for (int n = 1; n <= order; ++n) {
    const py::ssize_t m = static_cast<py::ssize_t>(probs[n - 1].size());
    py::array_t<int32_t> r({m, static_cast<py::ssize_t>(n)});
    std::copy(rows[n - 1].begin(), rows[n - 1].end(), r.mutable_data());
    py::array_t<double> p(m);
    std::copy(probs[n - 1].begin(), probs[n - 1].end(), p.mutable_data());
    py::array_t<double> b(n < order ? m : 0);
    std::copy(backoffs[n - 1].begin(), backoffs[n - 1].end(), b.mutable_data());
    ngrams.append(r);
    log10_probs.append(p);
    backoff_list.append(b);
  }
  return py::make_tuple(words, ngrams, log10_probs, backoff_list);
}

}  // namespace

void bind_lm_kenlm(py::module_& m) {
  m.def("write_kenlm_binary", &write_kenlm_binary_py, py::arg("arpa_path"), py::arg("fd"), py::arg("name"),
        py::arg("type"), py::arg("prob_bits") = 0, py::arg("backoff_bits") = 0, py::arg("pointer_bits") = 0,
        R"doc(Reads an ARPA file (plain or gzip) and writes the KenLM binary of the given type (0 probing,
2 trie, 3 quantized trie, 4 trie with array-compressed pointers, 5 both) to the open descriptor fd;
name names the output in errors. Raises ArpaFormatError, OSError. Releases the GIL.)doc");
  m.def(
      "kenlm_arpa_tables", &kenlm_arpa_tables_py, py::arg("path"),
      R"doc(The n-grams of a KenLM trie binary as ArpaModel's tables: (words, ngrams per order int32 [M_n, n],
log10_probs per order float64, backoffs per order float64 ([0] for the highest)), our word ids.
Raises InputFileError for a probing file or a damaged one. Releases the GIL.)doc");
}

}  // namespace speechdecode
