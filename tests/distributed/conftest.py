"""One local Ray cluster (2 worker slots, a 100 MiB object store) for every Ray test here: a
cluster start costs seconds. Tests that need no cluster do not request it."""

from __future__ import annotations

import os

import pytest

from speechdecode import _ray
from speechdecode.lm.distributed.driver import FAULT_ENV


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """The running cluster; yields the fault folder. Workers inherit FAULT_ENV: a stage named
    there kills its worker once, when that folder exists (only the fault test creates it)."""
    ray = pytest.importorskip("ray")
    faults = tmp_path_factory.mktemp("faults") / "armed"
    os.environ[FAULT_ENV] = f"count,contexts,estimate:{faults}"
    try:
        _ray.connect(None, num_cpus=2, object_store_memory=100 * 2**20)
        yield faults
    finally:
        ray.shutdown()
        del os.environ[FAULT_ENV]
