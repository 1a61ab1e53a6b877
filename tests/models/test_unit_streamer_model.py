"""UnitStreamer (LLaMA-Omni): units equal greedy CTC of the whole response, chunking, first-chunk latency."""

import pytest
import torch

from speechdecode.decoding import UnitCallbackError, ctc_greedy
from speechdecode.errors import TensorError
from speechdecode.models import TinyUnitHead, UnitStreamer

DIM, UNITS, LAMBDA = 16, 30, 5


def _hidden(batch, steps, seed=0):
    return torch.randn(batch, steps, DIM, generator=torch.Generator().manual_seed(seed))


def _oracle_units(head, hidden, lengths):
    """Greedy CTC of each row's whole upsampled response in one piece."""
    logits = head(hidden.repeat_interleave(LAMBDA, dim=1))
    return [h.tokens.tolist() for h in ctc_greedy(logits, lengths * LAMBDA, blank=UNITS)]


@pytest.mark.parametrize("chunk_size", [1, 7, 40])
@pytest.mark.parametrize("per_push", [1, 3])
def test_units_equal_greedy_ctc_of_the_whole_response(chunk_size, per_push):
    head = TinyUnitHead(DIM, UNITS, upsample=LAMBDA, seed=1)
    hidden, lengths = _hidden(3, 17), torch.tensor([17, 9, 1])
    got = [[] for _ in range(3)]
    calls = []

    def vocoder(row, units, index):
        calls.append((row, index, len(units)))
        got[row].extend(units.tolist())

    streamer = UnitStreamer(head, blank=UNITS, upsample=LAMBDA, chunk_size=chunk_size, vocoder=vocoder)
    for start in range(0, 17, per_push):
        n = min(per_push, 17 - start)
        streamer.accept(hidden[:, start : start + n], (lengths - start).clamp(0, n))
    streamer.finish()
    want = _oracle_units(head, hidden, lengths)
    assert got == want and len(want[0]) > 17
    for row in range(3):
        sizes = [size for r, _, size in calls if r == row]
        assert [i for r, i, _ in calls if r == row] == list(range(len(sizes)))
        assert all(s == chunk_size for s in sizes[:-1]) and 0 < sizes[-1] <= chunk_size


def test_time_to_first_chunk_grows_with_chunk_size():
    head = TinyUnitHead(DIM, UNITS, upsample=LAMBDA, seed=2)
    hidden = _hidden(2, 40, seed=3)
    units = [head(hidden[:, :s].repeat_interleave(LAMBDA, dim=1)) for s in range(41)]
    first = {}
    for omega in (1, 5, 10, 20, 40, 80):
        streamer = UnitStreamer(head, blank=UNITS, upsample=LAMBDA, chunk_size=omega)
        for step in range(40):
            streamer.accept(hidden[:, step : step + 1])
        first[omega] = list(streamer.first_chunk_step)
        for row in range(2):  # independently: the first LLM step whose response has omega units
            counts = [len(ctc_greedy(units[s][row : row + 1], blank=UNITS)[0].tokens) if s else 0 for s in range(41)]
            want = next((s for s in range(41) if counts[s] >= omega), None)
            assert first[omega][row] == want
    for row in range(2):
        steps = [first[o][row] for o in (1, 5, 10, 20, 40)]
        assert steps == sorted(steps) and steps[0] == 1 and steps[-1] > steps[0]


def test_vocoder_error_names_the_chunk_and_nothing_is_lost():
    head = TinyUnitHead(DIM, UNITS, upsample=LAMBDA, seed=4)
    hidden = _hidden(1, 12, seed=5)
    got = []

    def vocoder(row, units, index):
        if index == 2 and not any(i == 2 for i, _ in got):
            got.append((2, None))
            raise OSError("audio device busy")
        got.append((index, units.tolist()))

    streamer = UnitStreamer(head, blank=UNITS, upsample=LAMBDA, chunk_size=4, vocoder=vocoder)
    with pytest.raises(UnitCallbackError, match=r"row 0, chunk 2: OSError: audio device busy") as info:
        streamer.accept(hidden)
    assert info.value.index == 2 and isinstance(info.value.__cause__, OSError)
    streamer.finish()
    indices = [i for i, _ in got]
    assert indices == list(range(len(indices))) and len(indices) > 3
    delivered = [u for _, units in got if units is not None for u in units]
    want = _oracle_units(head, hidden, torch.tensor([12]))[0]
    assert delivered == want[:8] + want[12:]  # chunk 2 (units 8..11) counts as delivered once


def test_bad_unit_head_output():
    streamer = UnitStreamer(lambda x: x[:, ::2], blank=0, upsample=LAMBDA)
    with pytest.raises(TensorError, match=r"unit head output \(logits\): expected .*\[B=2, n\*lambda=15, V\]"):
        streamer.accept(_hidden(2, 3))
    with pytest.raises(TensorError, match="hidden"):
        UnitStreamer(TinyUnitHead(DIM, UNITS, LAMBDA), blank=UNITS, upsample=LAMBDA).accept(torch.zeros(2, 3))
