"""Kneser-Ney smoothing: ``mkn``, interpolated modified Kneser-Ney exactly as KenLM's lmplz
estimates it, and ``kn``, one discount per order (interpolated or back-off).

Both estimate every order below the highest from *adjusted counts* (Kneser & Ney 1995; Chen &
Goodman 1998, section 3.5): a(w1..wn) is the number of distinct words seen right before
w1..wn, except at the highest order and for n-grams starting with ``<s>``, which keep their raw
counts. Discounts come from the count-of-counts t_k (number of n-grams of one order with
adjusted count k, pruned ones included):

* ``mkn`` (Chen & Goodman, eq. 26): Y = t1 / (t1 + 2 t2), D(k) = k - (k+1) Y t_{k+1} / t_k for
  k = 1, 2, 3 (D(k > 3) = D(3));
* ``kn``: D = t1 / (t1 + 2 t2) for every count.

The model itself is :func:`._common.discounted_model`. What ``mkn`` copies from lmplz (default
``float64=False``); with it, the ARPA files it writes are byte for byte lmplz's (the files in
``tests/data/lmplz``, and lmplz runs on random corpora, pruned or not, orders 1 to 6):

* single-precision arithmetic, operation by operation: discounts, backoff weights, the
  interpolation, and glibc's ``log10f`` (:func:`._common.glibc_log10f`), which is not correctly
  rounded;
* the count-of-counts quirk (kenlm issue 427): when lmplz's adjusted-count pass ends, the
  lower-order n-grams it still holds (the suffixes of the last n-gram of its suffix-sorted
  highest-order stream, up to one starting with ``<s>``) are tallied with their raw count
  instead of their adjusted count. On small corpora this moves the discounts a lot; on larger
  ones it rarely changes them. ``float64=True`` computes in double precision without it;
* lmplz aborts when a discount cannot be computed (some t_k = 0 for k <= 3, or D(k) outside
  [0, k]) unless given ``--discount_fallback``; here the fallback discounts are always used, with
  a :class:`DiscountFallbackWarning` that names the order and its count-of-counts.

Pruning (``prune``, lmplz's ``--prune``) drops the n-grams whose raw count is at most their
order's threshold, unigrams included (lmplz's ``--prune 1 1`` drops the words seen once), but
never ``<unk>``, ``<s>`` or ``</s>`` (:func:`._common.pruned_masks`); their mass goes to their
context's backoff, and the unigrams' uniform share is 1 / (kept unigrams but ``<s>``).

Beyond lmplz (inputs it cannot produce): vocabulary words that never occur are unigrams with
adjusted count 0 (like an unseen ``<unk>``; pruned when the unigram threshold is above 0), and
a ``<unk>`` that does occur is a word like any other (it gets its discounted count, and a
backoff if it is a context). The quirk follows our word ids, which are lmplz's when the
vocabulary was built from the text alone.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import numpy as np

from speechdecode import _args
from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._common import (
    NgramTables,
    count_of_counts,
    discounted_model,
    ngram_tables,
    prune_thresholds,
    pruned_masks,
)
from speechdecode.lm.vocab import BOS_ID

LMPLZ_FALLBACK = (0.5, 1.0, 1.5)


class DiscountFallbackWarning(UserWarning):
    """Discounts could not be computed from the count-of-counts; fallback discounts were used."""


def fallback_needed(reason: str) -> InvalidArgumentError:
    """The error for an order that needs fallback discounts none were given for (lmplz's rule)."""
    return InvalidArgumentError(
        "discount_fallback",
        "fallback discounts for this corpus (lmplz asks for --discount_fallback too; it substitutes "
        "D1=0.5 D2=1 D3+=1.5)",
        f"none, and {reason}",
    )


def modified_kneser_ney(
    counts: NgramCounts,
    *,
    prune: Sequence[int] | None = None,
    discount_fallback: float | Sequence[float] = LMPLZ_FALLBACK,
    float64: bool = False,
) -> ArpaModel:
    """Interpolated modified Kneser-Ney, as ``lmplz -o counts.order`` estimates it.

    Args:
        counts: raw n-gram counts; the model has their order.
        prune: lmplz's ``--prune`` count thresholds, e.g. ``[0, 1, 1]`` drops bigrams and
            trigrams seen once, ``[1, 1]`` words, bigrams and trigrams seen once
            (:func:`._common.prune_thresholds`, :func:`._common.pruned_masks`).
        discount_fallback: discounts D1, D2, D3+ used for an order whose discounts cannot be
            computed (1 to 3 values, the last one repeated; D_k in [0, k]), as lmplz's
            ``--discount_fallback``; each use warns with :class:`DiscountFallbackWarning`.
        float64: compute in double precision, without lmplz's count-of-counts quirk; the
            default copies lmplz's single-precision arithmetic and the quirk.

    Returns:
        the model, n-grams as lmplz writes them (same set, same order, same log10 numbers).

    Raises:
        InvalidArgumentError: bad counts or option.

    >>> from speechdecode.lm.arpa import write_arpa
    >>> from speechdecode.lm.counts import count_sentences
    >>> with open("tests/data/lmplz/kjv400.txt") as text:
    ...     counts = count_sentences(text, 3)
    >>> write_arpa("G.arpa", modified_kneser_ney(counts))  # the file lmplz -o 3 writes
    """
    fallback = fallback_discounts(discount_fallback)
    _args.boolean(float64, "float64")
    tables = ngram_tables(counts)
    thresholds = prune_thresholds(prune, tables.order, unigrams=True)
    adjusted = _adjusted_counts(tables)
    discounts = _modified_discounts(tables, adjusted, fallback, float64)
    real = np.float64 if float64 else np.float32
    return discounted_model(tables, adjusted, discounts, pruned_masks(tables, thresholds), dtype=real)


def kneser_ney(
    counts: NgramCounts,
    *,
    prune: Sequence[int] | None = None,
    interpolate: bool = True,
    discount_fallback: float = 0.5,
) -> ArpaModel:
    """Kneser-Ney with one discount per order, D = t1 / (t1 + 2 t2) on adjusted counts.

    Args:
        counts: raw n-gram counts; the model has their order.
        prune: count thresholds as lmplz's ``--prune`` (:func:`._common.prune_thresholds`).
        interpolate: interpolated Kneser-Ney (default) or the back-off form, where a seen n-gram
            keeps only its discounted estimate (:func:`._common.discounted_model`).
        discount_fallback: the D, in (0, 1], of an order without n-grams of adjusted count 1 or
            2 (warns with :class:`DiscountFallbackWarning`).

    Computed in double precision. Raises :class:`InvalidArgumentError` for bad counts or options.
    """
    _args.boolean(interpolate, "interpolate")
    fallback = check_single_fallback(discount_fallback)
    tables = ngram_tables(counts)
    thresholds = prune_thresholds(prune, tables.order, unigrams=True)
    adjusted = _adjusted_counts(tables)
    discounts = single_discounts([count_of_counts(a) for a in adjusted], fallback, "kn", "adjusted count")
    return discounted_model(tables, adjusted, discounts, pruned_masks(tables, thresholds), interpolate=interpolate)


def adjusted_counts(counts: NgramCounts) -> list[np.ndarray]:
    """Kneser-Ney adjusted counts, int64 per order.

    Orders >= 2 are aligned with ``counts.ngrams``; unigrams are indexed by word id (every
    vocabulary word, 0 for ``<s>``, ``<unk>`` and words never seen).
    """
    return _adjusted_counts(ngram_tables(counts))


def modified_discounts(
    counts: NgramCounts, *, discount_fallback: float | Sequence[float] = LMPLZ_FALLBACK, float64: bool = False
) -> np.ndarray:
    """The discounts ``mkn`` uses: float64 [order, 4], row n-1 = (0, D1, D2, D3+) of order n
    (float32 values, as lmplz computes them, unless ``float64``)."""
    fallback = fallback_discounts(discount_fallback)
    _args.boolean(float64, "float64")
    tables = ngram_tables(counts)
    return np.array(_modified_discounts(tables, _adjusted_counts(tables), fallback, float64), dtype=np.float64)


def _adjusted_counts(tables: NgramTables) -> list[np.ndarray]:
    adjusted = []
    for n in range(1, tables.order + 1):
        if n == tables.order:
            values = tables.counts[n - 1].copy()
        else:
            # Distinct left extensions: the (n+1)-grams whose suffix is this n-gram.
            values = np.bincount(tables.suffix[n], minlength=tables.size(n)).astype(np.int64)
            if n > 1:
                starts = tables.rows[n - 1][:, 0] == BOS_ID
                values[starts] = tables.counts[n - 1][starts]
        if n == 1:
            values[BOS_ID] = 0
        adjusted.append(values)
    return adjusted


def _lmplz_count_of_counts(tables: NgramTables, adjusted: list[np.ndarray]) -> list[np.ndarray]:
    """Count-of-counts with lmplz's end-of-stream quirk (kenlm issue 427).

    lmplz streams the highest-order n-grams (``<s>``-padded, N-1 ``<s>`` in front of each
    sentence) sorted by last word, then the word before, and so on, and holds for each lower
    order the suffix of the current one. At the end of the stream those held n-grams are tallied
    with their raw count. They are the suffixes of the stream's last n-gram: it ends with the
    text's highest-id word, and each step to the left takes the highest-id word seen there; they
    stop at order N-1 or at the first suffix starting with ``<s>``.
    """
    tallies = [count_of_counts(a) for a in adjusted]
    seen = np.flatnonzero(tables.counts[0] > 0)
    row = int(seen[seen != BOS_ID].max())
    for n in range(1, tables.order):
        adjusted_count, raw_count = adjusted[n - 1][row], tables.counts[n - 1][row]
        if adjusted_count < 5:
            tallies[n - 1][adjusted_count] -= 1
        if raw_count < 5:
            tallies[n - 1][raw_count] += 1
        if n + 1 == tables.order or (n > 1 and tables.rows[n - 1][row, 0] == BOS_ID):
            break
        extensions = np.flatnonzero(tables.suffix[n] == row)
        row = int(extensions[np.argmax(tables.rows[n][extensions, 0])])
    return tallies


def _modified_discounts(
    tables: NgramTables, adjusted: list[np.ndarray], fallback: np.ndarray, float64: bool
) -> list[np.ndarray]:
    if float64:
        tallies = [count_of_counts(a) for a in adjusted]
    else:
        tallies = _lmplz_count_of_counts(tables, adjusted)
    return discounts_from_tallies(tallies, fallback, float64, stacklevel=5)


def discounts_from_tallies(
    tallies: list[np.ndarray], fallback: np.ndarray, float64: bool, *, stacklevel: int = 2
) -> list[np.ndarray]:
    """``mkn``'s discounts (0, D1, D2, D3+) per order from count-of-counts (int64 [5] per order,
    t[k] for k = 0..4), in lmplz's operations; ``fallback`` (from ``fallback_discounts``), with a
    :class:`DiscountFallbackWarning`, for an order whose discounts cannot be computed."""
    real = np.float64 if float64 else np.float32
    discounts = []
    for n, t in enumerate(tallies, start=1):
        problem = next((f"no {n}-grams with adjusted count {k}" for k in (1, 2, 3) if t[k] == 0), None)
        d = np.zeros(4, dtype=real)
        if problem is None:
            # Same operations, in the same order and precision, as lmplz.
            y = real(t[1]) / real(t[1] + 2.0 * t[2])
            for k in (1, 2, 3):
                d[k] = real(k) - real(k + 1) * y * real(t[k + 1]) / real(t[k])
            problem = next((f"D{k}={d[k]:.6g} is outside [0, {k}]" for k in (1, 2, 3) if not 0 <= d[k] <= k), None)
        if problem is not None:
            d = fallback.astype(real)
            warnings.warn(
                f"mkn: cannot compute the discounts of order {n} ({problem}; count-of-counts "
                f"t1={t[1]} t2={t[2]} t3={t[3]} t4={t[4]}); using the fallback discounts "
                f"D1={d[1]:g} D2={d[2]:g} D3+={d[3]:g}",
                DiscountFallbackWarning,
                stacklevel=stacklevel,
            )
        discounts.append(d)
    return discounts


def single_discounts(tallies: list[np.ndarray], fallback: float, method: str, what: str) -> list[np.ndarray]:
    """One discount per order, D = t1 / (t1 + 2 t2), as (0, D, D, D) rows for
    :func:`._common.discounted_model`; ``fallback`` (with a warning) where t1 or t2 is 0.

    ``tallies``: count-of-counts per order (:func:`._common.count_of_counts`); ``what`` names
    the counts in the warning ("adjusted count", "count").
    """
    discounts = []
    for n, t in enumerate(tallies, start=1):
        if t[1] == 0 or t[2] == 0:
            missing = 1 if t[1] == 0 else 2
            warnings.warn(
                f"{method}: cannot compute the discount of order {n} (no {n}-grams with {what} {missing}; "
                f"count-of-counts t1={t[1]} t2={t[2]}); using the fallback discount D={fallback:g}",
                DiscountFallbackWarning,
                stacklevel=4,
            )
            d = fallback
        else:
            d = t[1] / (t[1] + 2.0 * t[2])
        discounts.append(np.array([0.0, d, d, d]))
    return discounts


def check_single_fallback(value: float) -> float:
    """Check a one-discount method's ``discount_fallback``: a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise InvalidArgumentError("discount_fallback", "a discount in (0, 1]", repr(value))
    return float(value)


def fallback_discounts(value: float | Sequence[float]) -> np.ndarray:
    """lmplz's ``--discount_fallback``: 1 to 3 discounts for counts 1, 2, 3+ (last repeated)."""
    values = (value,) if isinstance(value, numbers.Real) else value
    if (
        isinstance(values, (str, bytes))
        or not isinstance(values, Sequence)
        or not 1 <= len(values) <= 3
        or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in values)
    ):
        raise InvalidArgumentError("discount_fallback", "1 to 3 discounts (for counts 1, 2, 3+)", repr(value))
    padded = [*values, *[values[-1]] * (3 - len(values))]
    if not all(0 <= d <= k for k, d in enumerate(padded, start=1)):
        raise InvalidArgumentError("discount_fallback", "D1 in [0, 1], D2 in [0, 2], D3+ in [0, 3]", repr(value))
    return np.array([0.0, *padded])
