"""Reading and writing batches of acoustic-model log-probs as ``.npz`` files.

The file holds ``log_probs`` [B, T, V] (float32/float16), optional ``lengths`` [B] (int) and
optional ``utt_ids`` [B] (str). This is the input format of ``speechdecode decode``.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from speechdecode._io import atomic_write, read_npz
from speechdecode.errors import InputFileError


class Posteriors(NamedTuple):
    log_probs: np.ndarray
    lengths: np.ndarray
    utt_ids: list[str]


def save_posteriors(
    path: str | os.PathLike, log_probs: np.ndarray, lengths: np.ndarray | None = None, utt_ids: list[str] | None = None
) -> None:
    """Write a posteriors file atomically (compressed npz)."""
    arrays = {"log_probs": np.asarray(log_probs)}
    if lengths is not None:
        arrays["lengths"] = np.asarray(lengths, dtype=np.int64)
    if utt_ids is not None:
        arrays["utt_ids"] = np.asarray(utt_ids, dtype=str)
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def load_posteriors(path: str | os.PathLike) -> Posteriors:
    """Read a posteriors file; errors name the file and the bad entry.

    Raises:
        InputFileError: not a readable ``.npz``; no ``log_probs``, or not floats [B, T, V];
            ``lengths`` not B integers in [0, T]; NaN or +inf log-probs within an utterance's
            length; ``utt_ids`` not B strings.
    """
    if not os.path.exists(path):
        raise InputFileError(path, None, "no such file")
    arrays = read_npz(path, "posteriors file")
    if "log_probs" not in arrays:
        raise InputFileError(path, None, f"missing array 'log_probs' (found: {', '.join(sorted(arrays)) or 'none'})")
    log_probs = arrays["log_probs"]
    if log_probs.ndim != 3 or log_probs.dtype.kind != "f":
        raise InputFileError(
            path, None, f"'log_probs' must be floats [B, T, V], got {log_probs.dtype} {list(log_probs.shape)}"
        )
    batch, frames, _ = log_probs.shape
    lengths = arrays.get("lengths", np.full(batch, frames, dtype=np.int64))
    if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
        raise InputFileError(
            path, None, f"'lengths' must be {batch} integers, got {lengths.dtype} {list(lengths.shape)}"
        )
    outside = np.flatnonzero((lengths < 0) | (lengths > frames))
    if outside.size:
        b = int(outside[0])
        raise InputFileError(path, None, f"'lengths'[{b}] is {int(lengths[b])}, outside [0, T = {frames}]")
    # NaN or +inf inside an utterance (-inf, log 0, is a probability): the decoders' rule, named here.
    for b in range(batch):
        bad = np.argwhere(~(log_probs[b, : int(lengths[b])] < np.inf))
        if bad.size:
            t, v = (int(i) for i in bad[0])
            kind = "NaN" if np.isnan(log_probs[b, t, v]) else "+inf"
            raise InputFileError(path, None, f"'log_probs' holds {kind} at [utterance {b}, frame {t}, token {v}]")
    if "utt_ids" in arrays:
        ids = arrays["utt_ids"]
        if ids.ndim != 1 or ids.dtype.kind != "U":
            raise InputFileError(path, None, f"'utt_ids' must be {batch} strings, got {ids.dtype} {list(ids.shape)}")
        utt_ids = [str(u) for u in ids]
        if len(utt_ids) != batch:
            raise InputFileError(path, None, f"'utt_ids' must have {batch} entries, got {len(utt_ids)}")
    else:
        utt_ids = [str(i) for i in range(batch)]
    return Posteriors(log_probs, lengths.astype(np.int64), utt_ids)
