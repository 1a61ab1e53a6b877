"""bench/gpu.sh's suite (bench/bench_gpu.py) on CPU under Triton's interpreter, quick shapes.

The GPU run itself needs CUDA; this checks its plumbing here: every case is checked against
its reference before timing, every case has its anchor, memory-bound rows carry a bandwidth
fraction, and the JSON and Markdown files are written.
"""

import json

import pytest

from speechdecode import _backend
from speechdecode.bench import bench_gpu
from speechdecode.bench.harness import Suite
from speechdecode.errors import BackendUnavailableError


def _devices() -> list[str]:
    """cpu under Triton's interpreter (CI, where TRITON_INTERPRET=1), cuda with native kernels
    (make test-gpu, on a machine with a GPU); a device this machine lacks is not a case here."""
    cpu = ["cpu"] if "triton" in _backend.available("cpu") else []
    return cpu + (["cuda"] if _backend.HAS_CUDA and "triton" in _backend.available("cuda") else [])


@pytest.mark.parametrize("device", _devices())
def test_quick_suite_checks_every_path_and_writes_one_table(tmp_path, device):
    """Every case compares the Triton result with its reference before timing (on CUDA: the
    kernels compiled for the GPU against the CPU reference)."""
    suite = Suite("gpu", tmp_path, quick=True, warmup=0, repeats=1, min_seconds=0)
    bench_gpu.run(suite, quick=True, device=device)
    doc = suite.finish()
    cases = {r["case"] for r in doc["rows"]}
    for prefix in ("sample top_k", "sample top_p", "ras paper", "ctc_greedy", "delay_pattern build",
                   "duration_mask", "beam_search_step"):  # fmt: skip
        assert any(c.startswith(prefix) for c in cases), prefix
    for case in cases:
        assert sum(r["anchor"] for r in doc["rows"] if r["case"] == case) == 1, case
    fractions = [r["params"]["bandwidth_fraction"] for r in doc["rows"] if "bandwidth_fraction" in r["params"]]
    assert len(fractions) == 3 and all(f > 0 for f in fractions)
    assert json.loads((tmp_path / "gpu.json").read_text())["rows"] == doc["rows"]
    assert "delay_pattern.build (triton)" in (tmp_path / "gpu.md").read_text()


if not _backend.HAS_CUDA:  # on a GPU machine make test-gpu runs the suite itself

    def test_cuda_run_without_cuda_says_what_is_missing():
        with pytest.raises(BackendUnavailableError, match="CUDA GPU"):
            bench_gpu.run(Suite("gpu", "/nonexistent-unused", quick=True), quick=True, device="cuda")
