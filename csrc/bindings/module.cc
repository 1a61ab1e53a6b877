// speechdecode._native: the one extension module. Each component registers its functions
// from its own bindings file; this file holds the module, error translation and build info.
#include <pybind11/pybind11.h>

#include "bindings/bindings.h"
#include "common/errors.h"

namespace py = pybind11;

namespace {

std::string compiler_info() {
  std::string info;
#if defined(__clang__)
  info = "clang " __clang_version__;
#elif defined(__GNUC__)
  info = "gcc " __VERSION__;
#else
  info = "unknown compiler";
#endif
  info += ", C++" + std::to_string(__cplusplus);
  return info;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "speechdecode's C++ core (see csrc/). Thin bindings: argument checks, GIL release, conversion.";

  // C++ TensorError -> speechdecode.errors.TensorError(argument, expected, actual): a ValueError
  // whose message names the argument, as the Python reference paths raise it.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const speechdecode::TensorError& e) {
      py::object cls = py::module_::import("speechdecode.errors").attr("TensorError");
      py::object err = cls(e.argument(), e.expected(), e.actual());
      PyErr_SetObject(cls.ptr(), err.ptr());
    } catch (const speechdecode::InputFileError& e) {
      // -> speechdecode.errors.InputFileError(path, line or None, detail): "path:line: detail".
      py::object path = py::reinterpret_steal<py::object>(
          PyUnicode_DecodeFSDefaultAndSize(e.path().data(), static_cast<Py_ssize_t>(e.path().size())));
      if (!path) throw py::error_already_set();
      py::object line = e.line() < 0 ? py::none() : py::object(py::int_(e.line()));
      py::object cls = py::module_::import("speechdecode.errors").attr("InputFileError");
      py::object err = cls(path, line, py::str(e.detail()));
      PyErr_SetObject(cls.ptr(), err.ptr());
    }
  });

  m.def("compiler_info", &compiler_info, "Compiler and C++ standard the extension was built with.");
  speechdecode::bind_decoding(m);
  speechdecode::bind_sampling(m);
  speechdecode::bind_decoding_prefix(m);
  speechdecode::bind_decoding_wfst(m);
  speechdecode::bind_lm_count(m);
  speechdecode::bind_lm(m);
  speechdecode::bind_lm_estimate(m);
  speechdecode::bind_lm_arpa(m);
  speechdecode::bind_graphs(m);
}
