"""The one place that knows which implementations can run here.

Every hot op has up to three implementations (README, "Backends"):

* ``reference`` -- plain torch/numpy, always available, the oracle in tests;
* ``native``    -- C++ in ``speechdecode._native`` (CPU);
* ``triton``    -- Triton kernels (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``).

:func:`select` picks one for a given device; ``SPEECHDECODE_BACKEND`` forces a choice and
is read on every call, so a test or a user can switch without re-importing.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform

from speechdecode.errors import BackendUnavailableError, InvalidArgumentError

BACKENDS = ("reference", "native", "triton")
NO_KERNEL = ("reference", "native")  # ops with no Triton kernel (file formats, counting, estimation)
ENV_VAR = "SPEECHDECODE_BACKEND"

try:
    from speechdecode import _native

    HAS_NATIVE = True
    NATIVE_IMPORT_ERROR: str | None = None
except ImportError as exc:  # the package works without its extension, on the reference paths
    _native = None
    HAS_NATIVE = False
    NATIVE_IMPORT_ERROR = str(exc)

HAS_TRITON = importlib.util.find_spec("triton") is not None


@functools.cache
def has_cuda() -> bool:
    """True when torch sees a CUDA device. Imported lazily: CPU-only tools (lm) never load torch."""
    import torch

    return torch.cuda.is_available()


def __getattr__(name: str):
    if name == "HAS_CUDA":
        return has_cuda()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def triton_interpret() -> bool:
    """True when Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def forced() -> str | None:
    """The backend named by ``SPEECHDECODE_BACKEND``, or None when unset."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if not value:
        return None
    if value not in BACKENDS:
        raise InvalidArgumentError(ENV_VAR, f"one of {', '.join(BACKENDS)}", repr(value))
    return value


def available(device: str = "cpu") -> list[str]:
    """Backends that can run an op whose inputs live on ``device`` ("cpu" or "cuda")."""
    names = ["reference"]
    if device == "cpu" and HAS_NATIVE:
        names.append("native")
    if HAS_TRITON and (device == "cuda" or (device == "cpu" and triton_interpret())):
        names.append("triton")
    return names


def _why_unavailable(name: str, device: str) -> str:
    if name == "native":
        if device != "cpu":
            return f"the native backend runs on CPU inputs, these are on {device}"
        return f"speechdecode._native did not import ({NATIVE_IMPORT_ERROR}); reinstall with `make install`"
    if not HAS_TRITON:
        return "triton is not installed; `pip install triton`"
    return "Triton needs CUDA inputs, or TRITON_INTERPRET=1 set before import to run on CPU"


def select(device: str = "cpu", backend: str | None = None, *, torch_native: bool = False, implemented=BACKENDS) -> str:
    """The backend to use for inputs on ``device``: the one place that reads ``SPEECHDECODE_BACKEND``.

    ``backend`` (an explicit argument) wins over ``SPEECHDECODE_BACKEND``, which wins over
    the default: triton for CUDA inputs, native for CPU inputs, reference otherwise.
    ``torch_native``: the op's native path is batched torch, not the extension, so it runs on
    any device without ``speechdecode._native`` (and is the CUDA default without Triton).
    ``implemented``: the backends the op has; an explicit other one is an error, while one the
    environment forces (e.g. triton for an op without a kernel) gives the op's default.
    """
    if backend is not None and backend not in implemented:
        raise InvalidArgumentError("backend", f"one of {', '.join(implemented)}", repr(backend))
    choice = backend or forced()
    if choice not in implemented:
        choice = None
    names = [n for n in available(device) if n in implemented]
    if torch_native and "native" not in names and "native" in implemented:
        names.append("native")
    if choice is not None:
        if choice not in names:
            raise BackendUnavailableError(f"backend {choice!r} is unavailable: {_why_unavailable(choice, device)}")
        return choice
    if device == "cuda" and "triton" in names:
        return "triton"
    return "native" if "native" in names else "reference"


def implementation(
    package: str, device: str, backend: str | None = None, *, torch_native: bool = False, implemented=BACKENDS
):
    """The module ``<package>.<reference|native|triton>`` that :func:`select` picks for an op."""
    name = select(device, backend, torch_native=torch_native, implemented=implemented)
    return importlib.import_module(f"{package}.{name}")


def native():
    """The native module, or a clear error if it was not built."""
    if _native is None:
        raise BackendUnavailableError(_why_unavailable("native", "cpu"))
    return _native


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def info() -> dict:
    """Availability and versions, as ``speechdecode info --json`` prints them."""
    import numpy
    import torch

    from speechdecode import __version__

    return {
        "speechdecode": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "native": {
            "available": HAS_NATIVE,
            "error": NATIVE_IMPORT_ERROR,
            "compiler": _native.compiler_info() if HAS_NATIVE else None,
        },
        "triton": {"available": HAS_TRITON, "version": _version("triton"), "interpret": triton_interpret()},
        "cuda": {
            "available": has_cuda(),
            "version": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if has_cuda() else None,
        },
        "forced_backend": os.environ.get(ENV_VAR) or None,
        "versions": {
            "numpy": numpy.__version__,
            "torch": torch.__version__,
            "pynini": _version("pynini"),
            "kenlm": _version("kenlm"),
            "numba": _version("numba"),
            "tqdm": _version("tqdm"),
        },
    }
