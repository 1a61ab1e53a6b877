"""Duration-guided stopping: EOS masked before D_b, forced from D_b on, row by row."""

import numpy as np
import pytest
import torch

from speechdecode.decoding.stopping import DurationGuidedStopping
from speechdecode.errors import InvalidArgumentError, TensorError

INF = float("inf")


def test_rows_stop_at_their_own_totals():
    stop = DurationGuidedStopping(torch.tensor([[1, 2, 0], [0, 1, 0], [0, 0, 0]]), eos_id=2)
    assert stop.totals.tolist() == [3, 1, 0]
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 3)
    out = stop(0, logits)
    assert out.tolist() == [[1, 2, -INF, 4], [1, 2, -INF, 4], [-INF, -INF, 0, -INF]]
    assert stop(1, logits).tolist() == [[1, 2, -INF, 4], [-INF, -INF, 0, -INF], [-INF, -INF, 0, -INF]]
    assert stop(3, logits).tolist() == [[-INF, -INF, 0, -INF]] * 3
    assert stop(7, logits).tolist() == [[-INF, -INF, 0, -INF]] * 3
    assert logits.tolist() == [[1.0, 2.0, 3.0, 4.0]] * 3  # input untouched
    assert stop.done(0).tolist() == [False, False, True]
    assert stop.done(2).tolist() == [False, True, True]
    assert stop.done(3).tolist() == [True, True, True]


def test_totals_form_and_greedy_lengths():
    stop = DurationGuidedStopping(np.array([2, 5, 0]), eos_id=0)
    g = torch.Generator().manual_seed(1)
    lengths = [None, None, None]
    for step in range(8):
        logits = torch.randn(3, 6, generator=g)
        logits[:, 0] = 100.0  # the model wants to stop at once
        token = stop(step, logits).argmax(dim=1)
        for b in range(3):
            if lengths[b] is None and int(token[b]) == 0:
                lengths[b] = step
    assert lengths == [2, 5, 0]


def test_forced_eos_overrides_an_earlier_minus_inf():
    stop = DurationGuidedStopping([[1]], eos_id=1)
    out = stop(1, torch.tensor([[0.5, -INF, 0.25]]))
    assert torch.softmax(out, dim=1).tolist() == [[0.0, 1.0, 0.0]]


def test_errors():
    with pytest.raises(TensorError, match=r"^durations: expected values >= 0, got -1 at \[1, 2\]"):
        DurationGuidedStopping(torch.tensor([[1, 1, 1], [0, 1, -1]]), eos_id=0)
    with pytest.raises(TensorError, match=r"^durations: expected values >= 0, got -3 at \[0\]"):
        DurationGuidedStopping([-3, 2], eos_id=0)
    with pytest.raises(TensorError, match=r"^durations: expected a 2-D"):
        DurationGuidedStopping(torch.zeros(1, 1, 1, dtype=torch.int64), eos_id=0)
    with pytest.raises(TensorError, match=r"^durations: expected an integer dtype"):
        DurationGuidedStopping(torch.zeros(2), eos_id=0)
    with pytest.raises(InvalidArgumentError, match=r"^eos_id:"):
        DurationGuidedStopping([1], eos_id=-1)
    stop = DurationGuidedStopping([1, 2], eos_id=3)
    with pytest.raises(TensorError, match=r"^logits: expected shape \[2, V\]"):
        stop(0, torch.zeros(3, 4))
    with pytest.raises(TensorError, match=r"^logits: expected more than eos_id=3 columns"):
        stop(0, torch.zeros(2, 3))
    with pytest.raises(InvalidArgumentError, match=r"^step: expected an integer >= 0, got -1"):
        stop(-1, torch.zeros(2, 4))
