"""Absolute discounting (Ney, Essen & Kneser 1994): one discount per order on raw counts.

Every order is estimated from raw counts (no Kneser-Ney continuation counts):
``u(w|c) = (c(c w) - D) / S(c)`` with ``S(c) = sum_x c(c x)`` and, per order,
``D = t1 / (t1 + 2 t2)`` from the raw count-of-counts t_k of that order (pruned n-grams
included; ``<s>``'s unigram excluded). The freed mass ``gamma(c) = D N1+(c) / S(c)`` (plus the
mass of pruned extensions) goes to the next lower order, interpolated or backed off; see
:func:`._common.discounted_model`.
"""

from __future__ import annotations

from collections.abc import Sequence

from speechdecode import _args
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._common import (
    count_of_counts,
    discounted_model,
    ngram_tables,
    prune_thresholds,
    pruned_masks,
    raw_counts,
)
from speechdecode.lm.methods.kneser_ney import check_single_fallback, single_discounts


def absolute_discounting(
    counts: NgramCounts,
    *,
    prune: Sequence[int] | None = None,
    interpolate: bool = True,
    discount_fallback: float = 0.5,
) -> ArpaModel:
    """Absolute discounting with D = t1 / (t1 + 2 t2) per order, on raw counts.

    Args:
        counts: raw n-gram counts; the model has their order.
        prune: count thresholds as lmplz's ``--prune`` (:func:`._common.prune_thresholds`).
        interpolate: interpolate with the lower order (default) or back off to it only for
            unseen n-grams.
        discount_fallback: the D, in (0, 1], of an order without n-grams seen once or twice
            (warns with :class:`speechdecode.lm.methods.kneser_ney.DiscountFallbackWarning`).

    Returns:
        the model (float64 arithmetic), n-grams in lmplz's order.

    Raises:
        InvalidArgumentError: bad counts or option.
    """
    interpolate = _args.boolean(interpolate, "interpolate")
    fallback = check_single_fallback(discount_fallback)
    tables = ngram_tables(counts)
    thresholds = prune_thresholds(prune, tables.order)
    values = raw_counts(tables)
    discounts = single_discounts([count_of_counts(v) for v in values], fallback, "absolute", "count")
    return discounted_model(tables, values, discounts, pruned_masks(tables, thresholds), interpolate=interpolate)
