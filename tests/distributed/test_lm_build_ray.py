"""The distributed build on a real local Ray cluster (conftest.py's ``cluster``): byte identity,
worker processes killed mid-stage, the CLI, errors, and what the cluster we start exposes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
import warnings

import numpy as np
import pytest

from speechdecode._backend import native
from speechdecode.cli import main as cli_main
from speechdecode.errors import InputFileError
from speechdecode.lm.counting import count_files
from speechdecode.lm.distributed import UnreadableShardWarning, build
from speechdecode.lm.distributed.driver import BLOCKS_PER_MEMORY, BYTES_PER_NGRAM
from speechdecode.lm.vocab import EOS_ID

from .processes import descendants, is_loopback, listening_addresses, state, title
from .test_lm_build import random_shards, single_process, zipf_shards

ray = pytest.importorskip("ray")
STAGES = ("count", "split", "merge", "contexts", "estimate")
pytestmark = pytest.mark.filterwarnings("ignore::speechdecode.lm.methods.kneser_ney.DiscountFallbackWarning")


@pytest.mark.parametrize(("order", "prune", "partitions"), [(4, None, 3), (3, [0, 1, 2], 8)])
def test_ray_build_matches_single_process(cluster, tmp_path, order, prune, partitions):
    paths = random_shards(tmp_path, seed=order + partitions, sizes=[120, 0, 33, 7])
    expected = single_process(paths, tmp_path / "single.arpa", order, prune=prune)
    report = build(paths, tmp_path / "ray.arpa", order, prune=prune, partitions=partitions, memory="64M")
    assert (tmp_path / "ray.arpa").read_bytes() == expected
    assert report.partitions == partitions
    assert report.shuffled_bytes["split"] > 0 and report.shuffled_bytes["contexts"] > 0


class WorkerKiller(threading.Thread):
    """SIGKILLs, from outside, the first worker process seen running each named task (its title
    is ``ray::<task name>``), once per task name; ``killed`` maps the names to the pids."""

    def __init__(self, tasks: list[str]):
        super().__init__(daemon=True)
        self.tasks, self.killed, self.done = tasks, {}, threading.Event()

    def run(self):
        while not self.done.is_set() and len(self.killed) < len(self.tasks):
            for pid in descendants():
                name = title(pid).removeprefix("ray::")
                if name in self.tasks and name not in self.killed:
                    os.kill(pid, signal.SIGKILL)
                    self.killed[name] = pid
            time.sleep(0.01)  # tasks here last tenths of a second: leave the cores to them


def test_worker_killed_while_counting_splitting_and_estimating_is_retried(cluster, tmp_path):
    """A worker process killed (SIGKILL, from outside) while it counts a shard, another while it
    splits a shard's counts (both streaming generator tasks: Ray runs them again and keeps the
    values yielded once), and another while it joins n-grams with their suffixes' probabilities
    (the estimate stage): Ray runs those tasks again on new workers and the ARPA is still byte
    for byte the single-process one. Each stage takes long enough here to be seen (a few tenths
    of a second per task on 2 cores); a build that ends before every kill happened is run again
    (at most 5 times)."""
    paths = zipf_shards(tmp_path, seed=5, lines=15_000, shards=3, vocab=10_000)
    expected = single_process(paths, tmp_path / "single.arpa", 4)
    tasks = ["_count_task", "_estimate_task", "_split_task"]
    killer = WorkerKiller(tasks)
    killer.start()
    for attempt in range(5):
        build(paths, tmp_path / f"ray{attempt}.arpa", 4, partitions=2, memory="64M")
        assert (tmp_path / f"ray{attempt}.arpa").read_bytes() == expected
        if len(killer.killed) == len(tasks):
            break
    killer.done.set()
    killer.join()
    assert sorted(killer.killed) == sorted(tasks)
    for pid in killer.killed.values():  # the killed workers are gone (or zombies): the tasks ran elsewhere
        assert state(pid) in ("", "Z")


def test_partition_tasks_stay_within_memory(cluster, tmp_path):
    """The merge, context and estimate tasks grow by less than ``memory`` each (their peak
    resident memory, reset as each task starts, over the private memory they started with): the
    default partition count holds each partition's rows to memory / BYTES_PER_NGRAM. With the
    minimum of two partitions per worker slot (4 here) the merge tasks grow by about 23 MiB."""
    paths = zipf_shards(tmp_path, seed=5, lines=15_000, shards=3, vocab=10_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = build(paths, tmp_path / "ray.arpa", 4, memory="20M")
    assert not [w for w in caught if "partition receives" in str(w.message)]
    assert report.partitions > 4 and max(report.partition_rows) <= 20 * 2**20 // BYTES_PER_NGRAM
    assert sorted(report.task_peak_rss) == sorted(report.task_growth) == sorted(STAGES)
    for stage in STAGES:
        assert 0 < report.task_growth[stage] <= 20 * 2**20, (stage, report.task_growth)
        assert report.task_peak_rss[stage] > report.task_growth[stage]  # the worker's own memory under it


def test_cut_words_stay_within_memory_and_survive_killed_workers(cluster, tmp_path):
    """At 8M (32,768 rows per partition) '</s>' ends more rows than a partition may hold: it is
    cut by its second-to-last words, every partition task grows by less than ``memory``, and a
    worker killed (SIGKILL, from outside) while it merges a partition, another while it sums
    context totals and another while it estimates are replaced by Ray: the ARPA is still the
    single-process file (a build that ends before every kill happened is run again, at most 5
    times)."""
    paths = zipf_shards(tmp_path, seed=5, lines=15_000, shards=3, vocab=10_000)
    expected = single_process(paths, tmp_path / "single.arpa", 4)
    budget = 8 * 2**20 // BYTES_PER_NGRAM
    assert sum(int(np.count_nonzero(g[:, -1] == EOS_ID)) for p in paths for g in count_files(p, 4).ngrams) > budget
    tasks = ["_merge_task", "_contexts_task", "_estimate_task"]
    killer = WorkerKiller(tasks)
    killer.start()
    for attempt in range(5):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = build(paths, tmp_path / f"ray{attempt}.arpa", 4, memory="8M")
        assert (tmp_path / f"ray{attempt}.arpa").read_bytes() == expected
        assert not [w for w in caught if "partition receives" in str(w.message)]
        assert max(report.partition_rows) <= budget
        for stage in ("merge", "contexts", "estimate"):
            assert 0 < report.task_growth[stage] <= 8 * 2**20, (stage, report.task_growth)
        if len(killer.killed) == len(tasks):
            break
    killer.done.set()
    killer.join()
    assert sorted(killer.killed) == sorted(tasks)
    for pid in killer.killed.values():
        assert state(pid) in ("", "Z")


def test_count_and_split_tasks_hold_less_than_their_shards_counts(cluster, tmp_path):
    """A shard whose counts alone (31 MiB as arrays) exceed ``memory`` (28M): its count task
    spills its table and streams the counts out in blocks of memory / BLOCKS_PER_MEMORY bytes,
    its split task reads them a block at a time, and each grows by less than ``memory``
    (holding the shard's counts once would not fit beside the worker's own allocations).
    The ARPA, made of many blocks per order, is the single-process file."""
    (path,) = zipf_shards(tmp_path, seed=6, lines=120_000, shards=1, vocab=50_000)
    counts = count_files(path, 4)
    assert sum(g.nbytes + c.nbytes for g, c in zip(counts.ngrams, counts.counts, strict=True)) > 28 * 2**20
    expected = single_process([path], tmp_path / "single.arpa", 4)
    report = build([path], tmp_path / "ray.arpa", 4, memory="28M", partitions=8)
    assert (tmp_path / "ray.arpa").read_bytes() == expected
    assert report.shuffled_bytes["count"] > 16 * 28 * 2**20 // BLOCKS_PER_MEMORY  # 16+ blocks
    for stage in ("count", "split"):
        assert 0 < report.task_growth[stage] <= 28 * 2**20, (stage, report.task_growth)


def test_cli_lm_build_ray(cluster, tmp_path, capsys):
    paths = random_shards(tmp_path, seed=3, sizes=[50, 50])
    common = ["lm", "build", "--text", *paths, "-o", "3", "--prune", "0", "1", "--discount_fallback"]
    assert cli_main([*common, "--arpa", str(tmp_path / "one.arpa")]) in (0, None)
    assert cli_main([*common, "--arpa", str(tmp_path / "ray.arpa"), "--ray", "--partitions", "4"]) in (0, None)
    assert (tmp_path / "ray.arpa").read_bytes() == (tmp_path / "one.arpa").read_bytes()
    assert "4 partitions" in capsys.readouterr().err


def test_unreadable_shard_fails_with_its_name_and_no_arpa(cluster, tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("a b c\nb c d\n")
    missing = tmp_path / "gone.txt"
    missing.write_text("a b\n")
    missing.chmod(0)
    if os.access(missing, os.R_OK):  # root reads anything: use invalid UTF-8 instead
        missing.write_bytes(b"a \xff b\n")
    with pytest.raises(InputFileError, match=r"gone\.txt"):
        build([good, missing], tmp_path / "out.arpa", 3)
    assert not (tmp_path / "out.arpa").exists()


def test_unreadable_shard_is_skipped_when_asked(cluster, tmp_path):
    """On Ray too, a shard its count task cannot read is left out (its task yields only the
    reason) and the model is the other shards'."""
    paths = random_shards(tmp_path, seed=13, sizes=[60, 25])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"w1 w2\nw3 \xff\n")
    expected = single_process(paths, tmp_path / "single.arpa", 3)
    with pytest.warns(UnreadableShardWarning, match=r"bad\.txt:2"):
        report = build([paths[0], bad, paths[1]], tmp_path / "skip.arpa", 3, skip_unreadable=True, partitions=3)
    assert (tmp_path / "skip.arpa").read_bytes() == expected
    assert len(report.skipped) == 1


def test_local_cluster_has_no_dashboard_or_job_api(cluster):
    context = ray.get_runtime_context()
    assert context.get_node_id()
    assert not ray.worker.get_dashboard_url()
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:8265/api/jobs/", timeout=2)


def test_local_cluster_listens_on_loopback_only(cluster):
    """Every TCP socket that the cluster's processes (GCS, raylet, agents, workers) and this
    driver listen on is bound to the loopback interface: nothing is reachable from the network."""

    @ray.remote
    def pid():
        return os.getpid()

    workers = set(ray.get([pid.remote() for _ in range(4)]))
    processes = [os.getpid(), *descendants()]
    assert workers <= set(processes)
    listening = listening_addresses(processes)
    titles = {title(p) for p, addresses in listening.items() if addresses}
    assert any("gcs_server" in t for t in titles) and any("raylet" in t for t in titles), titles
    assert len([p for p in workers if listening.get(p)]) == len(workers)  # each worker's gRPC server
    exposed = {(title(p)[:40], a) for p, addresses in listening.items() for a in addresses if not is_loopback(a[0])}
    assert not exposed


def test_disk_full_while_spilling_is_named(cluster, tmp_path):
    """Counting under the smallest budget spills sorted runs; on a full disk (a 64 KiB tmpfs) the
    Ray task's error names the stage, the shard, the spill folder and the cause, and no ARPA is
    written (test_lm_build.py checks the count and split stages without root, in one process)."""
    if os.geteuid() != 0 and not os.environ.get("CI"):  # CI runs as root: there the mount must work
        pytest.skip("mounting a tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    paths = random_shards(tmp_path, seed=4, sizes=[4000], vocab=3000)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        where = rf"count stage \({re.escape(paths[0])}\), temporary files in {small}: "
        with pytest.raises(RuntimeError, match=rf"^{where}.*{small}: No space left on device$"):
            build(paths, tmp_path / "out.arpa", 3, memory=native().count_min_memory(3), tmp_dir=small)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert not (tmp_path / "out.arpa").exists()


def test_relative_paths_are_the_callers(cluster, tmp_path, monkeypatch):
    """Workers started from another directory read the shards the caller named relatively."""
    paths = random_shards(tmp_path, seed=9, sizes=[30, 20])
    expected = single_process(paths, tmp_path / "single.arpa", 3)
    monkeypatch.chdir(tmp_path)
    build([os.path.basename(p) for p in paths], "relative.arpa", 3, partitions=2)
    assert (tmp_path / "relative.arpa").read_bytes() == expected
