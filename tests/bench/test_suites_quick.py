"""The TTS benchmark suites run end to end in quick mode, with their anchors and checked outputs."""

import numpy as np
import pytest
import torch

from speechdecode.bench import run
from speechdecode.bench.bench_beam import hf_style_step
from speechdecode.bench.bench_masks import python_dense_mask
from speechdecode.bench.bench_patterns import SPECIAL, gather_build, gather_revert
from speechdecode.bench.bench_units import _logits, redecode_every_step, streamed


@pytest.mark.parametrize("suite", ["units", "patterns", "sampling", "masks", "beam", "ctc", "wfst"])
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


def test_mask_and_beam_anchors_follow_the_published_semantics():
    # RALL-E: durations [2, 0, 3] -> frames 0-1 own phoneme 0, frames 2-4 phoneme 2 (phoneme 1 owns
    # none); frame 5, past the total, keeps the last owner
    mask = python_dense_mask(np.array([[2, 0, 3]]), 0, 6)
    assert mask[0].astype(int).tolist() == [[1, 0, 0]] * 2 + [[0, 0, 1]] * 4
    assert python_dense_mask(np.array([[1, 1, 1]]), 1, 3)[0].astype(int).tolist() == [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    # transformers' step: an EOS ranked within the first `beam` candidates is set aside as a
    # finished hypothesis, the next non-EOS candidates fill the beams
    log_probs = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))  # beam 2, V 3, eos 0
    (tokens, parents, scores), finished = hf_style_step(log_probs, torch.zeros(2), 2, eos_id=0)
    assert tokens.tolist() == [[2, 1]] and parents.tolist() == [[1, 0]]
    assert torch.allclose(scores, torch.log(torch.tensor([[0.8, 0.3]])))
    assert len(finished[0]) == 1 and finished[0][0][1] == 0
