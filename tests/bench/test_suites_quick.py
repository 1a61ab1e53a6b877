"""The TTS benchmark suites run end to end in quick mode, with their anchors and checked outputs."""

import pytest
import torch

from speechdecode.bench import run
from speechdecode.bench.bench_patterns import SPECIAL, gather_build, gather_revert
from speechdecode.bench.bench_units import _logits, redecode_every_step, streamed


@pytest.mark.parametrize("suite", ["units", "patterns", "sampling"])
def test_quick_suite(tmp_path, suite):
    doc = run(suite, out_dir=tmp_path, quick=True)
    cases = {r["case"] for r in doc["rows"]}
    assert cases and all(sum(r["anchor"] for r in doc["rows"] if r["case"] == c) == 1 for c in cases)
    assert all(r["median_ms"] > 0 and r["ratio"] > 0 for r in doc["rows"])


def test_anchors_follow_the_published_semantics():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]]])
    s = SPECIAL
    assert gather_build(codes, [0, 1]).tolist() == [[[s, 1, 2, 3, s], [s, s, 4, 5, 6]]]
    assert gather_revert(gather_build(codes, [0, 1]), [0, 1]).tolist() == codes.tolist()
    logits = _logits(2, 3)
    assert streamed(logits) == redecode_every_step(logits)
