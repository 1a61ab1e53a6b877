// Bindings for csrc/lm/kneser_ney and csrc/lm/arpa_writer: check arguments, release the GIL,
// call, convert. Arrays cross without copies: inputs are read in place, outputs are handed to
// numpy together with the vectors that own them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/errors.h"
#include "lm/arpa_writer.h"
#include "lm/kneser_ney.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

template <typename T>
py::array_t<T> hand_over(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), owner);
}

py::list as_list(const py::object& object, const std::string& name) {
  if (!py::isinstance<py::list>(object) && !py::isinstance<py::tuple>(object)) {
    throw TensorError(name, "a list of arrays, one per order",
                      py::str(py::type::of(object).attr("__name__")).cast<std::string>());
  }
  return py::list(object);
}

// The counts as the estimator reads them, in place; `keep` holds the arrays while the GIL is
// released.
std::vector<NgramTableView> count_views(const py::object& ngrams_arg, const py::object& counts_arg,
                                        std::vector<py::array>& keep) {
  const py::list ngrams = as_list(ngrams_arg, "ngrams");
  const py::list counts = as_list(counts_arg, "counts");
  const int order = static_cast<int>(ngrams.size());
  if (order < 1) throw TensorError("ngrams", "one array per order (at least one)", "an empty list");
  if (static_cast<int>(counts.size()) != order) {
    throw TensorError("counts", std::to_string(order) + " arrays (one per order of ngrams)",
                      std::to_string(counts.size()));
  }
  std::vector<NgramTableView> views(order);
  for (int n = 1; n <= order; ++n) {
    const std::string k = "[" + std::to_string(n - 1) + "]";
    py::array rows = checked<int32_t>(ngrams[n - 1], "ngrams" + k, {-1, n});
    py::array values = checked<int64_t>(counts[n - 1], "counts" + k, {rows.shape(0)});
    views[n - 1] = {static_cast<const int32_t*>(rows.data()), static_cast<const int64_t*>(values.data()),
                    static_cast<int64_t>(rows.shape(0))};
    keep.push_back(rows);
    keep.push_back(values);
  }
  return views;
}

KneserNeyOptions mkn_options(const std::vector<uint64_t>& prune,
                             const std::array<double, 3>& discount_fallback, bool float64, int num_threads,
                             int64_t grain) {
  KneserNeyOptions options;
  options.prune = prune;
  options.fallback = discount_fallback;
  options.float64 = float64;
  options.num_threads = num_threads;
  options.grain = grain;
  return options;
}

// The per-order facts every estimate reports: count_of_counts, discounts, fallback reasons.
void add_discount_facts(py::dict& d, const std::vector<KneserNeyOrder>& result) {
  const auto order = static_cast<py::ssize_t>(result.size());
  py::list fallback;
  std::vector<int64_t> count_of_counts;
  std::vector<double> discounts;
  for (const KneserNeyOrder& o : result) {
    fallback.append(o.fallback_reason.empty() ? py::object(py::none())
                                              : py::object(py::str(o.fallback_reason)));
    count_of_counts.insert(count_of_counts.end(), o.count_of_counts.begin(), o.count_of_counts.end());
    discounts.insert(discounts.end(), o.discounts.begin(), o.discounts.end());
  }
  d["count_of_counts"] = hand_over(std::move(count_of_counts), {order, 4});
  d["discounts"] = hand_over(std::move(discounts), {order, 3});
  d["fallback"] = fallback;
}

py::dict estimate_mkn_py(const py::object& ngrams_arg, const py::object& counts_arg, int64_t vocab_size,
                         const std::vector<uint64_t>& prune, const std::array<double, 3>& discount_fallback,
                         bool float64, int num_threads, int64_t grain) {
  std::vector<py::array> keep;
  const std::vector<NgramTableView> views = count_views(ngrams_arg, counts_arg, keep);
  const KneserNeyOptions options = mkn_options(prune, discount_fallback, float64, num_threads, grain);
  std::vector<KneserNeyOrder> result;
  {
    py::gil_scoped_release release;
    result = estimate_mkn(views, vocab_size, options);
  }
  const int order = static_cast<int>(views.size());
  py::list out_ngrams, out_probs, out_backoffs;
  for (int n = 1; n <= order; ++n) {
    KneserNeyOrder& o = result[n - 1];
    const auto kept = static_cast<py::ssize_t>(o.log10_probs.size());
    out_ngrams.append(hand_over(std::move(o.rows), {kept, n}));
    out_probs.append(hand_over(std::move(o.log10_probs), {kept}));
    out_backoffs.append(hand_over(std::move(o.backoffs), {n < order ? kept : 0}));
  }
  py::dict d;
  d["ngrams"] = out_ngrams;
  d["log10_probs"] = out_probs;
  d["backoffs"] = out_backoffs;
  add_discount_facts(d, result);
  return d;
}

// Writes each order to the ARPA file as soon as the estimator finishes it.
class ArpaSink : public KneserNeySink {
 public:
  ArpaSink(int fd, const std::string& name, bool gzip, const std::vector<std::string>& words, int num_threads)
      : fd_(fd), name_(name), gzip_(gzip), words_(words), num_threads_(num_threads) {}

  void begin(const std::vector<int64_t>& kept) override {
    kept_ = kept;
    writer_.reset(new ArpaStreamWriter(fd_, name_, gzip_, words_, kept, num_threads_));
  }

  void order(int n, const KneserNeyOrder& o) override {
    const bool last = n == static_cast<int>(kept_.size());
    writer_->write_order(n, {o.rows.data(), o.log10_probs.data(), last ? nullptr : o.backoffs.data(),
                             static_cast<int64_t>(o.log10_probs.size())});
    if (last) writer_->finish();
  }

  const std::vector<int64_t>& kept() const { return kept_; }

 private:
  int fd_;
  std::string name_;
  bool gzip_;
  const std::vector<std::string>& words_;
  int num_threads_;
  std::vector<int64_t> kept_;
  std::unique_ptr<ArpaStreamWriter> writer_;
};

[[noreturn]] void raise_os_error(const FileWriteError& e) {
  py::object path = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeFSDefaultAndSize(e.path().data(), static_cast<Py_ssize_t>(e.path().size())));
  if (!path) throw py::error_already_set();
  py::object error = py::reinterpret_borrow<py::object>(PyExc_OSError)(e.error_number(), e.reason(), path);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
  throw py::error_already_set();
}

void write_arpa_py(int fd, const py::bytes& name_bytes, bool gzip, const std::vector<std::string>& words,
                   const py::object& ngrams_arg, const py::object& probs_arg, const py::object& backoffs_arg,
                   int num_threads) {
  const std::string name = name_bytes;
  const py::list ngrams = as_list(ngrams_arg, "ngrams");
  const py::list probs = as_list(probs_arg, "log10_probs");
  const py::list backoffs = as_list(backoffs_arg, "backoffs");
  const int order = static_cast<int>(ngrams.size());
  if (order < 1) throw TensorError("ngrams", "one array per order (at least one)", "an empty list");
  if (static_cast<int>(probs.size()) != order) {
    throw TensorError("log10_probs", std::to_string(order) + " arrays", std::to_string(probs.size()));
  }
  if (static_cast<int>(backoffs.size()) != order) {
    throw TensorError("backoffs", std::to_string(order) + " arrays", std::to_string(backoffs.size()));
  }
  std::vector<py::array> keep;
  std::vector<ArpaOrderView> views(order);
  for (int n = 1; n <= order; ++n) {
    const std::string k = "[" + std::to_string(n - 1) + "]";
    py::array rows = checked<int32_t>(ngrams[n - 1], "ngrams" + k, {-1, n});
    const py::ssize_t m = rows.shape(0);
    py::array p = checked<double>(probs[n - 1], "log10_probs" + k, {m});
    py::array b = checked<double>(backoffs[n - 1], "backoffs" + k, {n < order ? m : 0});
    views[n - 1] = {static_cast<const int32_t*>(rows.data()), static_cast<const double*>(p.data()),
                    n < order ? static_cast<const double*>(b.data()) : nullptr, static_cast<int64_t>(m)};
    keep.insert(keep.end(), {rows, p, b});
  }
  try {
    py::gil_scoped_release release;
    write_arpa_file(fd, name, gzip, words, views, num_threads);
  } catch (const FileWriteError& e) {
    raise_os_error(e);
  }
}

py::dict estimate_mkn_arpa_py(int fd, const py::bytes& name_bytes, bool gzip,
                              const std::vector<std::string>& words, const py::object& ngrams_arg,
                              const py::object& counts_arg, const std::vector<uint64_t>& prune,
                              const std::array<double, 3>& discount_fallback, bool float64,
                              bool allow_fallback, int num_threads, int64_t grain) {
  std::vector<py::array> keep;
  const std::vector<NgramTableView> views = count_views(ngrams_arg, counts_arg, keep);
  KneserNeyOptions options = mkn_options(prune, discount_fallback, float64, num_threads, grain);
  options.allow_fallback = allow_fallback;
  ArpaSink sink(fd, std::string(name_bytes), gzip, words, num_threads);
  std::vector<KneserNeyOrder> result;
  try {
    py::gil_scoped_release release;
    result = estimate_mkn(views, static_cast<int64_t>(words.size()), options, &sink);
  } catch (const FileWriteError& e) {
    raise_os_error(e);
  }
  py::dict d;
  d["written"] = !sink.kept().empty();
  d["kept"] = sink.kept();
  add_discount_facts(d, result);
  return d;
}

std::vector<std::string> format_arpa_floats_py(
    const py::array_t<double, py::array::c_style | py::array::forcecast>& values) {
  std::vector<std::string> out;
  out.reserve(values.size());
  char buffer[64];
  for (py::ssize_t i = 0; i < values.size(); ++i)
    out.emplace_back(buffer, format_arpa_float(values.data()[i], buffer));
  return out;
}

}  // namespace

void bind_lm_estimate(py::module_& m) {
  m.def("estimate_mkn", &estimate_mkn_py, py::arg("ngrams"), py::arg("counts"), py::arg("vocab_size"),
        py::arg("prune"), py::arg("discount_fallback"), py::arg("float64") = false,
        py::arg("num_threads") = 0, py::arg("grain") = 0,
        R"doc(Interpolated modified Kneser-Ney as lmplz computes it, from raw counts: ngrams[n-1] int32
[M_n, n] sorted unique rows, counts[n-1] int64 [M_n]. Returns a dict: ngrams / log10_probs /
backoffs (per order, lmplz's suffix order, pruned n-grams left out), count_of_counts int64 [N, 4],
discounts float64 [N, 3], fallback (per order: None or why the fallback discounts were used).
grain: items per parallel work item (0: default; tests make it small). Releases the GIL.)doc");
  m.def("estimate_mkn_arpa", &estimate_mkn_arpa_py, py::arg("fd"), py::arg("name"), py::arg("gzip"),
        py::arg("words"), py::arg("ngrams"), py::arg("counts"), py::arg("prune"),
        py::arg("discount_fallback"), py::arg("float64") = false, py::arg("allow_fallback") = true,
        py::arg("num_threads") = 0, py::arg("grain") = 0,
        R"doc(estimate_mkn written straight to an ARPA file on fd, one order at a time (the model is
never whole in memory; vocab_size is len(words)). Returns a dict: written (False when a fallback was
needed and allow_fallback is False: nothing written), kept (n-grams per order), count_of_counts,
discounts, fallback as estimate_mkn. Raises as estimate_mkn and write_arpa. Releases the GIL.)doc");
  m.def("write_arpa", &write_arpa_py, py::arg("fd"), py::arg("name"), py::arg("gzip"), py::arg("words"),
        py::arg("ngrams"), py::arg("log10_probs"), py::arg("backoffs"), py::arg("num_threads") = 0,
        R"doc(Writes an ARPA file to the open descriptor fd (gzip members when gzip; not closed).
name: bytes (os.fsencode), the output's name in errors. Raises OSError(errno, reason, name) on
I/O failure, TensorError for bad arrays or word ids. Releases the GIL.)doc");
  m.def("format_arpa_floats", &format_arpa_floats_py, py::arg("values"),
        "The ARPA writer's text for each value: shortest float32 decimal as KenLM prints it (exponent form "
        "below 1e-6 and from 1e21).");
}

}  // namespace speechdecode
