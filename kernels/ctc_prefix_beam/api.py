"""CTC prefix beam search's backend dispatch: native (C++), reference (plain Python) and Triton.

:class:`speechdecode.decoding.CtcPrefixBeamSearch` checks the arguments and calls these; the
search itself is defined by :mod:`speechdecode.kernels.ctc_prefix_beam.reference`.
``pieces`` is :func:`speechdecode.decoding.text.token_pieces` of the tokens; ``options`` is the
search's options as keyword arguments of :class:`~.reference.PrefixBeamSearch`.
"""

from __future__ import annotations

import math

import numpy as np

from speechdecode import _backend
from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.decoding.text import spell

__all__ = ["decode", "decode_triton", "native_search", "open_stream"]


def native_search(pieces, blank: int, options: dict):
    """The C++ search (csrc/decoding/ctc_prefix_beam_search.h) of these tokens and options."""
    lm = options["lm"]
    skip = options["blank_skip_threshold"]
    return _backend.native().CtcPrefixBeamSearch(
        [chars for _, chars in pieces],
        [int(starts) for starts, _ in pieces],
        [(list(p), w) for p, w in options["hotwords"]],
        None if lm is None else lm._native,
        blank=blank,
        alpha=options["alpha"],
        beta=options["beta"],
        beam=options["beam"],
        token_topk=options["token_topk"],
        beam_threshold=options["beam_threshold"],
        token_min_logp=options["token_min_logp"],
        partial_word_lm=options["partial_word_lm"],
        unk_score_offset=options["unk_score_offset"],
        blank_skip_threshold=math.inf if skip is None else skip,
        viterbi=options["viterbi"],
        recombine=options["recombine"],
        score_boundary=options["score_boundary"],
        extend_best_token=options["extend_best_token"],
        lexicon=[(list(spelling), word) for spelling, word in options["lexicon"] or ()],
    )


def decode(native, pieces, blank: int, options: dict, log_probs: np.ndarray, lengths: np.ndarray, nbest: int,
           num_threads: int | None) -> list[list[Hypothesis]]:  # fmt: skip
    """The ranked ``nbest`` hypotheses of each utterance of float32 log_probs [B, T, V]: by the
    native search when ``native`` is one, else by the reference."""
    if native is not None:
        results = native.decode(log_probs, lengths, nbest, num_threads or 0)
        return [[Hypothesis(*h) for h in ranked] for ranked in results]
    from speechdecode.kernels.ctc_prefix_beam import reference

    return reference.ctc_prefix_beam_search(log_probs, lengths.tolist(), pieces, blank, nbest, **options)


def decode_triton(log_probs, lengths, pieces, blank: int, options: dict, nbest: int) -> list[list[Hypothesis]]:
    """The batched GPU search (no LM, lexicon, hotwords, blank skip, viterbi or extend_best_token)."""
    from speechdecode.kernels.ctc_prefix_beam.triton import prefix_beam_search

    results = prefix_beam_search(
        log_probs, lengths, blank=blank, beam=options["beam"], token_topk=options["token_topk"],
        token_min_logp=options["token_min_logp"], beam_threshold=options["beam_threshold"], nbest=nbest,
    )  # fmt: skip
    hypotheses = []
    for ranked in results:
        hypotheses.append([])
        for tokens, score, frames in ranked:
            words, word_frames = spell(pieces, tokens, frames)
            hypotheses[-1].append(Hypothesis(tokens, words, score, score, 0.0, frames, word_frames))
    return hypotheses


class _ReferenceStream:
    """The reference search behind the native stream's methods."""

    def __init__(self, pieces, blank: int, options: dict):
        from speechdecode.kernels.ctc_prefix_beam.reference import PrefixBeamSearch

        self._search = PrefixBeamSearch(pieces, blank, **options)

    frames = property(lambda self: self._search.frames)
    searched_frames = property(lambda self: self._search.searched_frames)

    def accept(self, rows: np.ndarray) -> None:
        for row in rows:
            self._search.step(row)

    def nbest(self, n: int) -> list[Hypothesis]:
        return self._search.finish(n)


class _NativeStream:
    def __init__(self, native):
        self._stream = native.stream()

    frames = property(lambda self: self._stream.frames)
    searched_frames = property(lambda self: self._stream.searched_frames)

    def accept(self, rows: np.ndarray) -> None:
        self._stream.accept(rows)

    def nbest(self, n: int) -> list[Hypothesis]:
        return [Hypothesis(*h) for h in self._stream.finalize(n)]


def open_stream(native, pieces, blank: int, options: dict):
    """One utterance's search state: ``accept(rows [T, V] float32)``, ``nbest(n)`` (the ranked
    hypotheses of the frames so far; the search goes on), ``frames``, ``searched_frames``."""
    return _NativeStream(native) if native is not None else _ReferenceStream(pieces, blank, options)
