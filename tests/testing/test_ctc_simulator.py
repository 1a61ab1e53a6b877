"""CtcPosteriorSimulator: normalization, determinism, recoverability, the confusion model, validation."""

import math
from itertools import pairwise

import numpy as np
import pytest

from speechdecode.decoding.metrics import edit_distance
from speechdecode.errors import InvalidArgumentError
from speechdecode.testing import CtcPosteriorSimulator
from speechdecode.testing import ctc_simulator as module


def greedy_collapse(log_probs: np.ndarray, length: int, blank: int) -> list[int]:
    """Best path by hand: argmax per frame, merge runs, drop blanks."""
    best = log_probs[:length].argmax(axis=-1)
    out, previous = [], None
    for k in best.tolist():
        if k != previous and k != blank:
            out.append(k)
        previous = k
    return out


def runs(alignment: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, start, stop) of each maximal run of equal frame labels."""
    edges = np.flatnonzero(np.diff(alignment)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(alignment)]])
    return [(int(alignment[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def random_sequences(rng, batch, vocab, blank, max_len=60, repeat_prob=0.3):
    """Label sequences avoiding blank, with deliberate immediate repeats."""
    labels = np.array([k for k in range(vocab) if k != blank])
    out = []
    for _ in range(batch):
        seq = []
        for _ in range(int(rng.integers(0, max_len + 1))):
            seq.append(seq[-1] if seq and rng.random() < repeat_prob else int(rng.choice(labels)))
        out.append(seq)
    return out


@pytest.mark.parametrize(("vocab", "blank"), [(2, 0), (7, 0), (40, 39), (513, 5)])
def test_frames_are_normalized_and_padding_is_uniform(vocab, blank):
    rng = np.random.default_rng(0)
    seqs = random_sequences(rng, 9, vocab, blank)
    log_probs, lengths = CtcPosteriorSimulator(vocab, blank=blank, seed=1).simulate(seqs)
    assert log_probs.dtype == np.float32 and lengths.dtype == np.int64
    assert log_probs.shape == (9, lengths.max(), vocab)
    x = log_probs.astype(np.float64)
    lse = np.log(np.exp(x).sum(axis=-1))
    for b, t in enumerate(lengths):
        np.testing.assert_allclose(lse[b, :t], 0.0, atol=1e-5)
        assert np.all(log_probs[b, :t] <= 0)
        assert np.all(log_probs[b, t:] == np.float32(-math.log(vocab)))
    assert np.any(lengths < lengths.max())


def test_same_seed_same_output_and_calls_advance():
    seqs = [[1, 2, 3], [4, 4], [], [5] * 10]
    a = CtcPosteriorSimulator(6, seed=3)
    b = CtcPosteriorSimulator(6, seed=3)
    first = a.simulate(seqs, return_alignment=True)
    again = b.simulate(seqs, return_alignment=True)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    for x, y in zip(first[2], again[2], strict=True):
        np.testing.assert_array_equal(x, y)
    second_a, second_b = a.simulate(seqs)[0], b.simulate(seqs)[0]
    np.testing.assert_array_equal(second_a, second_b)
    assert second_a.shape != first[0].shape or not np.array_equal(second_a, first[0])
    other = CtcPosteriorSimulator(6, seed=4).simulate(seqs)[0]
    assert other.shape != first[0].shape or not np.array_equal(other, first[0])


def test_threaded_fill_gives_the_same_arrays(monkeypatch):
    seqs = random_sequences(np.random.default_rng(5), 12, 30, 0, max_len=80)
    monkeypatch.setattr(module, "_THREADED_SIZE", 0)
    threaded = CtcPosteriorSimulator(30, seed=9).simulate(seqs)[0]
    monkeypatch.setattr(module, "_MAX_THREADS", 1)
    serial = CtcPosteriorSimulator(30, seed=9).simulate(seqs)[0]
    np.testing.assert_array_equal(threaded, serial)


@pytest.mark.parametrize(("vocab", "blank"), [(40, 0), (40, 17), (3, 2)])
def test_without_confusion_greedy_recovers_labels_with_repeats(vocab, blank):
    rng = np.random.default_rng(2)
    seqs = random_sequences(rng, 30, vocab, blank)
    seqs[0] = [k for k in range(vocab) if k != blank][:1] * 5
    seqs[1] = []
    assert sum(a == b for s in seqs for a, b in pairwise(s)) > 50
    sim = CtcPosteriorSimulator(vocab, blank=blank, seed=7, confusion=0.0, peak=12.0, noise=1.0)
    log_probs, lengths = sim.simulate(seqs)
    for b, seq in enumerate(seqs):
        assert greedy_collapse(log_probs[b], lengths[b], blank) == list(seq)


def test_alignment_matches_lengths_and_collapses_to_labels():
    rng = np.random.default_rng(3)
    seqs = random_sequences(rng, 40, 25, 0, max_len=100)
    seqs.append([])
    _, lengths, alignments = CtcPosteriorSimulator(25, seed=2).simulate(seqs, return_alignment=True)
    assert [len(a) for a in alignments] == lengths.tolist()
    assert lengths[-1] >= 1 and np.all(alignments[-1] == 0)
    tokens = frames = blank_frames = blank_slots = 0
    for seq, alignment in zip(seqs, alignments, strict=True):
        assert alignment.dtype == np.int64
        assert [label for label, _, _ in runs(alignment) if label != 0] == list(seq)
        tokens += len(seq)
        frames += int(np.sum(alignment != 0))
        blank_frames += int(np.sum(alignment == 0))
        blank_slots += len(seq) + 1
    # Means of 1 + Poisson(2) and Poisson(1.5) (plus the forced blanks between repeats).
    assert 2.85 < frames / tokens < 3.15
    assert 1.45 < blank_frames / blank_slots < 1.75


def test_alignment_does_not_depend_on_score_parameters():
    seqs = random_sequences(np.random.default_rng(4), 10, 20, 0)
    reference = CtcPosteriorSimulator(20, seed=5).simulate(seqs, return_alignment=True)[2]
    for kwargs in ({"peak": 2.0}, {"noise": 0.0}, {"confusion": 0.5}, {"num_labels": 64}):
        args = {"num_labels": 20, **kwargs}
        other = CtcPosteriorSimulator(**args, seed=5).simulate(seqs, return_alignment=True)[2]
        assert all(np.array_equal(x, y) for x, y in zip(reference, other, strict=True))


def test_confusions_are_systematic_at_the_configured_rate():
    rate, vocab = 0.2, 30
    sim = CtcPosteriorSimulator(vocab, seed=11, confusion=rate, peak=16.0, noise=1.0)
    seqs = random_sequences(np.random.default_rng(6), 100, vocab, 0, max_len=80)
    log_probs, lengths, alignments = sim.simulate(seqs, return_alignment=True)
    confused, total, seen = 0, 0, {}
    for b, alignment in enumerate(alignments):
        order = np.argsort(-log_probs[b, : lengths[b]], axis=-1, kind="stable")
        for label, start, stop in runs(alignment):
            if label == 0:
                assert np.all(order[start:stop, 0] == 0)
                continue
            total += 1
            peaks = set(order[start:stop, 0].tolist())
            assert len(peaks) == 1, "all frames of a token peak on the same label"
            peak = peaks.pop()
            if peak != label:
                confused += 1
                assert np.all(order[start:stop, 1] == label), "the true label comes second"
                assert seen.setdefault(label, peak) == peak, "each label has one confusable neighbour"
                assert peak != 0
    sigma = math.sqrt(rate * (1 - rate) / total)
    assert total > 3000 and abs(confused / total - rate) < 4 * sigma
    assert len(seen) > 20
    assert all(sim.confusable[label] == peak for label, peak in seen.items())
    # Greedy decoding errs on about the same share of tokens (substitutions, or merges into a neighbour).
    edits = sum(edit_distance(seq, greedy_collapse(log_probs[b], lengths[b], 0)) for b, seq in enumerate(seqs))
    assert abs(edits / total - rate) < 0.03


def test_confusable_is_a_fixed_other_label():
    sim = CtcPosteriorSimulator(50, blank=7, seed=1)
    c = sim.confusable
    assert c.dtype == np.int64 and c.shape == (50,)
    assert c[7] == 7
    others = np.delete(np.arange(50), 7)
    assert np.all(c[others] != others) and np.all(c[others] != 7)
    assert len(set(c[others].tolist())) > 20
    np.testing.assert_array_equal(c, CtcPosteriorSimulator(50, blank=7, seed=1, confusion=0.9).confusable)
    with pytest.raises(ValueError, match="read-only"):
        c[0] = 1
    assert np.array_equal(CtcPosteriorSimulator(2, blank=1).confusable, [0, 1])


def test_empty_batch():
    log_probs, lengths = CtcPosteriorSimulator(5).simulate([])
    assert log_probs.shape == (0, 0, 5) and lengths.shape == (0,)


@pytest.mark.parametrize(
    ("seqs", "message"),
    [
        ([[1], [2], [3, 9]], r"label_sequences\[2\].*got 9 at position 1"),
        ([[1], [-1]], r"label_sequences\[1\].*got -1 at position 0"),
        ([[1, 2, 0]], r"label_sequences\[0\].*other than blank 0.*got 0 at position 2"),
        ([[1], [1.5]], r"label_sequences\[1\].*integer"),
        ([[[1, 2]]], r"label_sequences\[0\].*1-D"),
    ],
)
def test_bad_labels_name_the_utterance(seqs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        CtcPosteriorSimulator(5).simulate(seqs)


def test_labels_may_be_zero_when_blank_is_not():
    log_probs, lengths = CtcPosteriorSimulator(4, blank=3, confusion=0.0, peak=12.0).simulate([np.array([0, 0, 2])])
    assert greedy_collapse(log_probs[0], lengths[0], 3) == [0, 0, 2]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"num_labels": 1}, "num_labels"),
        ({"num_labels": 4, "blank": 4}, "blank"),
        ({"num_labels": 4, "blank": -1}, "blank"),
        ({"num_labels": 4, "seed": -2}, "seed"),
        ({"num_labels": 4, "frames_per_token": 0.5}, "frames_per_token"),
        ({"num_labels": 4, "blank_frames": -0.1}, "blank_frames"),
        ({"num_labels": 4, "confusion": 1.5}, "confusion"),
        ({"num_labels": 4, "peak": float("nan")}, "peak"),
        ({"num_labels": 4, "noise": -1.0}, "noise"),
        ({"num_labels": 4.0}, "num_labels"),
    ],
)
def test_bad_constructor_arguments(kwargs, argument):
    with pytest.raises(InvalidArgumentError, match=f"^{argument}: expected"):
        CtcPosteriorSimulator(**kwargs)
