"""Maximum-likelihood n-gram model, written as a back-off model.

Definition (normalized for every history):

* unigrams: ``p(w) = c(w) / N`` over every word but ``<s>`` (``N`` = all tokens but ``<s>``,
  ``</s>`` included); a vocabulary word never seen, ``<unk>`` usually, gets 0 (log10 -99).
* order n >= 2, context ``h`` with continuations: ``p(w|h) = c(hw) / S(h)``, ``S(h)`` the summed
  count of every word seen after ``h`` (``c(h)`` except at the end of a sentence).
* back-off: nothing is interpolated and nothing discounted, so a context's only back-off mass is
  that of its pruned continuations, ``R(h) = sum of pruned c(hw) / S(h)``, which the back-off
  weight spreads over the words not kept after ``h``, in proportion to the lower-order model.
  Without pruning every seen context uses all its mass: ``bow(h) = 0`` (log10 -99) and an
  unseen word after a seen context has probability 0, as maximum likelihood says. A history
  that was never seen backs off with weight 1.

The model is normalized in every case: with count cutoffs the pruned words have non-zero
lower-order probability (their lower-order n-grams are kept or pruned in turn, down to the
unigrams, which are never pruned), so the back-off denominator is never zero when ``R > 0``.
The price of maximum likelihood is the zeros: held-out text with an unseen event has infinite
perplexity; use it as a baseline and for checking counts.
"""

from __future__ import annotations

import numpy as np

from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._backoff import BackoffBuilder, prepare, unigram_counts


def mle(counts: NgramCounts, *, prune: list[int] | None = None) -> ArpaModel:
    """Maximum-likelihood back-off model of order ``counts.order`` (see the module doc).

    Args:
        counts: raw n-gram counts.
        prune: count cutoffs per order, as lmplz's ``--prune``: n-grams of order >= 2 with count
            <= the cutoff are left out and their mass goes to the back-off weight.

    Example:
        >>> from speechdecode.lm.counts import count_sentences
        >>> model = mle(count_sentences(["a b", "a c"], 2))
        >>> model.words[3], round(float(10 ** model.log10_probs[0][3]), 4)  # c(a) = 2 of 6 tokens
        ('a', 0.3333)
    """
    cutoffs = prepare(counts, prune)
    unigram = unigram_counts(counts).astype(np.float64)
    builder = BackoffBuilder(counts.vocab.words, unigram / unigram.sum())
    for n in range(2, counts.order + 1):
        data = builder.order_counts(counts, cutoffs[n - 1])
        total = np.maximum(data.total, 1).astype(np.float64)
        builder.add_order(
            data.rows,
            data.context,
            own=data.counts / total[data.context],
            weight=np.zeros(len(total)),
            leftover=data.pruned / total,
        )
    return builder.model()
