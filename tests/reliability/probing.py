"""The reliability suite's shared pieces: the probe worker, hypothesis settings, outcome checks.

Every fuzzed file is loaded in a worker process (``_probe_worker.py``): a crash (a fatal signal)
or a hang (no answer within the probe timeout) fails that probe with the signal, the worker's
stderr (faulthandler's stack) and the input, and a fresh worker serves the next probe. Under
``make test-sanitize`` the worker inherits the environment and loads the sanitized extension.
"""

from __future__ import annotations

import collections
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("_probe_worker.py")
DATA = ROOT / "tests" / "data"

# Fixed seed (derandomize), no example database, no per-example deadline (the suite's time is
# bounded by max_examples; a hang is the worker's timeout). Tests set max_examples.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

# SPEECHDECODE_FUZZ_SCALE multiplies every test's example count (make test-sanitize's quick subset
# in make test runs a fraction; a long local hunt runs more). The seed stays fixed either way.
FUZZ_SCALE = float(os.environ.get("SPEECHDECODE_FUZZ_SCALE", "1"))


def examples(count: int) -> int:
    """``count`` hypothesis examples, scaled by SPEECHDECODE_FUZZ_SCALE (at least 5)."""
    return max(5, round(count * FUZZ_SCALE))


# Seconds one probe may take (tiny files: milliseconds normally, well under a second under ASan).
PROBE_TIMEOUT = float(os.environ.get("SPEECHDECODE_PROBE_TIMEOUT", "30"))

# Per area: probes run, rejected with a named error, accepted (the suite's figures; printed at the end).
TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


class ProbeFailure(AssertionError):
    """The worker died (a fatal signal) or did not answer in time."""


class Prober:
    """Runs probes of ``_probe_worker.PROBES`` in a worker process; restarts it after a failure."""

    def __init__(self, worker: Path = WORKER):
        self._worker = worker
        self._proc: subprocess.Popen | None = None
        self._stderr = None

    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, str(self._worker)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
        )

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()
            self._stderr.close()
            self._proc = None

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode("utf-8", "replace")

    def _read(self, size: int, deadline: float, selector) -> bytes | None:
        data = b""
        fd = self._proc.stdout.fileno()
        while len(data) < size:
            left = deadline - _now()
            if left <= 0 or not selector.select(left):
                return None
            chunk = os.read(fd, size - len(data))
            if not chunk:
                return b""
            data += chunk
        return data

    def __call__(self, probe: str, *args, timeout: float = PROBE_TIMEOUT):
        """The probe's result: ``("ok", summary)`` or ``("error", type, class names, message)``."""
        if self._proc is None:
            self._start()
        request = pickle.dumps((probe, args))
        deadline = _now() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            try:
                self._proc.stdin.write(struct.pack("<I", len(request)) + request)
                self._proc.stdin.flush()
            except BrokenPipeError:
                pass  # reported below as the worker's death
            header = self._read(4, deadline, selector)
            body = self._read(struct.unpack("<I", header)[0], deadline, selector) if header else header
        if body:
            return pickle.loads(body)
        if body is None:  # no answer in time: a hang
            self._proc.kill()
            self._proc.wait()
            what = f"hang: {probe}{args!r} did not answer within {timeout:.0f} s"
        else:
            code = self._proc.wait()
            name = signal.Signals(-code).name if code < 0 else f"exit status {code}"
            what = f"crash: {probe}{args!r} killed the worker ({name})"
        tail = self._stderr_tail()
        self._stderr.close()
        self._proc.stdout.close()
        self._proc.stdin.close()
        self._proc = None
        raise ProbeFailure(f"{what}\nworker stderr:\n{tail}")


def _now() -> float:
    return time.monotonic()


def check_outcome(area: str, outcome, path, *, must_fail: bool = False, errors=(ValueError, OSError)) -> None:
    """The checks every probe's outcome gets, and its count in the tally.

    An error must be one of ``errors`` (by class name: ``InputFileError`` is a ``ValueError``) and
    its message must name ``path``; with ``must_fail`` (an input known to be invalid) a result is
    a silent acceptance and fails the test.
    """
    TALLY[area]["probes"] += 1
    if outcome[0] == "ok":
        TALLY[area]["accepted"] += 1
        assert not must_fail, f"{area}: invalid input {path} was accepted: {str(outcome[1])[:300]}"
        return
    _, name, classes, message = outcome
    TALLY[area]["rejected"] += 1
    assert any(e.__name__ in classes for e in errors), f"{area}: {path} raised {name}: {message}"
    assert os.fspath(path) in message, f"{area}: the {name} message does not name the file {path}: {message}"
