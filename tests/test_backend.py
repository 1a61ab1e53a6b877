"""Backend selection: availability, forcing, and the info report."""

import pytest

from speechdecode import _backend
from speechdecode.errors import BackendUnavailableError, InvalidArgumentError


def test_this_build_has_the_native_extension_and_triton():
    # `make test` builds the extension and installs triton: a silent fall-back would hide a broken build.
    assert _backend.HAS_NATIVE, _backend.NATIVE_IMPORT_ERROR
    assert _backend.HAS_TRITON


def test_defaults_pick_the_fastest_path(monkeypatch):
    assert _backend.select("cpu") == "native"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _backend.available("cpu") == ["reference", "native", "triton"]
    assert _backend.select("cpu") == "native"  # the interpreter is for tests, never a default
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert _backend.available("cpu") == ["reference", "native"]
    assert _backend.available("cuda") == ["reference", "triton"]
    assert _backend.select("cuda") == "triton"


def test_forcing(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setenv(_backend.ENV_VAR, "Reference ")
    assert _backend.select("cpu") == "reference"
    assert _backend.select("cpu", backend="native") == "native"  # an explicit argument wins
    monkeypatch.setenv(_backend.ENV_VAR, "native")
    with pytest.raises(BackendUnavailableError, match="native backend runs on CPU inputs, these are on cuda"):
        _backend.select("cuda")
    monkeypatch.setenv(_backend.ENV_VAR, "triton")
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        _backend.select("cpu")
    monkeypatch.setenv(_backend.ENV_VAR, "fast")
    with pytest.raises(InvalidArgumentError, match=r"SPEECHDECODE_BACKEND: expected one of reference, native, triton"):
        _backend.select("cpu")


def test_info_is_consistent_with_the_flags():
    info = _backend.info()
    assert info["native"]["available"] == _backend.HAS_NATIVE
    assert info["triton"]["available"] == _backend.HAS_TRITON
    assert info["cuda"]["available"] == _backend.HAS_CUDA
    assert info["speechdecode"] == __import__("speechdecode").__version__


def test_torch_native_ops_run_without_the_extension(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(_backend, "HAS_NATIVE", False)
    assert _backend.select("cpu") == "reference"
    assert _backend.select("cpu", torch_native=True) == "native"
    assert _backend.select("cuda", "native", torch_native=True) == "native"
    with pytest.raises(BackendUnavailableError, match="native backend runs on CPU inputs"):
        _backend.select("cuda", "native")
    module = _backend.implementation("speechdecode.kernels.sampling", "cpu", torch_native=True)
    assert module.__name__ == "speechdecode.kernels.sampling.native"
