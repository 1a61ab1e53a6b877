"""One local Ray cluster (2 worker slots, a 100 MiB object store) for every Ray test here: a
cluster start costs seconds. Tests that need no cluster do not request it."""

from __future__ import annotations

import pytest

from speechdecode import _ray


@pytest.fixture(scope="session")
def cluster():
    ray = pytest.importorskip("ray")
    try:
        yield _ray.connect(None, num_cpus=2, object_store_memory=100 * 2**20)
    finally:
        ray.shutdown()
