"""Relative-entropy pruning of back-off n-gram models (Stolcke 1998), as SRILM's ``ngram -prune``.

Removing an n-gram ``h w`` (order >= 2) makes the model back off for ``w`` after ``h`` and changes
the back-off weight of ``h`` to keep the distribution normalized. Stolcke measures the damage as
the relative entropy between the model before and after, which only involves the context ``h``::

    D = -p(h) { p(w|h) [log p(w|h') + log bow'(h) - log p(w|h)] + R(h) [log bow'(h) - log bow(h)] }
    bow'(h) = (R(h) + p(w|h)) / (1 - sum_{v listed after h} p(v|h') + p(w|h'))

with ``R(h) = 1 - sum_{v listed after h} p(v|h)`` the back-off mass of ``h`` and ``p(h)`` the
probability of the history under the model itself, by the chain rule along ``h``'s prefixes
(the ``<s>`` that starts a history counts as ``p(</s>)``: a sentence starts where one ends, as
SRILM's ``contextProb`` does). Logs are base 10, so ``10**D - 1`` is the relative increase of the
model's perplexity, and an n-gram is pruned when that is below ``threshold``: exactly the
criterion of ``ngram -prune threshold``.

As in Stolcke's paper and SRILM, every n-gram is judged against the original model
independently of the others (all orders, from the highest down), then the back-off weights of
the contexts that changed are recomputed so each distribution sums to 1 again. An n-gram is kept
whatever its score if it is the prefix (the context) of a kept higher-order n-gram, which needs
its back-off weight, or its suffix, so a pruned model stays closed under suffixes as lmplz's models
are (right-to-left lookups, as KenLM's, find every listed n-gram). Unigrams are never pruned.
"""

from __future__ import annotations

import math

import numpy as np

from speechdecode import _args
from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.methods._backoff import (
    ZERO_MASS,
    NgramIndex,
    backoff_probs,
    backoff_weights,
    from_log10,
    to_log10,
)
from speechdecode.lm.vocab import BOS, EOS

__all__ = ["prune_entropy"]

_TINY = 1e-300


def _log10(values: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(values, _TINY))


def _copy(model: ArpaModel) -> ArpaModel:
    return ArpaModel(
        list(model.words),
        [g.copy() for g in model.ngrams],
        [p.copy() for p in model.log10_probs],
        [b.copy() for b in model.backoffs],
    )


def history_probs(model: ArpaModel, index: NgramIndex, probs: list[np.ndarray]) -> list[np.ndarray]:
    """p(h) of every listed n-gram h by the chain rule; a leading ``<s>`` counts as ``p(</s>)``."""
    first = probs[0].copy()
    if BOS in model.words and EOS in model.words:
        first[model.words.index(BOS)] = probs[0][model.words.index(EOS)]
    marginals = [first]
    for n in range(2, model.order + 1):
        marginals.append(marginals[-1][index.prefix_positions[n - 1]] * probs[n - 1])
    return marginals


def prune_entropy(model: ArpaModel, threshold: float) -> ArpaModel:
    """The model without the n-grams whose removal raises its perplexity by less than ``threshold``.

    Args:
        model: a back-off model whose n-grams' prefixes are all listed (every model this package
            or lmplz/SRILM writes), e.g. from :func:`speechdecode.lm.estimate.estimate` or
            :func:`speechdecode.lm.arpa.read_arpa`.
        threshold: relative perplexity increase, as SRILM's ``ngram -prune`` takes it (e.g.
            ``1e-8``; about ``ln(10) x`` the relative entropy in log10 units); 0 prunes nothing.

    Returns:
        a new model: the kept n-grams in their original order with their original probabilities,
        and back-off weights recomputed where a context lost n-grams (or backs off to one that
        did), so that every distribution is normalized; the others are unchanged.

    Raises:
        InvalidArgumentError: a negative or non-finite threshold, or an n-gram whose prefix is
            not listed.

    Example:
        >>> from speechdecode.testing import SentenceGenerator
        >>> from speechdecode.lm.counts import count_sentences
        >>> from speechdecode.lm.methods.katz import katz
        >>> model = katz(count_sentences(SentenceGenerator(0).sentences(300), 3))
        >>> [len(g) for g in model.ngrams], [len(g) for g in prune_entropy(model, 1e-5).ngrams]
        ([286, 1698, 2008], [286, 1615, 507])
    """
    if not isinstance(model, ArpaModel):
        raise InvalidArgumentError("model", "an ArpaModel", type(model).__name__)
    _args.real(threshold, "threshold", low=0.0)
    order = model.order
    if threshold == 0 or order == 1:
        return _copy(model)
    vocab_size = len(model.words)
    index = NgramIndex(model.ngrams, vocab_size)
    probs = [from_log10(p) for p in model.log10_probs]
    bows = [from_log10(b) for b in model.backoffs[:-1]] + [np.ones(len(model.ngrams[-1]))]
    marginals = history_probs(model, index, probs)

    lowers: list[np.ndarray] = [np.zeros(0)] * order
    keep = [np.ones(len(g), dtype=bool) for g in model.ngrams]
    protected = np.zeros(len(model.ngrams[-1]), dtype=bool)
    for n in range(order, 1, -1):
        rows, p = model.ngrams[n - 1], probs[n - 1]
        context = index.prefix_positions[n - 1]
        size = len(model.ngrams[n - 2])
        lower = backoff_probs(index, probs, bows, rows[:, 1:])
        lowers[n - 1] = lower
        mass = np.maximum(1.0 - np.bincount(context, weights=p, minlength=size), 0.0)[context]
        room = (1.0 - np.bincount(context, weights=lower, minlength=size))[context]
        new_bow = (mass + p) / np.maximum(room + lower, _TINY)
        change = -marginals[n - 2][context] * (
            p * (_log10(lower) + _log10(new_bow) - _log10(p)) + mass * (_log10(new_bow) - _log10(bows[n - 2][context]))
        )
        keep[n - 1] = ~((np.expm1(np.maximum(change, 0.0) * math.log(10.0)) < threshold) & ~protected)
        protected = np.zeros(size, dtype=bool)
        protected[context[keep[n - 1]]] = True
        suffix = index.find(rows[keep[n - 1], 1:])
        protected[suffix[suffix >= 0]] = True
    return _rebuild(model, index, probs, bows, lowers, keep)


def _rebuild(model, index, probs, bows, lowers, keep) -> ArpaModel:
    """The kept n-grams, with the back-off weights of the contexts that changed recomputed."""
    order, vocab_size = model.order, len(model.words)
    ngrams = [g[k] for g, k in zip(model.ngrams, keep, strict=True)]
    new_index = NgramIndex(ngrams, vocab_size)
    new_probs = [p[k] for p, k in zip(probs, keep, strict=True)]
    new_bows = [b[k] for b, k in zip(bows, keep, strict=True)]
    log10_probs = [p[k] for p, k in zip(model.log10_probs, keep, strict=True)]
    backoffs = [b[k] for b, k in zip(model.backoffs[:-1], keep[:-1], strict=True)] + [np.zeros(0)]
    for n in range(2, order + 1):
        size = len(ngrams[n - 2])
        context = new_index.prefix_positions[n - 1]
        lower = backoff_probs(new_index, new_probs, new_bows, ngrams[n - 1][:, 1:])
        # children per context before and after, on the new (n-1)-gram positions
        old_position = np.full(len(keep[n - 2]), -1)
        old_position[keep[n - 2]] = np.arange(size)
        old_context = old_position[index.prefix_positions[n - 1]]
        before = np.bincount(old_context[old_context >= 0], minlength=size)
        after = np.bincount(context, minlength=size)
        differs = (lower != lowers[n - 1][keep[n - 1]]).astype(np.float64)
        moved = np.bincount(context, weights=differs, minlength=size) > 0
        changed = (after > 0) & ((after != before) | moved)
        emptied = (after == 0) & (before > 0)
        new_bows[n - 2][emptied] = 1.0
        backoffs[n - 2][emptied] = 0.0
        if not changed.any():
            continue
        mass = 1.0 - np.bincount(context, weights=new_probs[n - 1], minlength=size)
        mass = np.where(mass > ZERO_MASS, mass, 0.0)
        room = 1.0 - np.bincount(context, weights=lower, minlength=size)
        bow, scale = backoff_weights(np.zeros(int(changed.sum())), mass[changed], room[changed])
        new_bows[n - 2][changed] = bow
        backoffs[n - 2][changed] = to_log10(bow)
        factor = np.ones(size)
        factor[changed] = scale
        rescaled = factor[context] != 1.0
        if rescaled.any():
            new_probs[n - 1] = new_probs[n - 1] * factor[context]
            log10_probs[n - 1][rescaled] = to_log10(new_probs[n - 1][rescaled])
    return ArpaModel(list(model.words), ngrams, log10_probs, backoffs)
