"""Jelinek-Mercer smoothing: linear interpolation of maximum-likelihood estimates, lambdas by EM.

With ``V'`` the predicted words (all but ``<s>``), one weight ``lambda_n`` per order::

    p_0(w)   = 1 / |V'|
    p_n(w|h) = lambda_n c(hw) / S(h) + (1 - lambda_n) p_{n-1}(w|h')      (S(h) > 0)
    p_n(w|h) = p_{n-1}(w|h')                                            (h never seen)

``S(h)`` is the summed count of the words seen after ``h``. As a back-off model: each seen n-gram
is listed with that value and ``bow(h) = 1 - lambda_n`` exactly (with count cutoffs, pruned
n-grams are not listed and their share goes to the back-off weight, renormalized).

The lambdas are fitted by expectation-maximization on held-out text (Jelinek & Mercer 1980):
the model is a mixture whose latent variable is the order that produced each held-out word;
E-step: the posterior of each order at every held-out word; M-step: ``lambda_n`` = expected
uses of order n / expected passes through order n, over the words whose order-n context was
seen in training. Each iteration cannot lower the held-out likelihood. Counts do not keep
sentence boundaries, so no held-out part can be split off them here: the caller passes held-out
sentences (the CLI holds out a split of the corpus), or held-out counts, or fixed ``lambdas``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts, count_sentences
from speechdecode.lm.methods._backoff import BackoffBuilder, NgramIndex, predicted_mask, prepare, unigram_counts
from speechdecode.lm.vocab import BOS_ID

DEFAULT_MAX_ITER = 100
DEFAULT_TOL = 1e-9


def heldout_events(heldout: NgramCounts, counts: NgramCounts) -> tuple[np.ndarray, np.ndarray]:
    """Every predicted word of held-out text with its full history, as training ids.

    Returns:
        events: int64 [E, N] (N = ``counts.order``) history and word, right-aligned, -1 before
            the sentence start: the order-N n-grams, plus the shorter n-grams that start with
            ``<s>`` (the first N-2 words of each sentence); held-out words unknown to training
            become ``<unk>``.
        weights: float64 [E] how many times each occurs.
    """
    order = counts.order
    if heldout.order < order:
        raise InvalidArgumentError("heldout", f"counts of order >= {order}", f"order {heldout.order}")
    mapping = np.array([counts.vocab.id(w) for w in heldout.vocab.words], dtype=np.int64)
    blocks, weights = [], []
    for m in range(1 if order == 1 else 2, order + 1):
        rows, values = heldout.ngrams[m - 1], heldout.counts[m - 1]
        if m < order:
            keep = rows[:, 0] == BOS_ID  # the first words of a sentence, with less than N-1 before them
        elif order == 1:
            keep = rows[:, 0] != BOS_ID  # every word but the <s> padding
        else:
            keep = np.ones(len(rows), dtype=bool)
        rows, values = rows[keep], values[keep]
        block = np.full((len(rows), order), -1, dtype=np.int64)
        block[:, order - m :] = mapping[rows]
        blocks.append(block)
        weights.append(values.astype(np.float64))
    return np.concatenate(blocks), np.concatenate(weights)


def _level_probs(counts: NgramCounts, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood estimate of every order at each event, and whether it is defined.

    Returns q, active: float64 / bool [E, N + 1]; column 0 is the uniform distribution.
    """
    order = counts.order
    vocab_size = len(counts.vocab)
    index = NgramIndex(counts.ngrams, vocab_size)
    unigram = unigram_counts(counts)
    totals = [float(unigram.sum())]
    for n in range(2, order + 1):
        size = len(counts.ngrams[n - 2])
        totals.append(np.bincount(index.prefix_positions[n - 1], weights=counts.counts[n - 1], minlength=size))
    q = np.zeros((len(events), order + 1))
    active = np.zeros((len(events), order + 1), dtype=bool)
    q[:, 0] = 1.0 / predicted_mask(vocab_size).sum()
    active[:, 0] = True
    for n in range(1, order + 1):
        tail = events[:, order - n :]
        if n == 1:
            total = np.full(len(events), totals[0])
        else:
            total = np.zeros(len(events))
            valid = np.flatnonzero(tail[:, 0] >= 0)
            where = index.find(tail[valid, :-1])
            total[valid[where >= 0]] = totals[n - 1][where[where >= 0]]
        defined = np.flatnonzero(total > 0)
        found = index.find(tail[defined])
        hits = found >= 0
        q[defined[hits], n] = counts.counts[n - 1][found[hits]] / total[defined[hits]]
        active[defined, n] = True
    return q, active


def _mixture(q: np.ndarray, active: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """[E, N + 1] the share of each order in p(word) (orders whose context was unseen share 0)."""
    shares = np.zeros_like(q)
    rest = np.ones(len(q))
    for n in range(q.shape[1] - 1, 0, -1):
        weight = np.where(active[:, n], lambdas[n - 1], 0.0)
        shares[:, n] = rest * weight
        rest = rest * (1.0 - weight)
    shares[:, 0] = rest
    return shares * q


def fit_lambdas(
    counts: NgramCounts, heldout: NgramCounts, *, max_iter: int = DEFAULT_MAX_ITER, tol: float = DEFAULT_TOL
) -> tuple[np.ndarray, list[float]]:
    """EM estimate of the interpolation weights on held-out counts (starting from 0.5 each).

    Returns:
        lambdas: float64 [N], lambda_1..lambda_N.
        trace: held-out log10 likelihood before each update and after the last one
            (non-decreasing); iteration stops when it improves by less than ``tol`` relative,
            or after ``max_iter`` updates.
    """
    events, weights = heldout_events(heldout, counts)
    if len(events) == 0:
        raise InvalidArgumentError("heldout", "at least one held-out sentence", "none")
    q, active = _level_probs(counts, events)
    lambdas = np.full(counts.order, 0.5)
    trace: list[float] = []
    for iteration in range(max_iter + 1):
        parts = _mixture(q, active, lambdas)
        probs = parts.sum(axis=1)
        trace.append(float(weights @ np.log10(probs)))
        if iteration == max_iter or (len(trace) > 1 and trace[-1] - trace[-2] <= tol * abs(trace[-2])):
            break
        posterior = parts / probs[:, None] * weights[:, None]
        below = np.cumsum(posterior, axis=1)
        for n in range(1, counts.order + 1):
            passes = below[active[:, n], n].sum()
            if passes > 0:
                lambdas[n - 1] = posterior[active[:, n], n].sum() / passes
    return lambdas, trace


def _check_lambdas(lambdas, order: int) -> np.ndarray:
    try:
        values = np.asarray(lambdas, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if values.shape != (order,) or not np.all((values >= 0) & (values <= 1)):
        raise InvalidArgumentError("lambdas", f"{order} weights in [0, 1], one per order", lambdas)
    return values


def jelinek_mercer(
    counts: NgramCounts, *, prune: list[int] | None = None, heldout: NgramCounts | Sequence[str] | None = None,
    lambdas: Sequence[float] | None = None, max_iter: int = DEFAULT_MAX_ITER, tol: float = DEFAULT_TOL,
    fitted: dict | None = None,
) -> ArpaModel:  # fmt: skip
    """Jelinek-Mercer interpolated model, lambdas fitted by EM on held-out text (see the module doc).

    Args:
        counts: raw n-gram counts of the training text.
        prune: count cutoffs per order, as lmplz's ``--prune`` (the lambdas are fitted on the
            unpruned estimates; pruned n-grams' mass goes to the back-off weight).
        heldout: held-out sentences (whitespace-separated words) or their counts (order >= the
            model's, e.g. from :func:`~speechdecode.lm.counts.count_sentences`); required unless
            ``lambdas`` is given.
        lambdas: fixed weights lambda_1..lambda_N in [0, 1] instead of fitting them.
        max_iter, tol: EM stops after ``max_iter`` updates or when the held-out log-likelihood
            improves by less than ``tol`` relative.
        fitted: if a dict is given, it receives ``"lambdas"`` (list of N floats) and, when
            fitted, ``"log10_likelihood"`` (the held-out trace, one value per EM step).

    Example:
        >>> from speechdecode.lm.counts import count_sentences
        >>> info = {}
        >>> model = jelinek_mercer(count_sentences(["a b", "a c", "b c"], 2), heldout=["a c", "b b"], fitted=info)
        >>> [0 < x < 1 for x in info["lambdas"]]
        [True, True]
    """
    cutoffs = prepare(counts, prune)
    if lambdas is not None:
        weights = _check_lambdas(lambdas, counts.order)
        trace = None
    else:
        if heldout is None:
            raise InvalidArgumentError("heldout", "held-out sentences or counts (or fixed lambdas=...)", None)
        if not isinstance(heldout, NgramCounts):
            sentences = list(heldout) if isinstance(heldout, Iterable) and not isinstance(heldout, str) else None
            if sentences is None or not all(isinstance(s, str) for s in sentences):
                raise InvalidArgumentError("heldout", "NgramCounts or a list of sentences", type(heldout).__name__)
            heldout = count_sentences(sentences, counts.order)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
            raise InvalidArgumentError("max_iter", "an integer >= 0", repr(max_iter))
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
            raise InvalidArgumentError("tol", "a number >= 0", repr(tol))
        weights, trace = fit_lambdas(counts, heldout, max_iter=max_iter, tol=tol)
    if fitted is not None:
        fitted["lambdas"] = [float(x) for x in weights]
        if trace is not None:
            fitted["log10_likelihood"] = trace

    predicted = predicted_mask(len(counts.vocab))
    unigram = unigram_counts(counts).astype(np.float64)
    probs = np.where(predicted, weights[0] * unigram / unigram.sum() + (1 - weights[0]) / predicted.sum(), 0.0)
    builder = BackoffBuilder(counts.vocab.words, probs)
    for n in range(2, counts.order + 1):
        data = builder.order_counts(counts, cutoffs[n - 1])
        total = np.maximum(data.total, 1).astype(np.float64)
        own = weights[n - 1] / total
        builder.add_order(
            data.rows,
            data.context,
            own=own[data.context] * data.counts,
            weight=np.full(len(total), 1.0 - weights[n - 1]),
            leftover=own * data.pruned,
        )
    return builder.model()
