"""Builds speechdecode._native (pybind11, C++17, -O3, no libtorch) from csrc/."""

from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("SPEECHDECODE_BUILD_JOBS", default=0).install()

native = Pybind11Extension(
    "speechdecode._native",
    sorted(glob("csrc/**/*.cc", recursive=True)),
    # setuptools does not track #includes: rebuild every source when any header changes, or an
    # object compiled against an old struct layout is linked in (heap corruption, not an error).
    depends=sorted(glob("csrc/**/*.h", recursive=True)),
    include_dirs=["csrc"],
    cxx_std=17,
    # -fopenmp-simd honours `#pragma omp simd` reductions without linking an OpenMP runtime.
    extra_compile_args=["-O3", "-fopenmp-simd", "-Wall", "-Wextra"],
    libraries=["z"],  # gzip input (corpora, ARPA files)
)

setup(ext_modules=[native], cmdclass={"build_ext": build_ext})
