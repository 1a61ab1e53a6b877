"""Greedy (best-path) CTC decoding: argmax per frame, merge repeats, drop blanks."""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from speechdecode import _tensors
from speechdecode._deprecation import renamed
from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.decoding.protocol import OneUtterance
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.ctc_greedy import ctc_greedy_packed

__all__ = ["GreedyCtcDecoder", "GreedyCtcStream", "GreedyHypothesis", "ctc_greedy", "ctc_greedy_packed"]


class GreedyHypothesis(NamedTuple):
    """One utterance's greedy decoding.

    tokens: int64 [N] label ids, blanks and repeats removed.
    token_frames: int64 [N] the first frame of the run of frames that emitted each token.
    Both are numpy arrays when the input was numpy, else tensors on the input's device.
    """

    tokens: np.ndarray | torch.Tensor
    token_frames: np.ndarray | torch.Tensor

    @property
    def frames(self) -> np.ndarray | torch.Tensor:
        """Deprecated alias of :attr:`token_frames` (the name every decoder's result uses)."""
        renamed("GreedyHypothesis.frames", "token_frames")
        return self.token_frames


def ctc_greedy(
    log_probs, lengths=None, blank: int = 0, *, backend: str | None = None, num_threads: int | None = None
) -> list[GreedyHypothesis]:
    """Greedy CTC decoding of a batch.

    Args:
        log_probs: [B, T, V] scores (log-probabilities or logits: only the argmax matters),
            float32, float16 or bfloat16, numpy or torch, CPU or CUDA, any strides.
            NaN or +inf inside ``lengths`` raises; -inf (log 0) is allowed.
        lengths: [B] integer frame counts (frames past them are ignored), or None for all T.
        blank: the blank label id.
        backend: "reference", "native" or "triton"; default: ``SPEECHDECODE_BACKEND`` or the
            fastest available for the input's device.
        num_threads: CPU threads of the native backend (default: all cores). One thread reads
            float32 scores at about the speed of a streaming read; more help where one thread
            cannot use the memory bandwidth.

    The native float32 argmax uses AVX-512 or AVX2 when the CPU has them (checked at run
    time) and a portable loop elsewhere; ``SPEECHDECODE_CPU_ISA=avx512|avx2|portable`` forces
    one (an ISA the CPU lacks raises TensorError).

    Returns:
        One :class:`GreedyHypothesis` per utterance, in the input's framework and device.
        Ties between labels go to the lowest id (the first maximum).

    Raises:
        TensorError: wrong ndim/dtype, lengths out of [0, T], NaN/+inf scores (with position).
        InvalidArgumentError: blank outside [0, V).
        BackendUnavailableError: a forced backend that cannot run here.

    Example:
        >>> import numpy as np
        >>> x = np.log(np.eye(4, dtype=np.float32)[[1, 1, 0, 1, 2, 2]] + 1e-3)[None]
        >>> hyp = ctc_greedy(x)[0]
        >>> hyp.tokens.tolist(), hyp.token_frames.tolist()
        ([1, 1, 2], [0, 3, 4])
    """
    tokens, frames, offsets = ctc_greedy_packed(log_probs, lengths, blank, backend=backend, num_threads=num_threads)
    bounds = offsets.tolist()
    tokens = _tensors.like_input(tokens, log_probs)
    frames = _tensors.like_input(frames, log_probs)
    return [GreedyHypothesis(tokens[a:b], frames[a:b]) for a, b in itertools.pairwise(bounds)]


def _word_spans(pieces: Sequence[str], frames: Sequence[int], boundary: str | None):
    """Words and their (first, last) token frames; ``boundary`` pieces split words."""
    words, spans, current, first, last = [], [], "", -1, -1
    for piece, frame in zip(pieces, frames, strict=True):
        if boundary is not None and piece == boundary:
            if current:
                words.append(current)
                spans.append((first, last))
            current = ""
            continue
        if boundary is None:
            words.append(piece)
            spans.append((frame, frame))
            continue
        if not current:
            first = frame
        current += piece
        last = frame
    if current:
        words.append(current)
        spans.append((first, last))
    return tuple(words), tuple(spans)


class GreedyCtcDecoder:
    """:func:`ctc_greedy` as a :class:`~speechdecode.decoding.protocol.Decoder`.

    Args:
        tokens: the symbol of every label id (a sequence of strings, blank included), or an
            integer V when there are no symbols (hypotheses then have no words).
        blank: the blank id.
        word_boundary: the symbol that separates words (character models), or None when every
            token is a word.

    Hypotheses: ``score == am_score`` = the best path's log-probability (sum of each frame's
    maximum), ``lm_score`` 0, one hypothesis per utterance.

    Example:
        >>> dec = GreedyCtcDecoder(["-", "a", "b", "|"])
        >>> x = torch.log(torch.eye(4)[[1, 0, 1, 3, 2]] * 0.9 + 0.025)[None]
        >>> dec(x, torch.tensor([5]))[0][0].words
        ('aa', 'b')
    """

    def __init__(self, tokens: Sequence[str] | int, blank: int = 0, word_boundary: str | None = "|"):
        if isinstance(tokens, numbers.Integral) and not isinstance(tokens, bool):
            self.tokens = None
            self.vocab_size = int(tokens)
        elif isinstance(tokens, Sequence) and not isinstance(tokens, str) and all(isinstance(t, str) for t in tokens):
            self.tokens = list(tokens)
            self.vocab_size = len(self.tokens)
        else:
            raise InvalidArgumentError("tokens", "a sequence of symbols or an integer V", repr(tokens))
        if self.vocab_size < 1:
            raise InvalidArgumentError("tokens", "at least one label", self.vocab_size)
        self.blank = _tensors.label(blank, "blank", self.vocab_size)
        self.word_boundary = word_boundary

    def hypothesis(self, ids: Sequence[int], frames: Sequence[int], score: float) -> Hypothesis:
        """The :class:`Hypothesis` of a decoded label sequence."""
        words, spans = (), ()
        if self.tokens is not None:
            words, spans = _word_spans([self.tokens[i] for i in ids], frames, self.word_boundary)
        return Hypothesis(tuple(ids), words, score, score, 0.0, tuple(frames), spans)

    def __call__(self, log_probs, lengths=None) -> list[list[Hypothesis]]:
        x = _tensors.scores(log_probs, "log_probs", 3)
        if x.shape[2] != self.vocab_size:
            raise TensorError(
                "log_probs", f"[B, T, {self.vocab_size}] (V = the decoder's tokens)", _tensors._describe(x)
            )
        lens = _tensors.lengths(lengths, "lengths", x.shape[0], x.shape[1], x.device)
        hyps = ctc_greedy(x, lens, self.blank)
        best = x.max(dim=2).values.double()
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lens[:, None]
        scores = torch.where(valid, best, torch.zeros_like(best)).sum(dim=1).tolist()
        return [
            [self.hypothesis(h.tokens.tolist(), h.token_frames.tolist(), s)] for h, s in zip(hyps, scores, strict=True)
        ]

    def stream(self) -> GreedyCtcStream:
        """A stream for one utterance: ``accept(chunk [n, V])``, ``partial()``, ``finish()``."""
        return GreedyCtcStream(self)


class GreedyCtcStream(OneUtterance):
    """One utterance of a :class:`GreedyCtcDecoder`, fed in chunks (from :meth:`GreedyCtcDecoder.stream`)."""

    def __init__(self, decoder: GreedyCtcDecoder):
        self.decoder = decoder
        self.ids: list[int] = []
        self.token_frames: list[int] = []
        self.offset = 0
        self.last = -1
        self.score = 0.0

    def accept(self, chunk) -> None:
        """Consume frames [n, V]."""
        self._check_open()
        x = _tensors.scores(chunk, "chunk", 2)
        if x.shape[1] != self.decoder.vocab_size:
            raise TensorError("chunk", f"[n, {self.decoder.vocab_size}]", _tensors._describe(chunk))
        if x.shape[0] == 0:
            return
        hyp = ctc_greedy(x[None], None, self.decoder.blank)[0]
        ids, frames = hyp.tokens.tolist(), hyp.token_frames.tolist()
        if ids and frames[0] == 0 and ids[0] == self.last:  # continues the previous chunk's run
            ids, frames = ids[1:], frames[1:]
        self.ids += ids
        self.token_frames += [f + self.offset for f in frames]
        best = x.max(dim=1)
        self.last = int(best.indices[-1])
        self.score += float(best.values.double().sum())
        self.offset += x.shape[0]

    def partial(self) -> Hypothesis:
        """The best path of the frames so far."""
        self._check_open()
        return self.decoder.hypothesis(self.ids, self.token_frames, self.score)

    def finish(self) -> list[Hypothesis]:
        """The utterance's hypothesis (a list of one); ends the stream."""
        result = [self.partial()]
        self._end()
        return result

    def finalize(self) -> list[Hypothesis]:
        """Deprecated: :meth:`finish`, after which this stream started a new utterance."""
        renamed("GreedyCtcStream.finalize()", "finish()")
        result = self.finish()
        self.__init__(self.decoder)
        self._finished = False
        return result
