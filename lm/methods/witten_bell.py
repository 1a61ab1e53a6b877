"""Witten-Bell smoothing (Witten & Bell 1991; as SRILM's ``-wbdiscount``, interpolated or not).

For a context ``h`` with ``S(h)`` the summed count of the words seen after it and ``T(h)`` the
number of distinct such words (pruned ones included in both), the chance that the next word is
new is estimated as ``T / (S + T)``:

* interpolated (default, ``-wbdiscount -interpolate``)::

      p(w|h) = (c(hw) + T(h) p(w|h')) / (S(h) + T(h))

  written as a back-off model: listed n-grams hold that value and ``bow(h) = T / (S + T)``
  exactly (with pruning, plus the pruned words' own share, renormalized).
* back-off (``interpolate=False``): ``p(w|h) = c(hw) / (S + T)`` for listed n-grams, and the
  mass ``(T + pruned counts) / (S + T)`` is backed off with the usual normalizing weight.

The recursion ends at the uniform distribution over the predicted words ``V'`` (all but
``<s>``), with ``T`` = number of distinct words seen and ``S = N`` tokens: interpolated unigrams
are ``(c(w) + T / |V'|) / (N + T)``; back-off unigrams give ``T / (N + T)`` to the words never
seen in equal shares (or to all words, if every word was seen).
"""

from __future__ import annotations

import numpy as np

from speechdecode import _args
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._backoff import (
    BackoffBuilder,
    predicted_mask,
    prepare,
    spread_leftover,
    unigram_counts,
)


def witten_bell(counts: NgramCounts, *, prune: list[int] | None = None, interpolate: bool = True) -> ArpaModel:
    """Witten-Bell smoothed model of order ``counts.order`` (see the module doc).

    Args:
        counts: raw n-gram counts.
        prune: count cutoffs per order, as lmplz's ``--prune``; pruned n-grams stay in ``S`` and
            ``T`` of their context and their mass goes to the back-off weight.
        interpolate: interpolated Witten-Bell (True) or its back-off form (False).

    Example:
        >>> from speechdecode.lm.counts import count_sentences
        >>> model = witten_bell(count_sentences(["a b", "a c"], 2))
        >>> round(float(10 ** model.backoffs[0][3]), 4)  # after "a": S = 2, T = 2 -> bow = 2 / 4
        0.5
    """
    interpolate = _args.boolean(interpolate, "interpolate")
    cutoffs = prepare(counts, prune)
    predicted = predicted_mask(len(counts.vocab))
    size = int(predicted.sum())
    unigram = unigram_counts(counts).astype(np.float64)
    seen = unigram > 0
    total, types = unigram.sum(), float(seen.sum())
    if interpolate:
        probs = np.where(predicted, (unigram + types / size) / (total + types), 0.0)
    else:
        probs = spread_leftover(unigram / (total + types), seen, types / (total + types))
    builder = BackoffBuilder(counts.vocab.words, probs)
    for n in range(2, counts.order + 1):
        data = builder.order_counts(counts, cutoffs[n - 1])
        denominator = np.maximum(data.total + data.types, 1).astype(np.float64)
        new_word = data.types / denominator
        builder.add_order(
            data.rows,
            data.context,
            own=data.counts / denominator[data.context],
            weight=new_word if interpolate else np.zeros(len(denominator)),
            leftover=data.pruned / denominator if interpolate else new_word + data.pruned / denominator,
        )
    return builder.model()
