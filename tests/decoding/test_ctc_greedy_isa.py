"""ctc_greedy's float32 argmax: every CPU path (forced by SPEECHDECODE_CPU_ISA) against the reference.

The native backend picks AVX-512, AVX2 or a portable loop at run time; each path this CPU can
run is forced in turn, on vocabularies around the vector widths (8 and 16 lanes, two
accumulators), single frames, ties, -0.0 against +0.0, rows of -inf, and NaN / +inf anywhere.
"""

import itertools

import numpy as np
import pytest

from speechdecode import _backend
from speechdecode.decoding import ctc_greedy_packed
from speechdecode.errors import TensorError

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="needs the native extension")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


FLAGS = _cpu_flags()
ISAS = [
    pytest.param("portable"),
    pytest.param("avx2", marks=pytest.mark.skipif("avx2" not in FLAGS, reason="CPU without AVX2")),
    pytest.param("avx512", marks=pytest.mark.skipif("avx512f" not in FLAGS, reason="CPU without AVX-512")),
]
VOCABS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100, 511, 513]


def _native(x, lengths=None, blank=0):
    return [a.tolist() for a in ctc_greedy_packed(x, lengths, blank, backend="native", num_threads=1)]


def _reference(x, lengths=None, blank=0):
    return [a.tolist() for a in ctc_greedy_packed(x, lengths, blank, backend="reference")]


def _error(fn, *args):
    with pytest.raises(TensorError) as info:
        fn(*args)
    return str(info.value)


@pytest.mark.parametrize("isa", ISAS)
def test_random_rows_match_reference(isa, monkeypatch):
    monkeypatch.setenv("SPEECHDECODE_CPU_ISA", isa)
    rng = np.random.default_rng(17)
    for vocab in VOCABS:
        for frames in (1, 3, 40):
            x = rng.standard_normal((3, frames, vocab)).astype(np.float32)
            # Few distinct values: ties everywhere, the first maximum must win.
            x = np.round(x * 2) / 2
            lengths = rng.integers(0, frames + 1, size=3)
            blank = int(rng.integers(0, vocab))
            assert _native(x, lengths, blank) == _reference(x, lengths, blank), (vocab, frames)


@pytest.mark.parametrize("isa", ISAS)
def test_maximum_at_every_position_and_signed_zeros(isa, monkeypatch):
    monkeypatch.setenv("SPEECHDECODE_CPU_ISA", isa)
    for vocab in VOCABS:
        # Row t has its maximum at t % vocab, once alone and once tied with a later copy.
        frames = 2 * vocab
        x = np.full((1, frames, vocab), -3.0, dtype=np.float32)
        for t in range(frames):
            x[0, t, t % vocab] = 1.0
            if t >= vocab and t % vocab + 1 < vocab:
                x[0, t, vocab - 1] = 1.0
        assert _native(x, blank=vocab - 1) == _reference(x, blank=vocab - 1), vocab
        zeros = np.full((1, 1, vocab), -np.inf, dtype=np.float32)
        zeros[0, 0, vocab // 2 :] = 0.0
        zeros[0, 0, vocab // 2] = -0.0  # -0.0 == +0.0: the first one wins
        got = _native(zeros)
        assert got == _reference(zeros)
        assert got[0] == ([vocab // 2] if vocab // 2 != 0 else []), vocab


@pytest.mark.parametrize("isa", ISAS)
def test_rows_of_minus_inf(isa, monkeypatch):
    monkeypatch.setenv("SPEECHDECODE_CPU_ISA", isa)
    for vocab in VOCABS:
        x = np.full((2, 3, vocab), -np.inf, dtype=np.float32)
        x[1, 1, vocab - 1] = -1e30
        tokens, frames, offsets = _native(x, blank=vocab - 1)
        assert [tokens, frames, offsets] == _reference(x, blank=vocab - 1)
        # An all -inf frame's argmax is label 0 (the first of equal maxima).
        assert tokens[: offsets[1]] == ([0] if vocab > 1 else []), vocab


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bad", [np.nan, -np.nan, np.inf])
def test_invalid_scores_named_like_reference(isa, bad, monkeypatch):
    monkeypatch.setenv("SPEECHDECODE_CPU_ISA", isa)
    rng = np.random.default_rng(5)
    for vocab, position in itertools.product([1, 9, 17, 33, 65], ["first", "last", "middle"]):
        x = rng.standard_normal((2, 4, vocab)).astype(np.float32)
        v = {"first": 0, "last": vocab - 1, "middle": vocab // 2}[position]
        x[1, 2, v] = bad
        if vocab > 1:
            x[1, 2, (v + 1) % vocab] = np.nan  # a second bad score: the first one is named
        message = _error(_native, x)
        assert message == _error(_reference, x)
        first = min(v, (v + 1) % vocab) if vocab > 1 else v
        assert f"at [1, 2, {first}]" in message
        # Past the utterance's length the same score is ignored, as in the reference.
        assert _native(x, np.array([4, 2])) == _reference(x, np.array([4, 2]))


def test_unknown_or_missing_isa_is_an_error(monkeypatch):
    monkeypatch.setenv("SPEECHDECODE_CPU_ISA", "sse9")
    x = np.zeros((1, 2, 3), dtype=np.float32)
    message = _error(_native, x)
    assert "SPEECHDECODE_CPU_ISA" in message and "'sse9'" in message
