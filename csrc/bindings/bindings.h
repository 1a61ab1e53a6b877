// Registration functions, one per component bindings file.
#pragma once

#include <pybind11/pybind11.h>

namespace speechdecode {

void bind_decoding(pybind11::module_& m);
void bind_sampling(pybind11::module_& m);
void bind_decoding_prefix(pybind11::module_& m);
void bind_decoding_wfst(pybind11::module_& m);
void bind_lm_count(pybind11::module_& m);
void bind_lm(pybind11::module_& m);
void bind_lm_estimate(pybind11::module_& m);
void bind_lm_arpa(pybind11::module_& m);
void bind_graphs(pybind11::module_& m);

}  // namespace speechdecode
