"""RALL-E duration-guided masks: vectorized ops == loop reference, hand-built cases, FlexAttention."""

import warnings

import numpy as np
import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels import duration_mask as dm
from speechdecode.kernels.duration_mask import reference


def random_durations(seed: int, batch: int, phonemes: int, high: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.randint(0, high, (batch, phonemes), generator=g)
    for b in range(batch):  # rows of different lengths: zero-padded tails
        d[b, int(torch.randint(0, phonemes + 1, (1,), generator=g)) :] = 0
    return d


def test_hand_built_frame_owners_and_window():
    d = torch.tensor([[2, 0, 3, 1]])
    assert dm.frame_phonemes(d).tolist() == [[0, 0, 2, 2, 2, 3]]
    # frames 6, 7 lie past the total 6 and keep the last phoneme's window
    assert dm.frame_phonemes(d, num_frames=8).tolist() == [[0, 0, 2, 2, 2, 3, 3, 3]]
    expected = [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 1],
        [0, 1, 1, 1],
        [0, 1, 1, 1],
        [0, 0, 1, 1],
    ]
    assert dm.dense_mask(d, k=1).int()[0].tolist() == expected


def test_zero_total_row_maps_to_phoneme_zero():
    d = torch.tensor([[0, 0, 0], [1, 1, 1]])
    owner = dm.frame_phonemes(d)
    assert owner.tolist() == [[0, 0, 0], [0, 1, 2]]
    assert dm.dense_mask(d, k=0)[0].tolist() == [[True, False, False]] * 3


@pytest.mark.parametrize("k", [0, 1, 2, 7])
@pytest.mark.parametrize(("batch", "phonemes"), [(1, 1), (3, 5), (4, 13)])
def test_vectorized_matches_loops(k, batch, phonemes):
    d = random_durations(seed=100 * k + phonemes, batch=batch, phonemes=phonemes)
    frames = int(d.sum(1).max())
    assert torch.equal(dm.frame_phonemes(d), reference.frame_phonemes(d, frames))
    assert torch.equal(dm.dense_mask(d, k), reference.dense_mask(d, k, frames))
    assert torch.equal(dm.dense_mask(d, k, frames + 3), reference.dense_mask(d, k, frames + 3))
    assert torch.equal(dm.sequence_mask(d, k, frames + 2), reference.sequence_mask(d, k, frames + 2))


def test_additive_bias_and_numpy_input():
    d = np.array([[1, 2], [3, 0]], dtype=np.int32)
    bias = dm.additive_bias(d, k=0, dtype=torch.float16)
    assert bias.dtype == torch.float16 and bias.shape == (2, 3, 2)
    mask = reference.dense_mask(torch.from_numpy(d).long(), 0, 3)
    assert torch.equal(bias == 0, mask)
    assert torch.equal(torch.isneginf(bias), ~mask)


def test_flex_mask_mod_matches_dense_sequence_mask():
    d = random_durations(seed=7, batch=3, phonemes=6)
    k, frames = 1, int(d.sum(1).max()) + 2
    size = d.shape[1] + frames
    mod = dm.flex_mask_mod(d, k, frames)
    expected = reference.sequence_mask(d, k, frames)
    q = torch.arange(size)[:, None].expand(size, size)
    kv = torch.arange(size)[None, :].expand(size, size)
    for b in range(d.shape[0]):
        got = mod(torch.tensor(b), torch.tensor(0), q, kv)
        assert torch.equal(got, expected[b])
    grid = torch.vmap(torch.vmap(lambda qi, ki: mod(torch.tensor(1), torch.tensor(0), qi, ki)))(q, kv)
    assert torch.equal(grid, expected[1])


def test_block_mask_and_flex_attention_on_cpu_match_sdpa():
    d = random_durations(seed=11, batch=3, phonemes=9, high=6)
    d[2] = 0  # a silent row: its frames still see phoneme 0's window and earlier frames
    k = 1
    bm = dm.block_mask(d, k, BLOCK_SIZE=16)
    size = bm.shape[-1]
    dense = reference.sequence_mask(d, k, size - d.shape[1])
    assert tuple(bm.shape) == (3, 1, size, size)
    g = torch.Generator().manual_seed(3)
    q, key, v = (torch.randn(3, 2, size, 8, generator=g) for _ in range(3))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        out = flex_attention(q, key, v, block_mask=bm)
    ref = torch.nn.functional.scaled_dot_product_attention(q, key, v, attn_mask=dense[:, None])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # the block mask built by hand from the mask_mod agrees with the helper
    again = create_block_mask(dm.flex_mask_mod(d, k), 3, None, size, size, device="cpu", BLOCK_SIZE=16)
    assert torch.equal(again.to_dense(), bm.to_dense())


def test_errors_name_argument_and_index():
    with pytest.raises(TensorError, match=r"durations.*-2 at \[1, 0\]"):
        dm.dense_mask(torch.tensor([[1, 1], [-2, 1]]), k=0)
    with pytest.raises(TensorError, match=r"durations.*sum 5 at row \[1\]"):
        dm.dense_mask(torch.tensor([[1, 1], [2, 3]]), k=0, num_frames=4)
    with pytest.raises(InvalidArgumentError, match=r"^k: .* >= 0, got -1"):
        dm.dense_mask(torch.tensor([[1]]), k=-1)
    with pytest.raises(TensorError, match=r"durations: expected a 2-D"):
        dm.dense_mask(torch.tensor([1, 2]), k=0)
    with pytest.raises(TensorError, match=r"durations: expected an integer dtype"):
        dm.dense_mask(torch.tensor([[1.0]]), k=0)
    with pytest.raises(InvalidArgumentError, match=r"^num_frames:"):
        dm.dense_mask(torch.tensor([[1]]), k=0, num_frames=-1)
    with pytest.raises(InvalidArgumentError, match=r"^dtype:"):
        dm.additive_bias(torch.tensor([[1]]), k=0, dtype=torch.int32)
