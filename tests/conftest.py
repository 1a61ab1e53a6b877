"""Shared test set-up.

Triton kernels run in Triton's CPU interpreter when no GPU is present; the variable must be
set before any kernel module is imported, which is why it is set here, at collection start.

``make test`` sets ``SPEECHDECODE_NO_SKIPS=1``: it installs every dependency first, so a test that
skips there (``pytest.importorskip`` of an anchor that failed to import, say) would hide a broken
install or a lost comparison; it fails instead, with the skip's reason.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

from speechdecode import _backend


def backend_devices() -> list[tuple[str, str]]:
    """(backend, device) pairs that can run here: every CPU backend, plus Triton on CUDA."""
    pairs = [(name, "cpu") for name in _backend.available("cpu")]
    if _backend.HAS_CUDA:
        pairs += [(name, "cuda") for name in _backend.available("cuda") if name != "reference"]
    return pairs


@pytest.fixture(params=backend_devices(), ids=lambda p: f"{p[0]}-{p[1]}")
def backend_device(request) -> tuple[str, str]:
    """Parametrizes a test over every available (backend, device) pair."""
    return request.param


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("SPEECHDECODE_NO_SKIPS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under make test, where every dependency is installed: {reason}"


@pytest.fixture(autouse=True)
def _no_forced_backend(monkeypatch):
    """Tests choose backends explicitly; a developer's SPEECHDECODE_BACKEND must not leak in."""
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
