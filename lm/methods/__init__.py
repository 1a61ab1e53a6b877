"""Smoothing methods: each turns raw n-gram counts into a back-off model.

The contract every method keeps (the registry in :mod:`speechdecode.lm.estimate` maps a name to
one of these functions)::

    method(counts: NgramCounts, *, prune=None, **options) -> ArpaModel

* ``counts`` come from :func:`speechdecode.lm.counts.count_sentences` or the native counter:
  sentences padded ``<s> w1 .. wk </s>``; the model order is ``counts.order``.
* Every word of ``counts.vocab`` is a unigram of the model, ids unchanged (``<unk>`` = 0,
  ``<s>`` = 1, ``</s>`` = 2), except words removed by a unigram count cutoff (``mkn`` and
  ``kn`` accept ``prune[0] > 0``, as lmplz does); ``<s>`` is never predicted and is written
  with log10 prob 0, as KenLM's lmplz writes it.
* ``prune`` takes lmplz's ``--prune`` thresholds (see :func:`._common.prune_thresholds`).
* Options are keyword-only and checked: a bad value raises
  :class:`speechdecode.errors.InvalidArgumentError` naming the option.
* For every history h, ``sum_w p(w | h) = 1`` over all words but ``<s>``
  (:func:`._common.conditional_distribution` computes that distribution from a model).

One module per family of methods (:mod:`.kneser_ney`: ``mkn`` as lmplz and ``kn``;
:mod:`.absolute`; ...). :mod:`._common` holds what they share: the indexed n-gram tables, lmplz's
pruning thresholds, the discounted-model engine and :func:`._common.conditional_distribution`.
"""
