"""The distributed build on a real local Ray cluster (conftest.py's ``cluster``): byte identity,
worker processes killed mid-stage, the CLI, errors, and what the cluster we start exposes."""

from __future__ import annotations

import os
import subprocess
import urllib.request

import pytest

from speechdecode._backend import native
from speechdecode.cli import main as cli_main
from speechdecode.errors import InputFileError
from speechdecode.lm.distributed import build

from .processes import descendants, is_loopback, listening_addresses, title
from .test_lm_build import random_shards, single_process

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::speechdecode.lm.methods.kneser_ney.DiscountFallbackWarning")


@pytest.mark.parametrize(("order", "prune", "partitions"), [(4, None, 3), (3, [0, 1, 2], 8)])
def test_ray_build_matches_single_process(cluster, tmp_path, order, prune, partitions):
    paths = random_shards(tmp_path, seed=order + partitions, sizes=[120, 0, 33, 7])
    expected = single_process(paths, tmp_path / "single.arpa", order, prune=prune)
    report = build(paths, tmp_path / "ray.arpa", order, prune=prune, partitions=partitions, memory="64M")
    assert (tmp_path / "ray.arpa").read_bytes() == expected
    assert report.partitions == partitions
    assert report.shuffled_bytes["split"] > 0 and report.shuffled_bytes["contexts"] > 0


def test_worker_killed_while_counting_and_joining_is_retried(cluster, tmp_path):
    paths = random_shards(tmp_path, seed=7, sizes=[90, 60, 30])
    expected = single_process(paths, tmp_path / "single.arpa", 4)
    cluster.mkdir()
    build(paths, tmp_path / "ray.arpa", 4, partitions=3, memory="64M")
    # The markers are made right before each SIGKILL: each stage lost a worker (counting, the
    # context join, the suffix join), and Ray ran those tasks again.
    assert sorted(p.name for p in cluster.iterdir()) == ["contexts", "count", "estimate"]
    assert (tmp_path / "ray.arpa").read_bytes() == expected


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
    """Counting under the smallest budget spills sorted runs; on a full disk the task's error
    names the spill folder and the cause, and no ARPA is written."""
    if os.geteuid() != 0 and not os.environ.get("CI"):  # CI runs as root: there the mount must work
        pytest.skip("mounting a tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    paths = random_shards(tmp_path, seed=4, sizes=[4000], vocab=3000)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(RuntimeError, match=rf"{small}: No space left on device"):
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
