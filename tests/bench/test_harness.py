"""The benchmark harness: timing statistics, ratios, anchor checks, output files, the ctc_greedy suite."""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
import time
import types

import numpy as np
import pytest
import torch

import speechdecode.bench as bench
from speechdecode import _backend
from speechdecode.bench import SUITES, bench_ctc_greedy, harness, run
from speechdecode.bench.harness import BenchmarkMismatchError, Suite, check_equal, measure
from speechdecode.decoding.ctc_greedy import ctc_greedy_packed
from speechdecode.errors import BackendUnavailableError, InvalidArgumentError

FAST = {"warmup": 1, "repeats": 5, "min_seconds": 0.0}


class FakeClock:
    """Stands in for time.perf_counter; each call of a step function advances it by a set amount."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def step(self, durations_ms):
        cycle = list(durations_ms)
        calls = []

        def fn():
            self.now += cycle[len(calls) % len(cycle)] / 1e3
            calls.append(None)

        return fn, calls


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def test_measure_statistics_on_a_known_clock(clock):
    # warm-up consumes the first duration; the timed runs see 1, 2, 3, 4, 5 ms
    fn, calls = clock.step([9.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    t = measure(fn, warmup=1, repeats=5, min_seconds=0.0)
    assert len(calls) == 6
    assert t.runs == 5
    # linear interpolation over 5 sorted values: p20 at rank 0.8, p80 at rank 3.2
    assert t.median_ms == pytest.approx(3.0)
    assert t.p20_ms == pytest.approx(1.8)
    assert t.p80_ms == pytest.approx(4.2)


def test_measure_runs_until_min_seconds_and_stops_at_max_repeats(clock):
    fn, _ = clock.step([10.0])
    assert measure(fn, warmup=0, repeats=2, min_seconds=0.095).runs == 10
    fn, _ = clock.step([10.0])
    assert measure(fn, warmup=0, repeats=2, min_seconds=100.0, max_repeats=7).runs == 7


def test_measure_calls_sync_around_every_timed_run(clock):
    syncs = []
    fn, _ = clock.step([1.0])
    t = measure(fn, warmup=3, repeats=4, min_seconds=0.0, sync=lambda: syncs.append(None))
    assert len(syncs) == 3 + 2 * t.runs


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"warmup": -1}, "warmup"),
        ({"repeats": 0}, "repeats"),
        ({"min_seconds": -1.0}, "min_seconds"),
        ({"repeats": 5, "max_repeats": 4}, "max_repeats"),
    ],
)
def test_measure_rejects_bad_settings(kwargs, argument):
    with pytest.raises(InvalidArgumentError, match=argument):
        measure(lambda: None, **kwargs)


def test_measure_reports_cpu_time_apart_from_wall_time():
    def spin():  # 5 ms of this process's CPU time, however long that takes on the wall clock
        end = time.process_time() + 0.005
        while time.process_time() < end:
            pass

    busy = measure(spin, warmup=0, repeats=3, min_seconds=0.0)
    idle = measure(lambda: time.sleep(0.005), warmup=0, repeats=3, min_seconds=0.0)
    assert busy.cpu_median_ms >= 5.0
    assert idle.cpu_median_ms < 2.0 and idle.median_ms >= 5.0


def test_cpu_ratios_come_from_cpu_times(tmp_path):
    suite = Suite("cpu", tmp_path, warmup=0, repeats=3, min_seconds=0.0)

    def spin(ms):
        end = time.process_time() + ms / 1e3
        while time.process_time() < end:
            pass

    suite.add("a", "slow", lambda: spin(8.0), anchor=True)
    suite.add("a", "fast", lambda: spin(2.0))
    doc = suite.finish()
    slow, fast = doc["rows"]
    assert slow["cpu_ratio"] == 1.0
    assert fast["cpu_ratio"] == pytest.approx(slow["cpu_median_ms"] / fast["cpu_median_ms"])
    assert 2.0 < fast["cpu_ratio"] < 4.5


def test_percentiles_are_ordered_on_real_timings():
    rng = np.random.default_rng(0)
    t = measure(lambda: time.sleep(float(rng.uniform(0.0002, 0.002))), warmup=1, repeats=15, min_seconds=0.0)
    assert t.runs == 15
    assert 0 < t.p20_ms <= t.median_ms <= t.p80_ms


def test_ratio_is_anchor_median_over_impl_median_exactly(clock, tmp_path):
    suite = Suite("exact", tmp_path, **FAST)
    for case, anchor_ms, impl_ms in (("slow impl", 2.0, 8.0), ("fast impl", 6.0, 1.5)):
        suite.add(case, "anchor", clock.step([anchor_ms])[0], anchor=True)
        suite.add(case, "impl", clock.step([impl_ms])[0], bytes_processed=4_000_000, items=8, item_unit="utt")
    rows = {(r["case"], r["impl"]): r for r in suite.finish()["rows"]}
    assert rows["slow impl", "impl"]["ratio"] == pytest.approx(0.25)
    assert rows["fast impl", "impl"]["ratio"] == pytest.approx(4.0)
    assert rows["fast impl", "anchor"]["ratio"] == 1.0
    assert rows["fast impl", "impl"]["gb_per_s"] == pytest.approx(4e6 / 1.5e-3 / 1e9)
    assert rows["fast impl", "impl"]["items_per_s"] == pytest.approx(8 / 1.5e-3)
    assert rows["fast impl", "anchor"]["gb_per_s"] is None


def test_ratio_on_sleeping_functions(tmp_path):
    # real clock: 6 ms vs 2 ms of sleep; scheduler overhead pulls the ratio a little toward 1
    suite = Suite("sleep", tmp_path, warmup=1, repeats=5, min_seconds=0.0)
    suite.add("x", "sleep 6 ms", lambda: time.sleep(0.006), anchor=True)
    suite.add("x", "sleep 2 ms", lambda: time.sleep(0.002))
    suite.add("y", "sleep 2 ms", lambda: time.sleep(0.002), anchor=True)
    suite.add("y", "sleep 6 ms", lambda: time.sleep(0.006))
    rows = {(r["case"], r["impl"]): r["ratio"] for r in suite.finish()["rows"]}
    assert 2.2 < rows["x", "sleep 2 ms"] < 3.6
    assert 1 / 3.6 < rows["y", "sleep 6 ms"] < 1 / 2.2
    assert rows["x", "sleep 6 ms"] == rows["y", "sleep 2 ms"] == 1.0


def test_case_without_anchor_is_an_error(clock, tmp_path):
    suite = Suite("noanchor", tmp_path, **FAST)
    suite.add("a", "anchor", clock.step([1.0])[0], anchor=True)
    suite.add("b", "impl", clock.step([1.0])[0])
    with pytest.raises(InvalidArgumentError, match=r"anchor of case 'b'.*none"):
        suite.finish()
    assert not list(tmp_path.iterdir())


def test_second_anchor_is_an_error_before_timing(clock, tmp_path):
    suite = Suite("twoanchors", tmp_path, **FAST)
    suite.add("a", "first", clock.step([1.0])[0], anchor=True)
    fn, calls = clock.step([1.0])
    with pytest.raises(InvalidArgumentError, match=r"anchor of case 'a'.*'first'"):
        suite.add("a", "second", fn, anchor=True)
    assert calls == []


def test_bad_rows_are_rejected(clock, tmp_path):
    suite = Suite("bad", tmp_path, **FAST)
    suite.add("a", "x", clock.step([1.0])[0], anchor=True)
    with pytest.raises(InvalidArgumentError, match="impl"):
        suite.add("a", "x", clock.step([1.0])[0])
    with pytest.raises(InvalidArgumentError, match="params"):
        suite.add("a", "y", clock.step([1.0])[0], params={"array": np.zeros(2)})
    with pytest.raises(InvalidArgumentError, match="bytes_processed"):
        suite.add("a", "z", clock.step([1.0])[0], bytes_processed=-1)
    with pytest.raises(InvalidArgumentError, match="suite"):
        Suite("empty", tmp_path).finish()


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == (
        "| case | impl | median ms | p20 | p80 | GB/s or items/s | ratio vs anchor | CPU ms | CPU ratio |"
    )
    assert set(lines[1]) <= set("|-:")
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_files_are_written_and_agree(clock, tmp_path):
    out = tmp_path / "results"
    suite = Suite("files", out, **FAST)
    suite.add("small", "numpy", clock.step([6.0])[0], anchor=True, bytes_processed=10**9, params={"n": 3})
    suite.add("small", "native", clock.step([2.0])[0], bytes_processed=10**9)
    suite.add("large", "numpy", clock.step([40.0])[0], anchor=True, items=64, item_unit="utt")
    suite.add("large", "native", clock.step([12.5])[0], items=64, item_unit="utt")
    doc = suite.finish()

    assert sorted(os.listdir(out)) == ["files.json", "files.md", "files.png"]
    on_disk = json.loads((out / "files.json").read_text())
    assert on_disk == doc
    assert doc["suite"] == "files" and doc["quick"] is False
    assert doc["machine"]["cpu_count"] == os.cpu_count()
    assert doc["backend"]["native"]["available"] == _backend.HAS_NATIVE
    assert doc["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", doc["git"]["commit"])
    assert datetime.datetime.fromisoformat(doc["timestamp_utc"]).utcoffset() == datetime.timedelta(0)

    table = _markdown_rows((out / "files.md").read_text())
    assert len(table) == len(doc["rows"]) == 4
    for cells, row in zip(table, doc["rows"], strict=True):
        case, impl, median, p20, p80, throughput, ratio, cpu_ms, cpu_ratio = cells
        assert case == row["case"]
        assert impl == row["impl"] + (" (anchor)" if row["anchor"] else "")
        assert float(median) == pytest.approx(row["median_ms"], rel=1e-3)
        assert float(p20) == pytest.approx(row["p20_ms"], rel=1e-3)
        assert float(p80) == pytest.approx(row["p80_ms"], rel=1e-3)
        assert float(ratio) == pytest.approx(row["ratio"], abs=0.006)
        assert float(cpu_ms.replace(",", "")) == pytest.approx(row["cpu_median_ms"], rel=1e-3, abs=1e-3)
        assert (
            cpu_ratio == "-"
            if row["cpu_ratio"] is None
            else float(cpu_ratio) == pytest.approx(row["cpu_ratio"], abs=0.006)
        )
        if row["gb_per_s"] is not None:
            assert float(throughput.split()[0]) == pytest.approx(row["gb_per_s"], rel=1e-3)
        else:
            assert throughput.endswith(" utt/s")
            assert float(throughput.split()[0].replace(",", "")) == pytest.approx(row["items_per_s"], rel=1e-3)
    assert [r["ratio"] for r in doc["rows"]] == pytest.approx([1.0, 3.0, 1.0, 3.2])

    png = (out / "files.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 300 and height > 100


def test_check_equal():
    want = (np.array([3, 1, 2]), np.array([0, 4, 7]))
    check_equal("c", "i", (torch.tensor([3, 1, 2]), torch.tensor([0, 4, 7])), want)
    with pytest.raises(BenchmarkMismatchError, match=r"c/i: frames differs from the anchor at \[1\]"):
        check_equal("c", "i", (np.array([3, 1, 2]), np.array([0, 5, 7])), want, names=("tokens", "frames"))
    with pytest.raises(BenchmarkMismatchError, match="shape"):
        check_equal("c", "i", (np.array([3, 1]), np.array([0, 4, 7])), want)


def test_numpy_anchor_agrees_with_the_reference():
    x = bench_ctc_greedy.make_log_probs(5, 37, 11, seed=3)
    lengths = torch.tensor([37, 0, 1, 20, 36])
    got = bench_ctc_greedy.numpy_greedy(x.numpy(), 0, lengths.numpy())
    want = ctc_greedy_packed(x, lengths, 0, backend="reference")
    check_equal("anchor", "numpy", got, want)
    assert len(got[0]) > 10  # the input has tokens to keep


def test_unknown_suite_lists_the_known_ones(tmp_path):
    with pytest.raises(InvalidArgumentError, match="ctc_greedy"):
        run("no_such_suite", tmp_path)
    assert SUITES["ctc_greedy"] == "speechdecode.bench.bench_ctc_greedy"


def test_quick_ctc_greedy_suite_end_to_end(tmp_path):
    doc = run("ctc_greedy", tmp_path, quick=True)
    assert doc["quick"] is True
    assert json.loads((tmp_path / "ctc_greedy.json").read_text()) == doc
    assert (tmp_path / "ctc_greedy.md").is_file() and (tmp_path / "ctc_greedy.png").is_file()
    rows = doc["rows"]
    cases = {r["case"] for r in rows}
    assert cases == {"fp32", "fp16", "bf16", "fp32 ragged"}
    impls = {r["impl"] for r in rows if r["case"] == "fp32"}
    assert {"numpy argmax+collapse", "reference (torch)"} <= impls
    if _backend.HAS_NATIVE:
        assert "native 1 thread" in impls
    assert ("triton (cuda)" in impls) == (_backend.HAS_CUDA and _backend.HAS_TRITON)
    for case in cases:
        group = [r for r in rows if r["case"] == case]
        (anchor,) = [r for r in group if r["anchor"]]
        assert anchor["impl"].startswith("numpy argmax+collapse")
        assert anchor["params"]["shape"] == list(bench_ctc_greedy.QUICK_SHAPE)
        for r in group:
            assert r["ratio"] == pytest.approx(anchor["median_ms"] / r["median_ms"], rel=1e-12)
            assert r["p20_ms"] <= r["median_ms"] <= r["p80_ms"]
            assert r["gb_per_s"] == pytest.approx(r["bytes_processed"] / r["median_ms"] * 1e3 / 1e9)
    full = next(r for r in rows if r["case"] == "fp32")
    assert full["bytes_processed"] == int(np.prod(bench_ctc_greedy.QUICK_SHAPE)) * 4


def test_suite_refuses_to_time_wrong_output(monkeypatch, tmp_path):
    def off_by_one(*args, **kwargs):
        tokens, frames, offsets = ctc_greedy_packed(*args, **kwargs)
        return tokens, frames + 1, offsets

    monkeypatch.setattr(bench_ctc_greedy, "ctc_greedy_packed", off_by_one)
    timed = []
    monkeypatch.setattr(harness, "measure", lambda fn, **kw: timed.append(fn) or measure(fn, **kw))
    with Suite("wrong", tmp_path, quick=True) as suite, pytest.raises(BenchmarkMismatchError, match="fp32/"):
        bench_ctc_greedy.run(suite, quick=True)
    assert len(timed) == 1  # only the anchor was timed


def test_run_all_skips_suites_that_need_missing_hardware(monkeypatch, tmp_path):
    def needs_gpu(suite, quick):
        raise BackendUnavailableError("needs a CUDA GPU")

    def one_row(suite, quick):
        suite.add("case", "impl", lambda: None, anchor=True)

    for name, fn in (("fake_gpu", needs_gpu), ("fake_cpu", one_row)):
        module = types.ModuleType(f"speechdecode_test_{name}")
        module.run = fn
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(bench, "SUITES", {name: f"speechdecode_test_{name}" for name in ("fake_gpu", "fake_cpu")})
    results = bench.run_all(tmp_path, quick=True)
    assert results["fake_gpu"] == {"skipped": "needs a CUDA GPU"}
    assert [row["impl"] for row in results["fake_cpu"]["rows"]] == ["impl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake_cpu.json", "fake_cpu.md", "fake_cpu.png"]
