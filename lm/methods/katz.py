"""Katz back-off with Good-Turing discounts (Katz 1987): SRILM's default ``ngram-count`` method.

Per order n, with ``n_r`` the number of order-n n-grams seen exactly ``r`` times (pruned ones
included; for unigrams, every word but ``<s>``):

* Good-Turing: a count ``r`` is worth ``r* = (r + 1) n_{r+1} / n_r``.
* Katz keeps counts above ``k`` (default 5) as they are and scales the Good-Turing discount of
  counts ``1 <= r <= k`` so that the mass taken from them is exactly the mass Good-Turing gives to
  unseen events (``n_1 / total``):

      d_r = (r*/r - A) / (1 - A),   A = (k + 1) n_{k+1} / n_1.

  As SRILM does: ``k`` is lowered while ``n_{k+1} = 0``; no discounting if ``n_1 = 0``; a ratio
  that is not in (0, 1] (possible on small or odd data: ``n_{r+1} > n_r``) is replaced by 1.
* ``p(w|h) = d_{c(hw)} c(hw) / S(h)`` for kept n-grams (``S(h)``: summed count of all the words
  seen after ``h``, pruned ones included); unigrams likewise with ``S = N`` tokens.
* The mass left over, ``R(h) = (sum_w (1 - d_c) c(hw) + pruned counts) / S(h)``, goes to the
  words not listed after ``h`` through the back-off weight
  ``alpha(h) = R(h) / (1 - sum_{w listed} p(w|h'))``, computed exactly. At the unigram level it
  is shared equally by the words never seen (``<unk>`` usually), or by all words if every word
  was seen (SRILM's ``distributeProb``).
* Where a context keeps no mass at all (all its counts above ``k``, nothing pruned) while some
  words were never seen after it, its total is increased by one (Doug Paul's fix, as SRILM), so
  unseen words do not get probability 0.

The discounts actually used are reported through ``fitted`` (see :func:`katz`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._backoff import (
    BackoffBuilder,
    predicted_mask,
    prepare,
    spread_leftover,
    unigram_counts,
)

DEFAULT_MAX_COUNT = 5


def good_turing_discounts(counts: np.ndarray, max_count: int) -> np.ndarray:
    """Katz's discount ratios ``d_r`` for counts ``r = 0..max_count`` (``d_0`` unused, 1).

    Args:
        counts: int [M] the counts of every n-gram of one order (zeros are ignored).
        max_count: ``k``, the largest count discounted.

    Returns:
        float64 [max_count + 1]: ``d[r]`` multiplies a count ``r``; 1 where nothing is discounted.

    >>> good_turing_discounts(np.array([1] * 10 + [2] * 4 + [3] * 2), 2)  # n1=10, n2=4, n3=2
    array([1.   , 0.5  , 0.375])
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = np.bincount(counts[counts > 0], minlength=max_count + 2).astype(np.float64)
    discounts = np.ones(max_count + 1)
    top = max_count if n[1] > 0 else 0
    while top > 0 and n[top + 1] == 0:
        top -= 1
    if top == 0:
        return discounts
    common = (top + 1) * n[top + 1] / n[1]
    if common >= 1.0:
        return discounts
    for r in range(1, top + 1):
        if n[r] == 0:
            continue
        ratio = (r + 1) * n[r + 1] / (r * n[r])
        coefficient = (ratio - common) / (1.0 - common)
        if 0.0 < coefficient <= 1.0 and ratio <= 1.0:
            discounts[r] = coefficient
    return discounts


def _max_counts(k: int | Sequence[int], order: int) -> list[int]:
    values = [k] if np.isscalar(k) else list(k)
    ok = values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values)
    if not ok or len(values) not in (1, order):
        raise InvalidArgumentError(
            "k", f"an integer >= 0 (the largest count discounted), or one per order ({order})", k
        )
    return [int(v) for v in values] * (order if len(values) == 1 else 1)


def _discount(counts: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    """d_c for each count c (1 above the discounted range)."""
    return np.where(counts < len(discounts), discounts[np.minimum(counts, len(discounts) - 1)], 1.0)


def katz(
    counts: NgramCounts, *, prune: list[int] | None = None, k: int | Sequence[int] = DEFAULT_MAX_COUNT,
    fitted: dict | None = None,
) -> ArpaModel:  # fmt: skip
    """Katz back-off model with Good-Turing discounts (see the module doc).

    Args:
        counts: raw n-gram counts.
        prune: count cutoffs per order, as lmplz's ``--prune``; pruned n-grams still count in
            the count-of-counts and in their context's total, and their mass is backed off.
        k: the largest count that is discounted (0 disables discounting), for all orders or one
            per order.
        fitted: if a dict is given, it receives ``"discounts"``: per order, float64 [k + 1] the
            ratios ``d_r`` used (``d_0`` = 1 unused; 1 where a count was left undiscounted).

    Example:
        >>> from speechdecode.testing import SentenceGenerator
        >>> from speechdecode.lm.counts import count_sentences
        >>> info = {}
        >>> model = katz(count_sentences(SentenceGenerator(0).sentences(500), 2), fitted=info)
        >>> info["discounts"][1].round(3)  # bigrams: d_0 (unused) .. d_5
        array([1.   , 0.298, 0.396, 0.649, 0.52 , 0.958])
    """
    cutoffs = prepare(counts, prune)
    ks = _max_counts(k, counts.order)
    predicted = predicted_mask(len(counts.vocab))
    size = int(predicted.sum())
    unigram = unigram_counts(counts)
    tables = [good_turing_discounts(unigram, ks[0])]

    seen = unigram > 0
    kept_mass = (_discount(unigram, tables[0]) * unigram)[seen]
    total = float(unigram.sum())
    leftover = float((unigram[seen] - kept_mass).sum())
    if leftover <= 0 and seen.sum() < size:
        total += 1.0
        leftover += 1.0
    probs = np.zeros(len(unigram))
    probs[seen] = kept_mass / total
    builder = BackoffBuilder(counts.vocab.words, spread_leftover(probs, seen, leftover / total))

    for n in range(2, counts.order + 1):
        data = builder.order_counts(counts, cutoffs[n - 1])
        discounts = good_turing_discounts(data.all_counts, ks[n - 1])
        tables.append(discounts)
        kept = _discount(data.counts, discounts) * data.counts
        context_size = len(data.total)
        taken = np.bincount(data.context, weights=data.counts - kept, minlength=context_size) + data.pruned
        denominator = data.total.astype(np.float64)
        stuck = (taken <= 0) & (data.types < size)
        denominator[stuck] += 1.0
        taken[stuck] += 1.0
        denominator = np.maximum(denominator, 1.0)
        builder.add_order(
            data.rows,
            data.context,
            own=kept / denominator[data.context],
            weight=np.zeros(context_size),
            leftover=taken / denominator,
        )
    if fitted is not None:
        fitted["discounts"] = tables
    return builder.model()
