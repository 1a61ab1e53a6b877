"""Additive smoothing (Laplace for ``k = 1``, Lidstone for other ``k``), as a back-off model.

With ``V'`` the predicted words (the vocabulary but ``<s>``), each order adds ``k`` to every count:

* unigrams: ``p(w) = (c(w) + k) / (N + k |V'|)`` for every word of ``V'``, seen or not: exactly
  additive smoothing.
* order n >= 2, context ``h`` with continuations: a kept n-gram gets exactly the additive
  estimate ``p(w|h) = (c(hw) + k) / (S(h) + k |V'|)``, ``S(h)`` the summed count of all words
  seen after ``h``. The other words get, together, exactly the mass additive smoothing gives them,
  ``R(h) = (k (|V'| - kept(h)) + pruned count) / (S(h) + k |V'|)``, but shared in proportion to
  the lower-order model (the back-off weight) instead of uniformly: listing every possible
  n-gram is not an option, and the lower order knows which words are likely.
* a history never seen backs off to the lower order with weight 1 (pure additive smoothing would
  give it the uniform distribution).

``k`` may differ per order (a list). The result is a valid, normalized ARPA model. Additive
smoothing gives unseen events far too much mass when ``|V'|`` is large; it is a baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._backoff import BackoffBuilder, predicted_mask, prepare, unigram_counts


def _per_order(k: float | Sequence[float], order: int) -> list[float]:
    values = [k] if np.isscalar(k) else list(k)
    ok = values and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v) and v > 0 for v in values
    )
    if not ok or len(values) not in (1, order):
        raise InvalidArgumentError("k", f"a number > 0, or one per order ({order})", k)
    return [float(v) for v in values] * (order if len(values) == 1 else 1)


def additive(counts: NgramCounts, *, prune: list[int] | None = None, k: float | Sequence[float] = 1.0) -> ArpaModel:
    """Add-k smoothed back-off model of order ``counts.order`` (see the module doc).

    Args:
        counts: raw n-gram counts.
        prune: count cutoffs per order, as lmplz's ``--prune``; pruned n-grams' counts stay in
            their context's total and their mass goes to the back-off weight.
        k: the pseudo-count added to every count (1: Laplace; other values: Lidstone), one value
            for all orders or one per order.

    Example:
        >>> from speechdecode.lm.counts import count_sentences
        >>> model = additive(count_sentences(["a b", "a c"], 1), k=1.0)
        >>> round(float(10 ** model.log10_probs[0][0]), 4)  # <unk>: (0 + 1) / (6 + 1 * 5)
        0.0909
    """
    cutoffs = prepare(counts, prune)
    ks = _per_order(k, counts.order)
    predicted = predicted_mask(len(counts.vocab))
    size = int(predicted.sum())
    unigram = np.where(predicted, unigram_counts(counts) + ks[0], 0.0)
    builder = BackoffBuilder(counts.vocab.words, unigram / unigram.sum())
    for n in range(2, counts.order + 1):
        data = builder.order_counts(counts, cutoffs[n - 1])
        denominator = data.total + ks[n - 1] * size
        builder.add_order(
            data.rows,
            data.context,
            own=(data.counts + ks[n - 1]) / denominator[data.context],
            weight=np.zeros(len(denominator)),
            leftover=(ks[n - 1] * (size - data.kept_types) + data.pruned) / denominator,
        )
    return builder.model()
