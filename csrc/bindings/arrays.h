// Array checks every bindings file shares: one wording per mistake, naming the argument, what
// it should be and what was given (see common/errors.h).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/errors.h"

namespace speechdecode {

// "float32", "int64", ...
inline std::string dtype_name(const pybind11::array& a) {
  return pybind11::str(a.dtype()).cast<std::string>();
}

// "[2, 3, 4]"
inline std::string shape_of(const pybind11::array& a) {
  std::string s = "[";
  for (pybind11::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + "]";
}

// "float32 array of shape [2, 3, 4]"
inline std::string describe(const pybind11::array& a) {
  return dtype_name(a) + " array of shape " + shape_of(a);
}

// The layout the native loops read scores in (a row pointer plus strides counted in items): a
// contiguous last axis, every stride a whole number of items. Strides of axes of length 1, and
// of empty arrays, are never used and not checked.
inline void check_rows(const pybind11::array& a, const char* name) {
  if (a.size() == 0) return;
  const pybind11::ssize_t item = a.itemsize(), last = a.ndim() - 1;
  if (last >= 0 && a.shape(last) > 1 && a.strides(last) != item) {
    throw TensorError(name, "a contiguous last (vocabulary) axis",
                      "stride " + std::to_string(a.strides(last)) + " bytes");
  }
  for (pybind11::ssize_t d = 0; d < last; ++d) {
    if (a.shape(d) > 1 && a.strides(d) % item != 0) {
      throw TensorError(name, "strides that are multiples of the item size",
                        "stride " + std::to_string(a.strides(d)) + " bytes on axis " + std::to_string(d));
    }
  }
}

// A float32 score array of `ndim` axes read by check_rows' layout. size >= 0: the last axis must
// hold that many elements. `shape` spells the expected shape in errors, e.g.
// "[B, T, 6] (V = the number of tokens)".
inline void check_float32(const pybind11::array& a, const char* name, pybind11::ssize_t ndim, int64_t size,
                          const std::string& shape) {
  if (a.ndim() != ndim || (size >= 0 && a.shape(ndim - 1) != size)) {
    throw TensorError(name, "shape " + shape, shape_of(a));
  }
  if (a.dtype().kind() != 'f' || a.itemsize() != 4) throw TensorError(name, "dtype float32", dtype_name(a));
  check_rows(a, name);
}

// Scores over vocab tokens, [B, T, V] (ndim 3) or [T, V] (ndim 2); `vocab_means` says what V is.
inline void check_scores(const pybind11::array& a, const char* name, pybind11::ssize_t ndim, int64_t vocab,
                         const char* vocab_means) {
  const std::string v = std::to_string(vocab);
  check_float32(a, name, ndim, vocab, (ndim == 3 ? "[B, T, " : "[T, ") + v + "] (V = " + vocab_means + ")");
}

// Frame counts: a contiguous int64 array [batch] of values in [0, frames]. Returns its data.
inline const int64_t* checked_lengths(const pybind11::array& a, int64_t batch, int64_t frames) {
  if (a.ndim() != 1 || a.shape(0) != batch) {
    throw TensorError("lengths", "shape [" + std::to_string(batch) + "]", shape_of(a));
  }
  if (a.dtype().kind() != 'i' || a.itemsize() != 8 || !(a.flags() & pybind11::array::c_style)) {
    throw TensorError("lengths", "a contiguous int64 array", dtype_name(a));
  }
  const auto* data = static_cast<const int64_t*>(a.data());
  for (int64_t b = 0; b < batch; ++b) {
    if (data[b] < 0 || data[b] > frames) {
      throw TensorError("lengths", "values in [0, " + std::to_string(frames) + "]",
                        std::to_string(data[b]) + " at [" + std::to_string(b) + "]");
    }
  }
  return data;
}

// A C-contiguous numpy array of dtype T (native byte order) and the given shape (-1: any size).
template <typename T>
pybind11::array checked(const pybind11::handle& object, const std::string& name,
                        const std::vector<pybind11::ssize_t>& shape) {
  if (!pybind11::isinstance<pybind11::array>(object)) {
    throw TensorError(name, "a numpy array",
                      pybind11::str(pybind11::type::of(object).attr("__name__")).cast<std::string>());
  }
  pybind11::array a = pybind11::reinterpret_borrow<pybind11::array>(object);
  std::string expected =
      "a C-contiguous " + pybind11::str(pybind11::dtype::of<T>()).cast<std::string>() + " array of shape [";
  for (size_t d = 0; d < shape.size(); ++d) {
    expected += (d ? ", " : "") + (shape[d] < 0 ? std::string(d == 0 ? "M" : "?") : std::to_string(shape[d]));
  }
  expected += "]";
  bool ok = a.dtype().equal(pybind11::dtype::of<T>()) &&
            a.ndim() == static_cast<pybind11::ssize_t>(shape.size()) &&
            (a.flags() & pybind11::array::c_style);
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] < 0 || a.shape(d) == shape[d];
  if (!ok) throw TensorError(name, expected, describe(a));
  return a;
}

}  // namespace speechdecode
