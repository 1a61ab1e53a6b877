"""WFST beam search's backend dispatch: native (C++, csrc/decoding/wfst_decoder.h) or the
exhaustive plain-Python reference (:mod:`.reference`, tiny graphs only).

:class:`speechdecode.decoding.WfstDecoder` checks the arguments and calls these. ``options`` is
a dict of the search options (``beam``, ``max_active``, ``acoustic_scale``,
``blank_skip_threshold``, ``lattice_beam``, ``nbest``, ``word_boundary``); ``word(id)`` names an
output label.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from speechdecode import _backend
from speechdecode.decoding.hypothesis import WfstHypothesis
from speechdecode.errors import TensorError

__all__ = ["decode", "open_stream"]


def _native_options(options: dict) -> tuple:
    skip = options["blank_skip_threshold"]
    boundary = options["word_boundary"]
    return (
        options["beam"],
        min(options["max_active"], 2**31 - 1),
        options["acoustic_scale"],
        math.inf if skip is None else skip,
        options["lattice_beam"],
        options["nbest"],
        -1 if boundary is None else boundary,
    )


def _hypothesis(result, word) -> WfstHypothesis:
    tokens, token_frames, words, word_frames, score, am, lm, reached = result
    return WfstHypothesis(
        tokens=tuple(tokens),
        words=tuple(word(w) for w in words),
        score=float(score),
        am_score=float(am),
        lm_score=float(lm),
        token_frames=tuple(token_frames),
        word_frames=tuple((int(a), int(b)) for a, b in word_frames),
        reached_final=bool(reached),
    )


def _reference(arrays, options: dict, log_probs: np.ndarray, word, use_final: bool = True) -> list[WfstHypothesis]:
    """The exhaustive Python search of one utterance [T, V]."""
    from speechdecode.kernels.wfst_decode import reference

    nbest = options["nbest"] if use_final else 1
    results = reference.decode(
        arrays, log_probs, nbest, options["acoustic_scale"], options["blank_skip_threshold"], use_final,
        options["word_boundary"],
    )  # fmt: skip
    return [
        _hypothesis(
            (r.tokens, r.token_frames, r.words, r.word_frames, -r.cost, r.am_score, r.lm_score, r.reached_final), word
        )
        for r in results
    ]


def _checked_rows(rows: torch.Tensor, utterance: int, first_frame: int = 0) -> np.ndarray:
    array = rows.numpy()
    bad = np.isnan(array) | (array == np.inf)
    if bad.any():
        t, v = (int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(array[t, v]) else "+inf"
        raise TensorError(
            "log_probs",
            "finite log-probabilities or -inf",
            f"{kind} in utterance {utterance} at frame {first_frame + t}, token {v}",
        )
    return array.astype(np.float64)


def decode(native_graph, arrays, options: dict, log_probs: torch.Tensor, lengths: torch.Tensor, num_threads: int,
           word) -> list[list[WfstHypothesis]]:  # fmt: skip
    """Per utterance of float32 CPU log_probs [B, T, V], its n-best list: by the native search
    over ``native_graph``, or (``native_graph`` None) by the reference over ``arrays``."""
    if native_graph is None:
        rows = [_checked_rows(log_probs[b, : int(n)], b) for b, n in enumerate(lengths.tolist())]
        return [_reference(arrays, options, x, word) for x in rows]
    results = _backend.native().wfst_decode(
        native_graph, log_probs.numpy(), lengths.numpy(), *_native_options(options), num_threads=num_threads
    )
    return [[_hypothesis(r, word) for r in ranked] for ranked in results]


class _NativeStream:
    def __init__(self, native_graph, options: dict, word):
        self._search = _backend.native().WfstSearch(native_graph, *_native_options(options))
        self._word = word

    @property
    def frames_accepted(self) -> int:
        return self._search.frames_accepted

    def accept(self, rows: torch.Tensor) -> None:
        self._search.accept(rows.numpy())

    def partial(self) -> WfstHypothesis | None:
        result = self._search.partial()
        return None if result is None else _hypothesis(result, self._word)

    def finish(self) -> list[WfstHypothesis]:
        return [_hypothesis(r, self._word) for r in self._search.finalize()]


class _ReferenceStream:
    def __init__(self, arrays, options: dict, word):
        self._arrays, self._options, self._word = arrays, options, word
        self._chunks: list[np.ndarray] = []

    @property
    def frames_accepted(self) -> int:
        return sum(len(c) for c in self._chunks)

    def accept(self, rows: torch.Tensor) -> None:
        self._chunks.append(_checked_rows(rows, 0, self.frames_accepted))

    def _frames(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros((0, self._arrays.num_tokens))
        return np.concatenate(self._chunks)

    def partial(self) -> WfstHypothesis | None:
        best = _reference(self._arrays, self._options, self._frames(), self._word, use_final=False)
        return best[0] if best else None

    def finish(self) -> list[WfstHypothesis]:
        return _reference(self._arrays, self._options, self._frames(), self._word)


def open_stream(native_graph, arrays, options: dict, word):
    """One utterance's search state: ``accept(rows)``, ``partial()``, ``finish()``, ``frames_accepted``."""
    if native_graph is None:
        return _ReferenceStream(arrays, options, word)
    return _NativeStream(native_graph, options, word)
