"""The C++ fast path of ``mkn`` estimation and a fast ARPA writer (``csrc/lm/kneser_ney``,
``csrc/lm/arpa_writer``).

:func:`estimate_mkn` computes what :func:`speechdecode.lm.methods.kneser_ney.modified_kneser_ney`
computes (interpolated modified Kneser-Ney exactly as KenLM's lmplz, with its float32 arithmetic
and count-of-counts quirk by default), on all cores and without the GIL: the same n-grams in the
same (lmplz's) order, the same printed numbers. :func:`write_arpa_native` writes what
:func:`speechdecode.lm.arpa.write_arpa` writes, byte for byte, formatting and compressing in
parallel.

>>> from speechdecode.lm.counts import count_sentences
>>> with open("tests/data/lmplz/kjv400.txt") as text:
...     counts = count_sentences(text, 3)
>>> write_arpa_native("G.arpa", estimate_mkn(counts))  # the file `lmplz -o 3` writes
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from speechdecode import _args, _backend
from speechdecode._io import atomic_write
from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._common import prune_thresholds
from speechdecode.lm.methods.kneser_ney import (
    LMPLZ_FALLBACK,
    DiscountFallbackWarning,
    fallback_discounts,
    fallback_needed,
)

__all__ = ["DiscountFallbackWarning", "estimate_mkn", "write_arpa_native", "write_mkn_arpa"]


def estimate_mkn(
    counts: NgramCounts,
    *,
    prune: Sequence[int] | None = None,
    discount_fallback: float | Sequence[float] = LMPLZ_FALLBACK,
    float64: bool = False,
    num_threads: int = 0,
) -> ArpaModel:
    """Interpolated modified Kneser-Ney, as ``lmplz -o counts.order`` estimates it (native).

    Args:
        counts: raw n-gram counts; ``counts.ngrams[n-1]`` int32 [M_n, n] rows sorted
            lexicographically without duplicates, ``counts.counts[n-1]`` int64 [M_n] (as
            :func:`~speechdecode.lm.counts.count_sentences` and the native counter give them).
            They are read in place, not copied.
        prune: lmplz's ``--prune`` count thresholds, e.g. ``[0, 1, 1]``, or ``[1, 1]`` to drop
            words seen once too (:func:`speechdecode.lm.methods._common.pruned_masks`).
        discount_fallback: D1, D2, D3+ for an order whose discounts cannot be computed (1 to 3
            values, the last repeated), as lmplz's ``--discount_fallback``; each use warns.
        float64: double precision without lmplz's count-of-counts quirk (kenlm issue 427).
        num_threads: threads to use (0: all cores).

    Returns:
        the model: every vocabulary word not pruned is a unigram; per order the kept n-grams in lmplz's
        suffix order, float64 log10 probabilities and back-offs (0 where an n-gram is no context).

    Warns:
        DiscountFallbackWarning: once per order that uses the fallback discounts, naming the
            order, the reason and its count-of-counts.

    Raises:
        TensorError: arrays of the wrong dtype or shape, unsorted or duplicate rows, ids out
            of range, counts <= 0, n-grams whose prefix or suffix is not counted (names the array).
        InvalidArgumentError: a bad option.
        BackendUnavailableError: the native extension was not built.
    """
    thresholds, fallback = _checked(counts, prune, discount_fallback, float64, num_threads)
    result = _backend.native().estimate_mkn(
        list(counts.ngrams), list(counts.counts), len(counts.vocab), thresholds, fallback, float64, num_threads
    )
    _warn_fallbacks(result)
    return ArpaModel(counts.vocab.words, result["ngrams"], result["log10_probs"], result["backoffs"])


def write_mkn_arpa(
    path: str | os.PathLike,
    counts: NgramCounts,
    *,
    prune: Sequence[int] | None = None,
    discount_fallback: float | Sequence[float] | None = LMPLZ_FALLBACK,
    float64: bool = False,
    num_threads: int = 0,
) -> list[int]:
    """``write_arpa_native(path, estimate_mkn(counts, ...))`` without the whole model in memory.

    Each order is written as soon as it is estimated and freed after, so memory holds the counts,
    the estimator's tables and one order of the model (the whole model takes about as much as the
    counts again). The file is byte for byte the one ``write_arpa_native`` writes, under the
    same output rule.

    Args:
        discount_fallback: as :func:`estimate_mkn`; ``None``: an order whose discounts cannot be
            computed is an error raised before anything is written (lmplz without
            ``--discount_fallback``).
        the others: as :func:`estimate_mkn`.

    Returns:
        the number of n-grams written per order.

    Raises:
        InvalidArgumentError: ``discount_fallback=None`` and an order needs the fallback
            (:func:`speechdecode.lm.methods.kneser_ney.fallback_needed`).
        the errors of :func:`estimate_mkn` and :func:`write_arpa_native`.
    """
    allow = discount_fallback is not None
    given = discount_fallback if allow else LMPLZ_FALLBACK
    thresholds, fallback = _checked(counts, prune, given, float64, num_threads)
    native = _backend.native()
    path = os.fspath(path)
    with atomic_write(path, "wb") as handle:
        handle.flush()
        result = native.estimate_mkn_arpa(
            handle.fileno(),
            os.fsencode(path),
            path.endswith(".gz"),
            list(counts.vocab.words),
            list(counts.ngrams),
            list(counts.counts),
            thresholds,
            fallback,
            float64,
            allow,
            num_threads,
        )
        if not result["written"]:
            n = next(n for n, reason in enumerate(result["fallback"], start=1) if reason is not None)
            t = result["count_of_counts"][n - 1]
            raise fallback_needed(
                f"mkn: cannot compute the discounts of order {n} ({result['fallback'][n - 1]}; "
                f"count-of-counts t1={t[0]} t2={t[1]} t3={t[2]} t4={t[3]})"
            )
    _warn_fallbacks(result)
    return [int(k) for k in result["kept"]]


def _checked(counts, prune, discount_fallback, float64, num_threads) -> tuple[list[int], tuple[float, ...]]:
    if not isinstance(counts, NgramCounts):
        raise InvalidArgumentError("counts", "an NgramCounts", type(counts).__name__)
    _args.boolean(float64, "float64")
    _args.integer(num_threads, "num_threads", 0)  # 0: all cores
    thresholds = prune_thresholds(prune, counts.order, unigrams=True)
    return [int(t) for t in thresholds], tuple(float(d) for d in fallback_discounts(discount_fallback)[1:])


def _warn_fallbacks(result: dict) -> None:
    for n, reason in enumerate(result["fallback"], start=1):
        if reason is not None:
            t = result["count_of_counts"][n - 1]
            d = result["discounts"][n - 1]
            warnings.warn(
                f"mkn: cannot compute the discounts of order {n} ({reason}; count-of-counts "
                f"t1={t[0]} t2={t[1]} t3={t[2]} t4={t[3]}); using the fallback discounts "
                f"D1={d[0]:g} D2={d[1]:g} D3+={d[2]:g}",
                DiscountFallbackWarning,
                stacklevel=3,
            )


def write_arpa_native(path: str | os.PathLike, model: ArpaModel, *, num_threads: int = 0) -> None:
    """Write ``model`` as :func:`speechdecode.lm.arpa.write_arpa` does, byte for byte (native).

    Gzip-compressed when ``path`` ends in ``.gz``. Written under the output rule of
    :func:`speechdecode._io.atomic_write`: ``-`` is stdout, devices are written in place, other
    paths get a temporary file renamed into place when complete, so a failed or interrupted
    write leaves no partial file (an existing file at ``path`` stays as it was).

    Raises:
        OSError: the file cannot be written (the subclass follows errno).
        TensorError: arrays of the wrong shape or word ids outside ``model.words``.
        BackendUnavailableError: the native extension was not built.
    """
    native = _backend.native()
    path = os.fspath(path)
    arrays = (
        [np.ascontiguousarray(g, dtype=np.int32) for g in model.ngrams],
        [np.ascontiguousarray(p, dtype=np.float64) for p in model.log10_probs],
        [np.ascontiguousarray(b, dtype=np.float64) for b in model.backoffs],
    )
    with atomic_write(path, "wb") as handle:
        handle.flush()
        native.write_arpa(
            handle.fileno(), os.fsencode(path), path.endswith(".gz"), list(model.words), *arrays, num_threads
        )
