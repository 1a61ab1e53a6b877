"""VALL-E 2 grouping, VALL-E R merging, MELLE reduction: hand-computed cases, round trips, errors."""

import numpy as np
import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.code_transforms import (
    expand_frames,
    group_codes,
    merge_residual,
    reduce_frames,
    ungroup_codes,
)


def test_group_codes_trims_leading_frames():
    codes = torch.tensor([[10, 11, 12, 13, 14, 15, 16]])
    assert group_codes(codes, 2).tolist() == [[[11, 12], [13, 14], [15, 16]]]
    assert group_codes(codes, 3).tolist() == [[[11, 12, 13], [14, 15, 16]]]
    assert group_codes(codes, 1).tolist() == [[[c] for c in range(10, 17)]]
    assert group_codes(codes, 8).shape == (1, 0, 8)


def test_group_codes_with_codebooks_and_numpy():
    codes = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    grouped = group_codes(codes, 2)
    assert grouped.shape == (2, 3, 2, 2)
    assert grouped[1, 2].tolist() == [[26, 27], [28, 29]]


@pytest.mark.parametrize("G", [1, 2, 3, 5])
@pytest.mark.parametrize("frames", [1, 7, 12])
def test_group_round_trip(G, frames):
    g = torch.Generator().manual_seed(G * 100 + frames)
    codes = torch.randint(0, 1024, (3, 4, frames), generator=g)
    back = ungroup_codes(group_codes(codes, G), G)
    assert torch.equal(back, codes[..., frames % G :])
    assert torch.equal(ungroup_codes(group_codes(codes[:, 0], G)), codes[:, 0, frames % G :])


def test_merge_residual_hand_computed():
    x = torch.tensor([[[1.0, 3.0, 5.0, 9.0, 4.0]]])
    assert merge_residual(x, 2).tolist() == [[[2.0, 2.0, 7.0, 7.0, 4.0]]]
    assert merge_residual(x, 3).tolist() == [[[3.0, 3.0, 3.0, 6.5, 6.5]]]
    assert merge_residual(x, 1).tolist() == x.tolist()
    torch.testing.assert_close(merge_residual(x, 9), torch.full((1, 1, 5), 4.4))


def test_merge_residual_matches_avg_pool_when_divisible():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 12, generator=g, dtype=torch.float64)
    pooled = torch.nn.functional.avg_pool1d(x, 4).repeat_interleave(4, dim=-1)
    torch.testing.assert_close(merge_residual(x, 4), pooled)
    half = merge_residual(x.half(), 4)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.double(), pooled, atol=2e-3, rtol=2e-3)


def test_reduce_frames_hand_computed_and_padding():
    mel = torch.arange(10.0).reshape(1, 5, 2)
    reduced = reduce_frames(mel, 2, pad_value=-1.0)
    assert reduced.tolist() == [[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, -1, -1]]]
    assert expand_frames(reduced, 2).shape == (1, 6, 2)
    assert torch.equal(expand_frames(reduced, 2, num_frames=5), mel)


@pytest.mark.parametrize("r", [1, 2, 3, 4])
@pytest.mark.parametrize("frames", [0, 1, 9, 12])
def test_reduce_round_trip(r, frames):
    g = torch.Generator().manual_seed(r * 50 + frames)
    mel = torch.randn(2, frames, 5, generator=g)
    reduced = reduce_frames(mel, r)
    assert reduced.shape == (2, -(-frames // r), r * 5)
    assert torch.equal(expand_frames(reduced, r, frames), mel)


def test_errors():
    with pytest.raises(InvalidArgumentError, match=r"^G: expected an integer >= 1, got 0"):
        group_codes(torch.zeros(1, 4), 0)
    with pytest.raises(TensorError, match=r"^codes: expected a 2-D"):
        group_codes(torch.zeros(4), 2)
    with pytest.raises(TensorError, match=r"^grouped: expected last dimension G=3"):
        ungroup_codes(torch.zeros(1, 2, 2), 3)
    with pytest.raises(InvalidArgumentError, match=r"^m: expected an integer >= 1, got -2"):
        merge_residual(torch.zeros(1, 1, 4), -2)
    with pytest.raises(TensorError, match=r"^x: expected a floating-point dtype"):
        merge_residual(torch.zeros(1, 1, 4, dtype=torch.int64), 2)
    with pytest.raises(TensorError, match=r"^x: expected a 3-D"):
        merge_residual(torch.zeros(1, 4), 2)
    with pytest.raises(InvalidArgumentError, match=r"^r: expected an integer >= 1, got 0"):
        reduce_frames(torch.zeros(1, 4, 2), 0)
    with pytest.raises(TensorError, match=r"^mel: expected a 3-D"):
        reduce_frames(torch.zeros(4, 2), 2)
    with pytest.raises(TensorError, match=r"^x: expected a last dimension divisible by r=2"):
        expand_frames(torch.zeros(1, 4, 3), 2)
    with pytest.raises(InvalidArgumentError, match=r"^num_frames: expected an integer in \[0, 8\], got 9"):
        expand_frames(torch.zeros(1, 4, 2), 2, num_frames=9)
    with pytest.raises(InvalidArgumentError, match=r"^r: expected an integer >= 1, got True"):
        reduce_frames(torch.zeros(1, 4, 2), True)
