"""CtcUnitStreamer: streamed chunks against whole-sequence greedy decoding and an O(N^2) re-decode."""

import doctest

import numpy as np
import pytest
import torch

from speechdecode.decoding import ctc_greedy
from speechdecode.decoding import unit_streamer as unit_streamer_module
from speechdecode.decoding.unit_streamer import CtcUnitStreamer, UnitCallbackError
from speechdecode.errors import InvalidArgumentError, SpeechdecodeError, TensorError

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def peaky_logits(rng, batch, frames, vocab, blank):
    """Logits whose argmax follows runs: long blank runs, repeated units, units back to back."""
    x = rng.standard_normal((batch, frames, vocab)).astype(np.float32)
    winners = np.empty((batch, frames), dtype=np.int64)
    for b in range(batch):
        t = 0
        while t < frames:
            run = int(rng.integers(1, 6))
            winners[b, t : t + run] = blank if rng.random() < 0.4 else int(rng.integers(0, vocab))
            t += run
    np.put_along_axis(x, winners[..., None], 6.0, axis=2)
    return x


def redecode_reference(scores: np.ndarray, blank: int, chunk_size: int, cuts: list[int]) -> list[list[int]]:
    """LLaMA-Omni's way for one row: after each push, re-decode every frame so far (O(N^2)),
    emit the full chunks of units not yet emitted; flush the rest at the end."""
    chunks, emitted = [], 0
    for end in [*cuts, scores.shape[0]]:
        units = []
        previous = None
        for frame in scores[:end].tolist():
            best = frame.index(max(frame))
            if best != previous and best != blank:
                units.append(best)
            previous = best
        while len(units) - emitted >= chunk_size:
            chunks.append(units[emitted : emitted + chunk_size])
            emitted += chunk_size
    if emitted < len(units):
        chunks.append(units[emitted:])
    return chunks


def random_cuts(rng, frames: int) -> list[int]:
    """Sorted push boundaries, with repeats (empty pushes) and neighbours (one-frame pushes)."""
    cuts = rng.integers(0, frames + 1, size=int(rng.integers(0, 12))).tolist()
    cuts += [c + 1 for c in cuts[:3] if c < frames] + cuts[:2]
    return sorted(cuts)


def collect(stream_chunks: list[tuple[int, list[int], int]], batch: int) -> list[list[list[int]]]:
    per_row: list[list[list[int]]] = [[] for _ in range(batch)]
    for row, units, index in stream_chunks:
        assert index == len(per_row[row]), "chunk indices run 0, 1, 2, ... per row, in order"
        per_row[row].append(units)
    return per_row


@pytest.mark.parametrize("seed", range(12))
def test_chunks_match_whole_sequence_and_redecode(seed, backend_device):
    backend, device = backend_device
    rng = np.random.default_rng(seed)
    batch, frames, vocab = int(rng.integers(1, 5)), int(rng.integers(0, 90)), int(rng.integers(2, 9))
    blank, chunk_size = int(rng.integers(0, vocab)), int(rng.choice([1, 2, 3, 7, 40]))
    x = peaky_logits(rng, batch, frames, vocab, blank)
    cuts = random_cuts(rng, frames)
    got = []
    streamer = CtcUnitStreamer(
        blank, chunk_size, on_chunk=lambda r, u, i: got.append((r, u.tolist(), i)), backend=backend
    )
    returned = []
    xt = torch.from_numpy(x).to(device)
    for a, b in zip([0, *cuts], [*cuts, frames], strict=True):
        returned += streamer.accept(xt[:, a:b])
    returned += streamer.finish()
    assert [(c.row, c.units.tolist(), c.index) for c in returned] == got
    assert all(c.units.device.type == device and c.units.dtype == torch.int64 for c in returned)
    per_row = collect(got, batch)
    for b, hyp in enumerate(ctc_greedy(x, blank=blank)):
        chunks = per_row[b]
        assert [u for chunk in chunks for u in chunk] == hyp.tokens.tolist()
        assert all(len(chunk) == chunk_size for chunk in chunks[:-1])
        assert not chunks or 1 <= len(chunks[-1]) <= chunk_size
        assert chunks == redecode_reference(x[b], blank, chunk_size, cuts)


@pytest.mark.parametrize("seed", range(6))
def test_per_row_lengths(seed):
    """Rows fed unequal frame counts per push (0 for a row with nothing new) decode like whole rows."""
    rng = np.random.default_rng(100 + seed)
    batch, frames, vocab, blank, chunk_size = 4, 60, 5, int(rng.integers(0, 5)), int(rng.integers(1, 6))
    x = peaky_logits(rng, batch, frames, vocab, blank)
    fed = np.zeros(batch, dtype=np.int64)
    got = []
    streamer = CtcUnitStreamer(blank, chunk_size, on_chunk=lambda r, u, i: got.append((r, u.tolist(), i)))
    while (fed < frames).any():
        step = np.minimum(rng.integers(0, 8, size=batch), frames - fed)
        width = int(step.max())
        block = rng.standard_normal((batch, width, vocab)).astype(np.float32) * 100  # padding: ignored
        for b in range(batch):
            block[b, : step[b]] = x[b, fed[b] : fed[b] + step[b]]
        chunks = streamer.accept(block, lengths=step)
        assert all(isinstance(c.units, np.ndarray) for c in chunks)
        fed += step
    streamer.finish()
    per_row = collect(got, batch)
    for b, hyp in enumerate(ctc_greedy(x, blank=blank)):
        assert [u for chunk in per_row[b] for u in chunk] == hyp.tokens.tolist()


def test_boundaries_inside_runs_and_blank_runs():
    eye = np.eye(3, dtype=np.float32)
    streamer = CtcUnitStreamer(blank=0, chunk_size=10)
    streamer.accept(eye[[1, 1]][None])
    streamer.accept(eye[[1]][None])  # same run of 1 continues: nothing new
    assert streamer.pending(0) == [1]
    streamer.accept(eye[[0]][None])
    streamer.accept(eye[[0, 1]][None])  # blank run split, then 1 again: a new unit
    streamer.accept(eye[[2]][None])
    streamer.accept(eye[[]].reshape(1, 0, 3))
    streamer.accept(eye[[2, 2, 1]][None])
    assert streamer.pending(0) == [1, 1, 2, 1]
    assert [c.units.tolist() for c in streamer.finish(0)] == [[1, 1, 2, 1]]
    streamer.accept(eye[[1]][None])  # after finish the row starts afresh: 1 is new
    assert streamer.pending(0) == [1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_half_precision_inputs(dtype):
    rng = np.random.default_rng(7)
    x = peaky_logits(rng, 2, 50, 6, blank=5)
    xt = torch.from_numpy(x).to(dtype)
    streamer = CtcUnitStreamer(blank=5, chunk_size=4)
    chunks = [c for a in range(0, 50, 3) for c in streamer.accept(xt[:, a : a + 3])] + streamer.finish()
    for b, hyp in enumerate(ctc_greedy(xt, blank=5)):
        assert torch.cat([c.units for c in chunks if c.row == b]).tolist() == hyp.tokens.tolist()


def test_callback_order_and_indices():
    eye = np.eye(4, dtype=np.float32)
    calls = []
    streamer = CtcUnitStreamer(blank=0, chunk_size=2, on_chunk=lambda r, u, i: calls.append((r, u.tolist(), i)))
    # row 0: 1 2 3 1 2 -> two chunks now; row 1: 3 -> none
    x = np.stack([eye[[1, 2, 3, 1, 2]], eye[[0, 3, 3, 0, 0]]])
    returned = streamer.accept(x)
    assert calls == [(0, [1, 2], 0), (0, [3, 1], 1)]
    assert [(c.row, c.units.tolist(), c.index) for c in returned] == calls
    streamer.accept(np.stack([eye[[3]], eye[[2]]]))
    assert calls[2:] == [(0, [2, 3], 2), (1, [3, 2], 0)]
    assert streamer.finish() == []  # nothing left in either row
    assert len(calls) == 4


def test_callback_error_keeps_state_consistent():
    eye = np.eye(4, dtype=np.float32)
    calls = []

    def vocoder(row, units, index):
        calls.append((row, units.tolist(), index))
        if len(calls) == 2:
            raise OSError("vocoder busy")

    streamer = CtcUnitStreamer(blank=0, chunk_size=1, on_chunk=vocoder)
    with pytest.raises(UnitCallbackError, match=r"row 0, chunk 1: OSError: vocoder busy") as info:
        streamer.accept(eye[[1, 2, 3]][None])
    error = info.value
    assert isinstance(error, RuntimeError) and isinstance(error, SpeechdecodeError)
    assert (error.row, error.index) == (0, 1)
    assert isinstance(error.__cause__, OSError)
    assert streamer.undelivered == 1  # chunk 2 ([3]) is queued, not lost
    # The 3 at the next push's first frame continues the run: not a new unit.
    streamer.accept(eye[[3, 2]][None])
    assert calls == [(0, [1], 0), (0, [2], 1), (0, [3], 2), (0, [2], 3)]
    assert streamer.undelivered == 0


def test_finish_single_row_and_torch_output():
    eye = torch.eye(3)
    streamer = CtcUnitStreamer(blank=0, chunk_size=3, batch_size=2)
    streamer.accept(torch.stack([eye[[1, 2]], eye[[2, 0]]]))
    last = streamer.finish(1)
    assert [(c.row, c.units.tolist(), c.index) for c in last] == [(1, [2], 0)]
    assert isinstance(last[0].units, torch.Tensor)
    assert streamer.pending(0) == [1, 2] and streamer.pending(1) == []
    assert [(c.row, c.units.tolist(), c.index) for c in streamer.finish()] == [(0, [1, 2], 0)]
    assert streamer.batch_size == 2  # given at construction: kept


def test_errors():
    x = np.zeros((2, 3, 4), dtype=np.float32)
    with pytest.raises(InvalidArgumentError, match="chunk_size"):
        CtcUnitStreamer(blank=0, chunk_size=0)
    with pytest.raises(InvalidArgumentError, match="blank"):
        CtcUnitStreamer(blank=-1)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        CtcUnitStreamer(blank=0, batch_size=0)
    streamer = CtcUnitStreamer(blank=4)
    with pytest.raises(InvalidArgumentError, match=r"blank: expected a label id in \[0, 4\), got 4"):
        streamer.accept(x)
    assert streamer.batch_size is None  # a rejected push changes nothing
    streamer = CtcUnitStreamer(blank=0)
    with pytest.raises(TensorError, match="3-D"):
        streamer.accept(x[0])
    with pytest.raises(TensorError, match="dtype"):
        streamer.accept(x.astype(np.float64))
    with pytest.raises(TensorError, match="lengths"):
        streamer.accept(x, lengths=[4, 0])
    streamer.accept(x)
    with pytest.raises(InvalidArgumentError, match="batch size 2"):
        streamer.accept(np.zeros((3, 1, 4), dtype=np.float32))
    with pytest.raises(InvalidArgumentError, match="row"):
        streamer.finish(2)
    with pytest.raises(TensorError, match=r"NaN at \[0, 0, 0\]"):
        streamer.accept(np.full((2, 1, 4), np.nan, dtype=np.float32))
    streamer.finish()
    assert streamer.accept(np.zeros((3, 1, 4), dtype=np.float32)) == []  # finish() forgot the inferred B
    fixed = CtcUnitStreamer(blank=0, batch_size=2)
    with pytest.raises(InvalidArgumentError, match="batch size 2"):
        fixed.accept(np.zeros((1, 1, 4), dtype=np.float32))


def test_docstring_example():
    result = doctest.testmod(unit_streamer_module, raise_on_error=True)
    assert result.attempted > 0 and result.failed == 0
