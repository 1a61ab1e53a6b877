// Bindings for csrc/lm/ngram_counter: check arguments, release the GIL, count, convert.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings/bindings.h"
#include "lm/ngram_counter.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

// Thrown out of the progress hook when Python raised (the callback, or a signal handler such
// as Ctrl-C's KeyboardInterrupt). The Python error stays set on this thread; the binding
// re-raises it once counting has unwound (releasing its temporary files) and the GIL is back.
struct PythonErrorPending {};

// A numpy array that owns the vector's buffer (no copy).
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  if (values.empty()) return py::array_t<T>(shape);
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), owner);
}

CountOptions make_options(int order, const std::string& units, const std::string& word_boundary,
                          std::optional<std::vector<std::string>> limit_vocab, uint64_t memory_bytes,
                          const std::string& tmp_dir, const std::string& encoding_errors) {
  CountOptions options;
  options.order = order;
  if (units == "word") {
    options.units = CountUnits::kWord;
  } else if (units == "char") {
    options.units = CountUnits::kChar;
  } else {
    throw std::invalid_argument("units: expected 'word' or 'char', got '" + units + "'");
  }
  if (encoding_errors == "strict") {
    options.encoding_errors = EncodingErrors::kStrict;
  } else if (encoding_errors == "replace") {
    options.encoding_errors = EncodingErrors::kReplace;
  } else {
    throw std::invalid_argument("encoding_errors: expected 'strict' or 'replace', got '" + encoding_errors +
                                "'");
  }
  options.word_boundary = word_boundary;
  options.has_limit_vocab = limit_vocab.has_value();
  if (limit_vocab) options.limit_vocab = std::move(*limit_vocab);
  options.memory_bytes = memory_bytes;
  options.tmp_dir = tmp_dir;
  return options;
}

py::tuple count_files_py(const std::vector<std::string>& paths, int order, const std::string& units,
                         const std::string& word_boundary,
                         std::optional<std::vector<std::string>> limit_vocab, uint64_t memory_bytes,
                         const std::string& tmp_dir, const std::string& encoding_errors,
                         const std::optional<py::function>& progress, std::vector<int> output_fds) {
  CountOptions options = make_options(order, units, word_boundary, std::move(limit_vocab), memory_bytes,
                                      tmp_dir, encoding_errors);
  options.output_fds = std::move(output_fds);
  // Installed even without a callback: it is where pending signals (Ctrl-C) are noticed.
  options.progress = [&progress](uint64_t bytes_read) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw PythonErrorPending{};
    if (!progress) return;
    try {
      (*progress)(bytes_read);
    } catch (py::error_already_set& e) {
      e.restore();
      throw PythonErrorPending{};
    }
  };
  const NgramCounter counter(std::move(options));
  CountResult result;
  try {
    py::gil_scoped_release release;
    result = counter.count(paths);
  } catch (const PythonErrorPending&) {
    throw py::error_already_set();
  }

  py::list words;
  for (const std::string& w : result.words) words.append(py::str(w));
  py::list ngrams, counts;
  for (int n = 1; n <= order; ++n) {
    const auto rows = static_cast<py::ssize_t>(result.counts[n - 1].size());
    ngrams.append(to_numpy(std::move(result.ngrams[n - 1]), {rows, static_cast<py::ssize_t>(n)}));
    counts.append(to_numpy(std::move(result.counts[n - 1]), {rows}));
  }
  const CountStats& s = result.stats;
  py::dict stats;
  stats["lines"] = s.lines;
  stats["tokens"] = s.tokens;
  stats["input_bytes"] = s.input_bytes;
  stats["runs"] = s.runs;
  stats["merge_passes"] = s.merge_passes;
  stats["table_bytes"] = s.table_bytes;
  stats["rows"] = result.rows;
  return py::make_tuple(words, ngrams, counts, stats);
}

}  // namespace

void bind_lm_count(py::module_& m) {
  m.attr("COUNT_MAX_ORDER") = NgramCounter::kMaxOrder;
  m.def("count_min_memory", &NgramCounter::min_memory, py::arg("order"),
        "The smallest memory_bytes count_files accepts for this order.");
  m.def("count_files", &count_files_py, py::arg("paths"), py::arg("order"), py::arg("units") = "word",
        py::arg("word_boundary") = "|", py::arg("limit_vocab") = py::none(),
        py::arg("memory_bytes") = uint64_t{1} << 30, py::arg("tmp_dir") = "",
        py::arg("encoding_errors") = "strict", py::arg("progress") = py::none(),
        py::arg("output_fds") = std::vector<int>{},
        R"doc(Counts the n-grams of orders 1..order in text files (plain or gzip), one sentence per line.
Returns (words, ngrams, counts, stats): words by id, per order an int32 [M_n, n] array of sorted id
rows and an int64 [M_n] array of counts, and a dict of statistics (lines, tokens, input_bytes, runs,
merge_passes, table_bytes, rows: M_n per order). With output_fds (2 * order open file descriptors:
per order, its n-grams' int32 ids then its int64 counts) the rows and counts are written there
instead and the arrays are empty. progress(bytes_read) is called with the GIL about every 4 MiB.
Releases the GIL while counting.)doc");
}

}  // namespace speechdecode
