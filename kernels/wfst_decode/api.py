"""WFST beam search's backend dispatch: native (C++, csrc/decoding/wfst_decoder.h) or the
exhaustive plain-Python reference (:mod:`.reference`, tiny graphs only).

:class:`speechdecode.decoding.WfstDecoder` checks the arguments and calls these. ``options`` is
the object :func:`options` builds (both backends read it); ``word(id)`` names an output label.
"""

from __future__ import annotations

import numpy as np
import torch

from speechdecode import _args, _backend
from speechdecode.decoding.hypothesis import WfstHypothesis
from speechdecode.errors import TensorError

__all__ = ["decode", "open_stream"]


def options(**values):
    """The search's options, ``_native.WfstOptions`` (csrc/decoding/wfst_decoder.h: fields,
    defaults, ``validate()``), with ``values`` set and checked.

    Raises:
        InvalidArgumentError: an option of the wrong type or out of range, naming it.
    """
    return _args.native_options("WfstOptions", **values)


def _hypothesis(result, word) -> WfstHypothesis:
    return WfstHypothesis.from_native(
        result, words=tuple(word(w) for w in result.word_ids), reached_final=result.reached_final
    )


def _reference(arrays, options, log_probs: np.ndarray, word, use_final: bool = True) -> list[WfstHypothesis]:
    """The exhaustive Python search of one utterance [T, V]."""
    from speechdecode.kernels.wfst_decode import reference

    return [
        WfstHypothesis(
            tokens=r.tokens,
            words=tuple(word(w) for w in r.words),
            score=-r.cost,
            am_score=r.am_score,
            lm_score=r.lm_score,
            token_frames=r.token_frames,
            word_frames=r.word_frames,
            reached_final=r.reached_final,
        )
        for r in reference.decode(arrays, log_probs, options, use_final)
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


def decode(native_graph, arrays, options, log_probs: torch.Tensor, lengths: torch.Tensor, num_threads: int,
           word) -> list[list[WfstHypothesis]]:  # fmt: skip
    """Per utterance of float32 CPU log_probs [B, T, V], its n-best list: by the native search
    over ``native_graph``, or (``native_graph`` None) by the reference over ``arrays``."""
    if native_graph is None:
        rows = [_checked_rows(log_probs[b, : int(n)], b) for b, n in enumerate(lengths.tolist())]
        return [_reference(arrays, options, x, word) for x in rows]
    results = _backend.native().wfst_decode(native_graph, log_probs.numpy(), lengths.numpy(), options, num_threads)
    return [[_hypothesis(r, word) for r in ranked] for ranked in results]


class _NativeStream:
    def __init__(self, native_graph, options, word):
        self._search = _backend.native().WfstSearch(native_graph, options)
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
        return [_hypothesis(r, self._word) for r in self._search.finish()]


class _ReferenceStream:
    def __init__(self, arrays, options, word):
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


def open_stream(native_graph, arrays, options, word):
    """One utterance's search state: ``accept(rows)``, ``partial()``, ``finish()``, ``frames_accepted``."""
    if native_graph is None:
        return _ReferenceStream(arrays, options, word)
    return _NativeStream(native_graph, options, word)
