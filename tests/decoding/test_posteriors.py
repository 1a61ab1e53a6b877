"""Posteriors .npz files: round trip and named errors."""

import numpy as np
import pytest

from speechdecode.decoding.posteriors import load_posteriors, save_posteriors
from speechdecode.errors import InputFileError


def test_round_trip(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float16)
    save_posteriors(tmp_path / "p.npz", x, [5, 2, 0], ["a", "b", "c"])
    p = load_posteriors(tmp_path / "p.npz")
    assert p.log_probs.dtype == np.float16 and np.array_equal(p.log_probs, x)
    assert p.lengths.tolist() == [5, 2, 0] and p.utt_ids == ["a", "b", "c"]
    save_posteriors(tmp_path / "q.npz", x)
    q = load_posteriors(tmp_path / "q.npz")
    assert q.lengths.tolist() == [5, 5, 5] and q.utt_ids == ["0", "1", "2"]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"logits": np.zeros((1, 2, 3))}, "missing array 'log_probs' (found: logits)"),
        ({"log_probs": np.zeros((2, 3))}, "'log_probs' must be floats [B, T, V], got float64 [2, 3]"),
        ({"log_probs": np.array([[["a", "b"]]])}, "'log_probs' must be floats [B, T, V], got <U1 [1, 1, 2]"),
        (
            {"log_probs": np.zeros((2, 3, 4)), "lengths": np.zeros(3, np.int64)},
            "'lengths' must be 2 integers, got int64 [3]",
        ),
        ({"log_probs": np.zeros((2, 3, 4)), "utt_ids": np.array(["a"])}, "'utt_ids' must have 2 entries, got 1"),
    ],
)
def test_bad_files(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputFileError) as info:
        load_posteriors(tmp_path / "bad.npz")
    assert str(info.value) == f"{tmp_path / 'bad.npz'}: {message}"
