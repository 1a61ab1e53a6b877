"""A seeded stand-in for a CTC acoustic model: label sequences in, frame log-posteriors out.

No acoustic-model weights can be downloaded where this project is built, so decoders are tested,
demonstrated and benchmarked on posteriors simulated from known transcripts. The errors in them
are systematic (each label has one confusable neighbour), so an LM or lexicon can repair them,
as with a real model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from speechdecode import _args
from speechdecode.errors import InvalidArgumentError

__all__ = ["CtcPosteriorSimulator"]

# numpy releases the GIL while it fills and reduces arrays, so big batches run one utterance per thread.
_MAX_THREADS = 16
_THREADED_SIZE = 1 << 22


class CtcPosteriorSimulator:
    """Simulated CTC log-posteriors for given label sequences.

    The model of the data, per utterance with labels ``l_1 .. l_N`` (none of them blank):

    * Alignment: a blank run, then token 1, a blank run, token 2, ..., token N, a blank run. Token
      ``i`` lasts ``1 + Poisson(frames_per_token - 1)`` frames; each blank run (leading, between,
      trailing) lasts ``Poisson(blank_frames)`` frames, except that a run between two equal
      consecutive labels lasts at least one frame (so the labels stay recoverable by collapsing
      repeats), and an utterance with no labels has at least one frame.
    * Confusions: with probability ``confusion``, all frames of a token peak on the label's
      *confusable neighbour* instead of on the label; the true label then comes second, with half
      the peak margin. Each non-blank label has one fixed neighbour, another non-blank label drawn
      from the seed (:attr:`confusable`), so errors repeat like a real model's. With a single
      non-blank label there is nothing to confuse it with, and ``confusion`` has no effect.
    * Scores: logits are ``noise * N(0, 1)`` per (frame, label), plus ``peak`` on the frame's peak
      label (blank on blank frames) and ``peak / 2`` on the true label of a confused frame; each
      frame is then log-softmax normalized. The argmax of a frame is its peak label unless noise
      overcomes the margin, which becomes likely when ``peak / noise`` is small and the vocabulary
      large (with the defaults and V = 512, about 0.3% of frames).

    The alignment (durations, blank runs, which tokens are confused) is drawn for the whole batch
    before any noise, so it depends only on the seed, the call history and the label sequences,
    not on ``num_labels``, ``peak``, ``noise`` or ``confusion``. Each utterance's noise comes from
    its own generator seeded from the simulator's, so large batches are filled on several threads
    with results independent of the thread count.

    Args:
        num_labels: V, the number of labels including blank; >= 2.
        blank: the blank label id, in [0, V).
        seed: seeds the simulator's random generator (numpy ``default_rng``). An instance keeps
            its generator: successive :meth:`simulate` calls give different draws, and a fresh
            instance with the same seed repeats the same sequence of calls exactly.
        frames_per_token: mean token duration in frames, >= 1.
        blank_frames: mean length of a blank run in frames, >= 0.
        confusion: probability that a token is confused, in [0, 1].
        peak: logit margin of a frame's peak label, >= 0.
        noise: standard deviation of the Gaussian logit noise, >= 0.

    Raises:
        InvalidArgumentError: an argument out of the ranges above (names it and the value).

    Example:
        >>> sim = CtcPosteriorSimulator(num_labels=5, seed=0, confusion=0.0, peak=12.0)
        >>> log_probs, lengths = sim.simulate([[1, 1, 2], [3]])
        >>> log_probs.shape[0], log_probs.dtype, lengths.dtype
        (2, dtype('float32'), dtype('int64'))
        >>> best = log_probs[0, : lengths[0]].argmax(-1)
        >>> [int(k) for i, k in enumerate(best) if k != 0 and (i == 0 or k != best[i - 1])]
        [1, 1, 2]
    """

    def __init__(
        self,
        num_labels: int,
        blank: int = 0,
        seed: int = 0,
        frames_per_token: float = 3.0,
        blank_frames: float = 1.5,
        confusion: float = 0.05,
        peak: float = 6.0,
        noise: float = 1.0,
    ):
        self.num_labels = _args.integer(num_labels, "num_labels", 2)
        self.blank = _args.integer(blank, "blank", 0, self.num_labels - 1)
        self.seed = _args.integer(seed, "seed", 0)
        self.frames_per_token = _args.real(frames_per_token, "frames_per_token", low=1.0)
        self.blank_frames = _args.real(blank_frames, "blank_frames", low=0.0)
        self.confusion = _args.interval(confusion, "confusion", 0.0, 1.0)
        self.peak = _args.real(peak, "peak", low=0.0)
        self.noise = _args.real(noise, "noise", low=0.0)
        confusable_seed, simulation_seed = np.random.SeedSequence(self.seed).spawn(2)
        self._rng = np.random.default_rng(simulation_seed)
        self._confusable = self._draw_confusable(np.random.default_rng(confusable_seed))

    @property
    def confusable(self) -> np.ndarray:
        """int64 [V], read-only: each label's confusable neighbour (``confusable[blank] == blank``)."""
        return self._confusable

    def _draw_confusable(self, rng: np.random.Generator) -> np.ndarray:
        labels = np.delete(np.arange(self.num_labels, dtype=np.int64), self.blank)
        confusable = np.arange(self.num_labels, dtype=np.int64)
        k = len(labels)
        if k >= 2:
            r = rng.integers(0, k - 1, size=k)
            r += r >= np.arange(k)  # skip the label itself
            confusable[labels] = labels[r]
        confusable.flags.writeable = False
        return confusable

    def _check(self, b: int, sequence: Sequence[int]) -> np.ndarray:
        argument = f"label_sequences[{b}]"
        array = np.asarray(sequence)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise InvalidArgumentError(
                argument, "a 1-D sequence of integer labels", f"{array.dtype} of shape {array.shape}"
            )
        array = array.astype(np.int64, copy=False)
        bad = np.flatnonzero((array < 0) | (array >= self.num_labels) | (array == self.blank))
        if bad.size:
            i = int(bad[0])
            raise InvalidArgumentError(
                argument,
                f"labels in [0, {self.num_labels}) other than blank {self.blank}",
                f"{int(array[i])} at position {i}",
            )
        return array

    def _align(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(true label per frame, peak label per frame) for one utterance."""
        rng, n = self._rng, len(labels)
        durations = 1 + rng.poisson(self.frames_per_token - 1.0, size=n)
        gaps = rng.poisson(self.blank_frames, size=n + 1)
        confused = rng.random(n) < self.confusion
        if n > 1:
            inner = gaps[1:-1]
            inner[(labels[1:] == labels[:-1]) & (inner == 0)] = 1
        if n == 0:
            gaps[0] = max(gaps[0], 1)
        segment_labels = np.full(2 * n + 1, self.blank, dtype=np.int64)
        segment_labels[1::2] = labels
        segment_peaks = segment_labels.copy()
        segment_peaks[1::2] = np.where(confused, self._confusable[labels], labels)
        segment_lengths = np.empty(2 * n + 1, dtype=np.int64)
        segment_lengths[0::2] = gaps
        segment_lengths[1::2] = durations
        return np.repeat(segment_labels, segment_lengths), np.repeat(segment_peaks, segment_lengths)

    def simulate(self, label_sequences: Sequence[Sequence[int]], return_alignment: bool = False):
        """Simulate a batch.

        Args:
            label_sequences: B label sequences (lists, tuples or 1-D integer arrays; may be empty),
                labels in [0, V) and not blank.
            return_alignment: also return the intended frame labels.

        Returns:
            ``(log_probs, lengths)``, or ``(log_probs, lengths, alignments)`` with
            ``return_alignment=True``:

            * log_probs: float32 [B, T_max, V], each frame log-softmax normalized; frames at or
              past ``lengths[b]`` hold the uniform distribution ``-log V``.
            * lengths: int64 [B], frames per utterance; ``T_max = max(lengths)`` (0 for B = 0).
            * alignments: B int64 arrays [lengths[b]], the true label of each frame (blank on
              blank frames; the true label, not the confused one, on confused frames). Collapsing
              repeats and dropping blanks gives back the label sequence.

        Raises:
            InvalidArgumentError: a sequence that is not 1-D integer, or a label out of range or
                equal to blank; the message names ``label_sequences[b]``, the value and its position.

        Example:
            >>> sim = CtcPosteriorSimulator(num_labels=3, seed=1)
            >>> _, lengths, alignments = sim.simulate([[2, 2]], return_alignment=True)
            >>> len(alignments[0]) == lengths[0] and 0 in alignments[0][1:-1].tolist()
            True
        """
        labels = [self._check(b, seq) for b, seq in enumerate(label_sequences)]
        aligned = [self._align(lab) for lab in labels]
        noise_seeds = self._rng.integers(0, 2**63, size=len(labels), dtype=np.int64)
        lengths = np.array([len(true) for true, _ in aligned], dtype=np.int64)
        batch, vocab = len(labels), self.num_labels
        log_probs = np.empty((batch, int(lengths.max()) if batch else 0, vocab), dtype=np.float32)

        def fill(b: int) -> None:
            true, peaks = aligned[b]
            t = len(true)
            x = log_probs[b, :t]
            if self.noise > 0:
                np.random.default_rng(noise_seeds[b]).standard_normal(out=x, dtype=np.float32)
                x *= np.float32(self.noise)
            else:
                x.fill(0.0)
            x[np.arange(t), peaks] += np.float32(self.peak)
            confused = np.flatnonzero(peaks != true)
            x[confused, true[confused]] += np.float32(self.peak / 2)
            x -= x.max(axis=1, keepdims=True)
            x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
            log_probs[b, t:] = np.float32(-math.log(vocab))

        workers = min(batch, os.cpu_count() or 1, _MAX_THREADS)
        if workers > 1 and log_probs.size >= _THREADED_SIZE:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(fill, range(batch)))
        else:
            for b in range(batch):
                fill(b)
        if return_alignment:
            return log_probs, lengths, [true for true, _ in aligned]
        return log_probs, lengths
