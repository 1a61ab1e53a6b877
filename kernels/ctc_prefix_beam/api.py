"""CTC prefix beam search's options and backend dispatch: native (C++), reference (plain Python)
and Triton.

:class:`speechdecode.decoding.CtcPrefixBeamSearch` checks the arguments and calls these; the
search itself is defined by :mod:`speechdecode.kernels.ctc_prefix_beam.reference`. ``pieces`` is
:func:`speechdecode.decoding.text.token_pieces` of the tokens; ``options`` the object
:func:`options` builds (every backend reads it); ``lm``, ``hotwords`` (``(token ids, weight)``
pairs) and ``lexicon`` (``(spelling, word)`` pairs or None) complete the search.
"""

from __future__ import annotations

import numpy as np

from speechdecode import _args, _backend
from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.decoding.text import spell

__all__ = ["decode", "decode_triton", "native_search", "open_stream", "options"]


def options(**values):
    """The search's options, ``_native.CtcPrefixBeamSearchOptions`` (csrc/decoding/
    ctc_prefix_beam_search.h: fields, defaults, ``validate()``), with ``values`` set and checked.

    Raises:
        InvalidArgumentError: an option of the wrong type or out of range, naming it.
    """
    return _args.native_options("CtcPrefixBeamSearchOptions", **values)


def native_search(pieces, options, lm=None, hotwords=(), lexicon=None):
    """The C++ search (csrc/decoding/ctc_prefix_beam_search.h)."""
    return _backend.native().CtcPrefixBeamSearch(
        [chars for _, chars in pieces],
        [int(starts) for starts, _ in pieces],
        options,
        [(list(p), w) for p, w in hotwords],
        None if lm is None else lm._native,
        [(list(spelling), word) for spelling, word in lexicon or ()],
    )


def decode(native, log_probs: np.ndarray, lengths: np.ndarray, nbest: int, num_threads: int | None,
           reference_search: tuple) -> list[list[Hypothesis]]:  # fmt: skip
    """The ranked ``nbest`` hypotheses of each utterance of float32 log_probs [B, T, V]: by the
    native search when ``native`` is one, else by the reference with ``reference_search`` =
    ``(pieces, options, lm, hotwords, lexicon)``."""
    if native is not None:
        results = native.decode(log_probs, lengths, nbest, num_threads or 0)
        return [[Hypothesis.from_native(h) for h in ranked] for ranked in results]
    from speechdecode.kernels.ctc_prefix_beam import reference

    pieces, options, lm, hotwords, lexicon = reference_search
    return reference.ctc_prefix_beam_search(
        log_probs, lengths.tolist(), pieces, nbest, options, lm=lm, hotwords=hotwords, lexicon=lexicon
    )


def decode_triton(log_probs, lengths, pieces, options, nbest: int) -> list[list[Hypothesis]]:
    """The batched GPU search (no LM, lexicon, hotwords, blank skip, viterbi or extend_best_token)."""
    from speechdecode.kernels.ctc_prefix_beam.triton import prefix_beam_search

    results = prefix_beam_search(
        log_probs, lengths, blank=options.blank, beam=options.beam, token_topk=options.token_topk,
        token_min_logp=options.token_min_logp, beam_threshold=options.beam_threshold, nbest=nbest,
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

    def __init__(self, pieces, options, lm, hotwords, lexicon):
        from speechdecode.kernels.ctc_prefix_beam.reference import PrefixBeamSearch

        self._search = PrefixBeamSearch(pieces, options, lm=lm, hotwords=hotwords, lexicon=lexicon)

    frames = property(lambda self: self._search.frames)
    searched_frames = property(lambda self: self._search.searched_frames)

    def accept(self, rows: np.ndarray) -> None:
        for row in rows:
            self._search.step(row)

    def best(self, n: int) -> list[Hypothesis]:
        return self._search.finish(n)


class _NativeStream:
    def __init__(self, native):
        self._stream = native.stream()

    frames = property(lambda self: self._stream.frames)
    searched_frames = property(lambda self: self._stream.searched_frames)

    def accept(self, rows: np.ndarray) -> None:
        self._stream.accept(rows)

    def best(self, n: int) -> list[Hypothesis]:
        return [Hypothesis.from_native(h) for h in self._stream.best(n)]


def open_stream(native, reference_search: tuple):
    """One utterance's search state: ``accept(rows [T, V] float32)``, ``best(n)`` (the ranked
    hypotheses of the frames so far; the search goes on), ``frames``, ``searched_frames``; native
    when ``native`` is a search, else the reference with ``reference_search`` as in :func:`decode`."""
    return _NativeStream(native) if native is not None else _ReferenceStream(*reference_search)
