"""Benchmarks of speechdecode against the tools its users already run (the anchors).

Each suite is a module ``bench_<op>.py`` with ``run(suite, quick)`` that builds its inputs and
adds rows to a :class:`~speechdecode.bench.harness.Suite`; :func:`run` times one suite and
writes ``<out_dir>/<name>.json``, ``.md`` and ``.png``:

>>> from speechdecode.bench import run  # doctest: +SKIP
>>> result = run("ctc_greedy", "bench/results", quick=True)  # doctest: +SKIP
>>> [(r["case"], r["impl"], round(r["ratio"], 2)) for r in result["rows"]]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os

from speechdecode.errors import InvalidArgumentError

__all__ = ["SUITES", "run", "run_all"]

SUITES: dict[str, str] = {
    "compat": "speechdecode.bench.bench_compat",
    "ctc": "speechdecode.bench.bench_ctc",
    "beam": "speechdecode.bench.bench_beam",
    "ctc_greedy": "speechdecode.bench.bench_ctc_greedy",
    "ctc_gpu": "speechdecode.bench.bench_ctc_gpu",
    "e2e": "speechdecode.bench.bench_e2e",
    "graphs": "speechdecode.bench.bench_graphs",
    "lm": "speechdecode.bench.bench_lm",
    "masks": "speechdecode.bench.bench_masks",
    "patterns": "speechdecode.bench.bench_patterns",
    "sampling": "speechdecode.bench.bench_sampling",
    "scale": "speechdecode.bench.bench_scale",
    "tts_hf": "speechdecode.bench.bench_tts_hf",
    "units": "speechdecode.bench.bench_units",
    "wfst": "speechdecode.bench.bench_wfst",
}


def run(name: str, out_dir: str | os.PathLike = "bench/results", quick: bool = False) -> dict:
    """Run suite ``name`` and write its results under ``out_dir``; returns the JSON document.

    ``quick`` uses small inputs and few repeats (a smoke test, not a measurement).

    Raises:
        InvalidArgumentError: ``name`` is not in :data:`SUITES`.
    """
    if name not in SUITES:
        raise InvalidArgumentError("name", f"a benchmark suite, one of {', '.join(sorted(SUITES))}", repr(name))
    from speechdecode.bench.harness import Suite

    module = importlib.import_module(SUITES[name])
    with Suite(name, out_dir, quick=quick) as suite:
        module.run(suite, quick)
        return suite.finish()


def run_all(out_dir: str | os.PathLike = "bench/results", quick: bool = False) -> dict[str, dict]:
    """Run every suite in :data:`SUITES`; returns {name: JSON document}.

    A suite that needs hardware this machine lacks (it raises
    :class:`~speechdecode.errors.BackendUnavailableError`, e.g. ``ctc_gpu`` without CUDA) is
    skipped: its entry is ``{"skipped": reason}`` and nothing is written for it.
    """
    from speechdecode.errors import BackendUnavailableError

    results = {}
    for name in sorted(SUITES):
        try:
            results[name] = run(name, out_dir, quick)
        except BackendUnavailableError as exc:
            results[name] = {"skipped": str(exc)}
    return results
