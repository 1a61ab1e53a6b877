"""The shared benchmark harness: time callables, compare them with an anchor, write the results.

A suite times every implementation of each *case* (one input configuration) next to exactly
one *anchor* (the tool users already run) in the same process on the same inputs:

>>> suite = Suite("demo", "bench/results")  # doctest: +SKIP
>>> suite.add("sum", "numpy", lambda: x.sum(), anchor=True, bytes_processed=x.nbytes)  # doctest: +SKIP
>>> suite.add("sum", "torch", lambda: t.sum(), bytes_processed=x.nbytes)  # doctest: +SKIP
>>> result = suite.finish()  # writes demo.json, demo.md and demo.png  # doctest: +SKIP

Each row holds the median and the 20th/80th percentiles of the run times and
``ratio = anchor median / impl median``, so a ratio above 1 means faster than the anchor.
Inputs are built by the caller, outside the timed region; :func:`check_equal` verifies an
implementation's output against the anchor's before it is timed.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from speechdecode import _backend
from speechdecode._io import atomic_write, output_folder
from speechdecode._progress import progress
from speechdecode.errors import BackendUnavailableError, InvalidArgumentError, SpeechdecodeError

__all__ = ["BenchmarkMismatchError", "Suite", "Timing", "check_equal", "machine_info", "measure"]

# Defaults of a full run and of a quick (smoke-test) run.
FULL_SETTINGS = {"warmup": 2, "repeats": 10, "min_seconds": 1.0}
QUICK_SETTINGS = {"warmup": 1, "repeats": 3, "min_seconds": 0.0}
MAX_REPEATS = 1000


class BenchmarkMismatchError(SpeechdecodeError, RuntimeError):
    """An implementation's output differs from its anchor's: the benchmark refuses to time it."""


@dataclasses.dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated runs, in milliseconds, and the median CPU time of this process
    per run (all its threads; not child processes)."""

    median_ms: float
    p20_ms: float
    p80_ms: float
    runs: int
    cpu_median_ms: float


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    repeats: int = 10,
    min_seconds: float = 1.0,
    max_repeats: int = MAX_REPEATS,
    sync: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn()`` with :func:`time.perf_counter`, and its CPU time with :func:`time.process_time`.

    Runs ``fn`` ``warmup`` times untimed, then at least ``repeats`` timed runs, continuing
    until the timed runs add up to ``min_seconds`` (at most ``max_repeats`` runs).
    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before the clock starts and again
    before it stops, so asynchronous GPU work is counted in the run that launched it.

    Returns:
        :class:`Timing` with the median, 20th and 80th percentiles (linear interpolation), and
        the median CPU time: on a shared machine a single-threaded run's CPU time moves far less
        with the other processes' load than its wall time.

    Raises:
        InvalidArgumentError: warmup < 0, repeats < 1, min_seconds < 0 or max_repeats < repeats.
    """
    if warmup < 0:
        raise InvalidArgumentError("warmup", "an integer >= 0", warmup)
    if repeats < 1:
        raise InvalidArgumentError("repeats", "an integer >= 1", repeats)
    if min_seconds < 0:
        raise InvalidArgumentError("min_seconds", "a number >= 0", min_seconds)
    if max_repeats < repeats:
        raise InvalidArgumentError("max_repeats", f"an integer >= repeats ({repeats})", max_repeats)
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    times: list[float] = []
    cpu: list[float] = []
    total = 0.0
    while len(times) < repeats or (total < min_seconds and len(times) < max_repeats):
        if sync is not None:
            sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        if sync is not None:
            sync()
        elapsed = time.perf_counter() - start
        cpu.append(time.process_time() - cpu_start)
        times.append(elapsed)
        total += elapsed
    p20, median, p80 = np.percentile(np.asarray(times) * 1e3, [20, 50, 80])
    cpu_median = float(np.median(cpu)) * 1e3
    return Timing(
        median_ms=float(median), p20_ms=float(p20), p80_ms=float(p80), runs=len(times), cpu_median_ms=cpu_median
    )


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # a torch tensor, on any device
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_equal(case: str, impl: str, got: Sequence, want: Sequence, names: Sequence[str] | None = None) -> None:
    """Raise :class:`BenchmarkMismatchError` unless every array in ``got`` equals ``want`` exactly.

    ``got`` and ``want`` are sequences of numpy arrays or torch tensors (any device); shapes
    and values must match (dtypes may differ, e.g. intp vs int64). The message names the
    case, the implementation, the output and the first differing index.
    """
    names = list(names) if names is not None else [f"output {i}" for i in range(len(want))]
    if len(got) != len(want):
        raise BenchmarkMismatchError(f"{case}/{impl}: {len(got)} outputs, the anchor gives {len(want)}")
    for name, g, w in zip(names, got, want, strict=True):
        g, w = _as_numpy(g), _as_numpy(w)
        if g.shape != w.shape:
            raise BenchmarkMismatchError(f"{case}/{impl}: {name} has shape {list(g.shape)}, anchor {list(w.shape)}")
        differ = np.flatnonzero(g.ravel() != w.ravel())
        if differ.size:
            i = np.unravel_index(differ[0], g.shape)
            raise BenchmarkMismatchError(
                f"{case}/{impl}: {name} differs from the anchor at {list(map(int, i))}: {g[i]!r} != {w[i]!r} "
                f"({differ.size} of {g.size} elements differ)"
            )


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _git(args: list[str], cwd: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _git_info() -> dict:
    import speechdecode

    source = os.path.dirname(os.path.abspath(speechdecode.__file__))
    commit = _git(["rev-parse", "HEAD"], source)
    status = _git(["status", "--porcelain", "--untracked-files=no"], source) if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask on Linux, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_info() -> dict:
    """Platform, CPU model (from /proc/cpuinfo where there is one) and CPU count."""
    usable = usable_cores()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
    }


def _number(value: float) -> str:
    """Four significant figures below 1000, whole numbers with thousands separators above."""
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _throughput(row: dict) -> str:
    parts = []
    if row["gb_per_s"] is not None:
        parts.append(f"{_number(row['gb_per_s'])} GB/s")
    if row["items_per_s"] is not None:
        parts.append(f"{_number(row['items_per_s'])} {row['item_unit'] or 'items'}/s")
    return ", ".join(parts) if parts else "-"


ANCHOR_MARK = " (anchor)"


def markdown_table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table: case | impl | median ms | p20 | p80 | throughput | ratio vs anchor
    | CPU ms | CPU ratio (from this process's CPU time per run; "-" where it is zero)."""
    lines = [
        "| case | impl | median ms | p20 | p80 | GB/s or items/s | ratio vs anchor | CPU ms | CPU ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        impl = r["impl"] + (ANCHOR_MARK if r["anchor"] else "")
        cpu_ratio = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        lines.append(
            f"| {r['case']} | {impl} | {_number(r['median_ms'])} | {_number(r['p20_ms'])} | {_number(r['p80_ms'])} "
            f"| {_throughput(r)} | {r['ratio']:.2f} | {_number(r['cpu_median_ms'])} | {cpu_ratio} |"
        )
    return "\n".join(lines) + "\n"


def _require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise BackendUnavailableError("benchmark plots need matplotlib; `pip install speechdecode[bench]`")


def _plot(rows: Sequence[dict], title: str, path: str) -> None:
    # Figure + FigureCanvasAgg directly: the Agg renderer without pyplot, so the caller's
    # pyplot backend (a notebook's, say) is left alone and no GUI backend is ever tried.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogFormatter

    cases = list(dict.fromkeys(r["case"] for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    colors = {impl: f"C{i % 10}" for i, impl in enumerate(impls)}
    fig = Figure(figsize=(10, 1.5 + 0.28 * len(rows) + 0.2 * len(cases)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y, centers, labelled = 0.0, [], set()
    for case in cases:
        group = [r for r in rows if r["case"] == case]
        centers.append(y + (len(group) - 1) / 2)
        for r in group:
            ax.barh(
                y,
                r["median_ms"],
                height=0.8,
                xerr=[[r["median_ms"] - r["p20_ms"]], [r["p80_ms"] - r["median_ms"]]],
                color=colors[r["impl"]],
                hatch="//" if r["anchor"] else None,
                edgecolor="black" if r["anchor"] else None,
                label=None if r["impl"] in labelled else r["impl"],
                capsize=2,
                error_kw={"lw": 0.8},
            )
            labelled.add(r["impl"])
            y += 1
        y += 0.6  # a gap between cases
    ax.set_yticks(centers, cases)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    ax.set_xlabel("median time per call, ms (error bars: p20-p80; log scale; hatched: the case's anchor)")
    ax.set_title(title)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small")
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)


class Suite:
    """Rows of one benchmark suite, written as ``<out_dir>/<name>.{json,md,png}`` by :meth:`finish`.

    Args:
        name: the suite's name (file stem of its outputs).
        out_dir: folder for the outputs (created if missing; its parent must exist).
        quick: a smoke-test run (small inputs; fewer repeats unless given); recorded in the JSON.
        warmup, repeats, min_seconds: passed to :func:`measure` for every row; defaults
            ``FULL_SETTINGS`` or ``QUICK_SETTINGS``.

    Raises:
        BackendUnavailableError: matplotlib is not installed (checked here, before any timing).
    """

    def __init__(
        self,
        name: str,
        out_dir: str | os.PathLike = "bench/results",
        *,
        quick: bool = False,
        warmup: int | None = None,
        repeats: int | None = None,
        min_seconds: float | None = None,
    ):
        if not name or os.sep in name or (os.altsep and os.altsep in name):
            raise InvalidArgumentError("name", "a non-empty file stem without path separators", repr(name))
        _require_matplotlib()
        self.name = name
        self.out_dir = os.fspath(out_dir)
        self.quick = bool(quick)
        defaults = QUICK_SETTINGS if self.quick else FULL_SETTINGS
        given = {"warmup": warmup, "repeats": repeats, "min_seconds": min_seconds}
        self.settings = {k: defaults[k] if v is None else v for k, v in given.items()}
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self._bar = progress(desc=f"bench {name}", unit="row")

    def add(
        self,
        case: str,
        impl: str,
        fn: Callable[[], Any],
        *,
        anchor: bool = False,
        bytes_processed: int | None = None,
        items: int | None = None,
        item_unit: str | None = None,
        params: dict | None = None,
        sync: Callable[[], Any] | None = None,
        settings: dict | None = None,
    ) -> dict:
        """Time ``fn()`` as implementation ``impl`` of ``case`` and record the row.

        ``bytes_processed`` gives a GB/s column (1 GB = 1e9 bytes), ``items`` an
        ``<item_unit>/s`` column; ``params`` (JSON-serializable) describe the input and the
        implementation; ``sync`` is passed to :func:`measure`; ``settings`` override the suite's
        warmup / repeats / min_seconds for this row (for runs of many seconds). The ratio is filled in by
        :meth:`finish`. Returns the row.

        Raises:
            InvalidArgumentError: the (case, impl) pair was already added, a second anchor for
                ``case``, a negative count, or params that JSON cannot hold.
        """
        if any(r["case"] == case and r["impl"] == impl for r in self.rows):
            raise InvalidArgumentError("impl", f"a new implementation name for case {case!r}", repr(impl))
        for arg, value in (("bytes_processed", bytes_processed), ("items", items)):
            if value is not None and value < 0:
                raise InvalidArgumentError(arg, "a count >= 0 or None", value)
        if anchor and any(r["case"] == case and r["anchor"] for r in self.rows):
            first = next(r["impl"] for r in self.rows if r["case"] == case and r["anchor"])
            raise InvalidArgumentError(
                f"anchor of case {case!r}", "exactly one anchor", f"a second one after {first!r}"
            )
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError("params", "a JSON-serializable dict", f"{params!r} ({exc})") from None
        self._bar.set_postfix_str(f"{case} / {impl}", refresh=True)
        timing = measure(fn, sync=sync, **{**self.settings, **(settings or {})})
        self._bar.update(1)
        seconds = timing.median_ms / 1e3
        row = {
            "case": case,
            "impl": impl,
            "anchor": bool(anchor),
            **dataclasses.asdict(timing),
            "ratio": None,
            "cpu_ratio": None,
            "bytes_processed": bytes_processed,
            "gb_per_s": None if bytes_processed is None or seconds <= 0 else bytes_processed / seconds / 1e9,
            "items": items,
            "item_unit": item_unit if items is not None else None,
            "items_per_s": None if items is None or seconds <= 0 else items / seconds,
            "params": dict(params or {}),
        }
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        """Record a remark printed under the table (e.g. an anchor that is not installed here)."""
        self.notes.append(text)

    def _fill_ratios(self) -> None:
        cases = list(dict.fromkeys(r["case"] for r in self.rows))
        for case in cases:
            rows = [r for r in self.rows if r["case"] == case]
            anchors = [r for r in rows if r["anchor"]]
            if len(anchors) != 1:
                found = ", ".join(r["impl"] for r in anchors) or "none"
                raise InvalidArgumentError(f"anchor of case {case!r}", "exactly one row added with anchor=True", found)
            base, cpu = anchors[0]["median_ms"], anchors[0]["cpu_median_ms"]
            for r in rows:
                r["ratio"] = 1.0 if r["anchor"] else base / r["median_ms"]
                r["cpu_ratio"] = 1.0 if r["anchor"] else (cpu / r["cpu_median_ms"] if r["cpu_median_ms"] > 0 else None)

    def close(self) -> None:
        """Close the progress bar (done by :meth:`finish`; call it when abandoning a suite)."""
        self._bar.close()

    def __enter__(self) -> Suite:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def finish(self) -> dict:
        """Compute the ratios and write ``<name>.json``, ``<name>.md`` and ``<name>.png``.

        Returns:
            The JSON document: ``{"suite", "quick", "timestamp_utc", "machine", "backend",
            "git", "settings", "rows"}``; each row has case, impl, anchor, median_ms, p20_ms,
            p80_ms, runs, cpu_median_ms, ratio, cpu_ratio (the same from CPU times, meaningful for
            rows whose work runs in this process), bytes_processed, gb_per_s, items, item_unit,
            items_per_s, params.

        Raises:
            InvalidArgumentError: no rows, or a case without exactly one anchor.
        """
        self.close()
        if not self.rows:
            raise InvalidArgumentError("suite", "at least one row", "none; call add() first")
        self._fill_ratios()
        doc = {
            "suite": self.name,
            "quick": self.quick,
            "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "backend": _backend.info(),
            "git": _git_info(),
            "settings": dict(self.settings),
            "rows": self.rows,
            "notes": self.notes,
        }
        base = os.path.join(output_folder(self.out_dir), self.name)
        with atomic_write(base + ".json") as handle:
            json.dump(doc, handle, indent=2, allow_nan=False)
            handle.write("\n")
        with atomic_write(base + ".md") as handle:
            handle.write(self._markdown(doc))
        _plot(self.rows, f"{self.name}{' (quick)' if self.quick else ''}", base + ".png")
        return doc

    def _markdown(self, doc: dict) -> str:
        m, git = doc["machine"], doc["git"]
        commit = git["commit"][:12] + (" (uncommitted changes)" if git["dirty"] else "") if git["commit"] else "unknown"
        lines = [
            f"# Benchmark: {self.name}{' (quick)' if self.quick else ''}",
            "",
            f"{doc['timestamp_utc']} · {m['cpu_model'] or m['machine']} · {m['cpu_count']} CPUs · "
            f"torch {doc['backend']['versions']['torch']} · numpy {doc['backend']['versions']['numpy']} · "
            f"commit {commit}",
            "",
            "ratio = anchor median / impl median (above 1: faster than the anchor); CPU ms: median CPU time of "
            "this process per run (all threads, no child processes), and CPU ratio the same ratio of those, "
            "steadier than wall time on a shared machine for work that runs in this process. "
            f"{doc['settings']['warmup']} warm-up runs, then at least {doc['settings']['repeats']} timed runs "
            f"and {doc['settings']['min_seconds']} s per row.",
            "",
            markdown_table(self.rows),
        ]
        if doc["notes"]:
            lines += ["Notes:", "", *[f"- {n}" for n in doc["notes"]], ""]
        described = [r for r in self.rows if r["params"]]
        if described:
            lines.append("Parameters:\n")
            for r in described:
                text = ", ".join(f"{k}={v}" for k, v in r["params"].items())
                lines.append(f"- {r['case']} / {r['impl']}: {text}")
            lines.append("")
        return "\n".join(lines)
