"""Shared machinery of the classic smoothing methods: n-gram lookup and exact back-off weights.

Every method in this folder (mle, additive, katz, witten_bell, jelinek_mercer) describes each kept
n-gram ``h w`` of order n >= 2 by an own part ``a(hw)`` and an interpolation weight ``g(h)`` on
the lower-order model, ``p(w|h) = a(hw) + g(h) p(w|h')`` (``h'`` = ``h`` minus its first word;
``g = 0`` for back-off methods), and gives for each context the mass ``R(h) = 1 - g(h) - sum_w
a(hw)`` that its own parts leave over (unseen and pruned continuations). Each method computes
``R`` from the counts it leaves out, never as ``1 - sum``, so it has no cancellation error and is
exactly 0 when nothing is left. Then

    bow(h) = g(h) + R(h) / (1 - sum_{w: hw kept} p(w|h'))

makes ``sum_w p(w|h) = 1`` over every word but ``<s>`` (SRILM's ``computeBOW``, written for the
split form: with nothing pruned an interpolated method gets ``bow = g`` exactly). When the
denominator is zero (the kept words already hold all lower-order mass) the leftover cannot be
backed off; the context's probabilities are then scaled up to sum to 1, as SRILM does.

Tables are kept as linear float64 probabilities while a model is built; ``to_log10`` floors
zeros at ``LOG10_ZERO`` (-99, SRILM's and the ARPA world's "log of zero").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods._common import ngram_tables, prune_thresholds
from speechdecode.lm.vocab import BOS_ID

LOG10_ZERO = -99.0
# A back-off denominator below this is treated as zero (no lower-order mass left for the context).
ZERO_MASS = 1e-12


def to_log10(values: np.ndarray) -> np.ndarray:
    """log10 of linear probabilities or weights, with 0 written as ``LOG10_ZERO``."""
    out = np.full(len(values), LOG10_ZERO)
    positive = values > 0
    out[positive] = np.maximum(np.log10(values[positive]), LOG10_ZERO)
    return out


def from_log10(values: np.ndarray) -> np.ndarray:
    """Linear values of log10 ones; ``LOG10_ZERO`` (or below) reads as 0."""
    return np.where(values <= LOG10_ZERO, 0.0, np.power(10.0, values))


class NgramIndex:
    """Finds word-id rows in per-order n-gram tables (any row order).

    An n-gram is keyed by ``position of its prefix in the (n-1)-gram table * V + last word``
    (int64), so each order needs one sorted key array and lookups are ``searchsorted`` calls.
    Every n-gram's prefix must be in the table of the order below.
    """

    def __init__(self, ngrams: Sequence[np.ndarray], vocab_size: int):
        self.vocab_size = int(vocab_size)
        self._keys: list[np.ndarray] = []
        self._perm: list[np.ndarray] = []
        self.prefix_positions: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        for n, rows in enumerate(ngrams, start=1):
            if n == 1:
                keys = rows[:, 0].astype(np.int64)
            else:
                prefix = self.find(rows[:, :-1])
                if len(prefix) and prefix.min() < 0:
                    bad = rows[int(np.argmin(prefix))].tolist()
                    raise InvalidArgumentError(
                        "ngrams", f"the first {n - 1} words of every {n}-gram listed among the {n - 1}-grams", bad
                    )
                self.prefix_positions.append(prefix)
                keys = prefix * self.vocab_size + rows[:, -1]
            perm = np.argsort(keys, kind="stable")
            self._keys.append(keys[perm])
            self._perm.append(perm)

    @property
    def order(self) -> int:
        return len(self._keys)

    def _lookup(self, level: int, keys: np.ndarray) -> np.ndarray:
        table = self._keys[level]
        if len(table) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        return np.where(table[at] == keys, self._perm[level][at], -1)

    def find(self, rows: np.ndarray) -> np.ndarray:
        """Positions of ``rows`` (int [R, n], n <= order) in the n-gram table; -1 where absent."""
        rows = np.asarray(rows)
        positions = self._lookup(0, rows[:, 0].astype(np.int64))
        for k in range(1, rows.shape[1]):
            found = positions >= 0
            keys = np.where(found, positions, 0) * self.vocab_size + rows[:, k]
            positions = np.where(found, self._lookup(k, keys), -1)
        return positions


def backoff_probs(index: NgramIndex, probs: Sequence[np.ndarray], bows: Sequence[np.ndarray], rows: np.ndarray):
    """Linear ``p(w|h)`` of the back-off model for each row ``h w`` (int [R, m]).

    ``probs[n-1]`` / ``bows[n-1]``: linear probabilities and back-off weights of the order-n table
    (a weight of 1 where an n-gram is no context). The usual ARPA rule: the longest explicit
    suffix ``h_i..h_k w`` gives its probability times the weights of the contexts skipped.
    """
    rows = np.asarray(rows)
    count, m = rows.shape
    out = np.ones(count)
    pending = np.arange(count)
    for start in range(m):
        length = m - start
        positions = index.find(rows[pending, start:]) if length <= index.order else np.full(len(pending), -1)
        hit = positions >= 0
        out[pending[hit]] *= probs[length - 1][positions[hit]]
        pending = pending[~hit]
        if length == 1:
            out[pending] = 0.0  # a word that is not in the model
            break
        if len(pending) == 0:
            break
        context = index.find(rows[pending, start : m - 1]) if length - 1 <= index.order else np.full(len(pending), -1)
        known = context >= 0
        out[pending[known]] *= bows[length - 2][context[known]]
    return out


@dataclass
class OrderCounts:
    """The order-n counts a method estimates from, arranged around the model's (n-1)-gram table.

    Attributes:
        rows: int32 [K, n] the kept n-grams (sorted), which become the model's order-n table.
        counts: int64 [K] their raw counts.
        context: int64 [K] position of each kept n-gram's first n-1 words in the model's table.
        total: int64 [C] per (n-1)-gram of the model, S(h): the summed counts of all its
            continuations, pruned ones included (C = size of the model's (n-1)-gram table).
        types: int64 [C] N1+(h): how many distinct words follow h, pruned ones included.
        pruned: int64 [C] the summed counts of h's pruned continuations.
        kept_types: int64 [C] how many continuations of h are kept.
        all_counts: int64 [M] every order-n count (pruned included), e.g. for count-of-counts.
    """

    rows: np.ndarray
    counts: np.ndarray
    context: np.ndarray
    total: np.ndarray
    types: np.ndarray
    pruned: np.ndarray
    kept_types: np.ndarray
    all_counts: np.ndarray


def prepare(counts: NgramCounts, prune: Sequence[int] | None) -> list[int]:
    """Check ``counts`` and ``prune`` as every method does; the count cutoff of each order.

    ``prune`` takes lmplz's ``--prune`` thresholds (:func:`._common.prune_thresholds`): they
    never decrease, so every kept n-gram keeps its prefix and suffix (their counts are larger).
    """
    ngram_tables(counts)
    return [int(t) for t in prune_thresholds(prune, counts.order)]


def predicted_mask(vocab_size: int) -> np.ndarray:
    """bool [V]: the words a model predicts (all but ``<s>``)."""
    mask = np.ones(vocab_size, dtype=bool)
    mask[BOS_ID] = False
    return mask


def unigram_counts(counts: NgramCounts) -> np.ndarray:
    """int64 [V] the count of every vocabulary word (0 for words never seen); ``<s>``'s is 0."""
    out = np.zeros(len(counts.vocab), dtype=np.int64)
    out[counts.ngrams[0][:, 0]] = counts.counts[0]
    out[BOS_ID] = 0
    return out


def spread_leftover(probs: np.ndarray, seen: np.ndarray, leftover: float) -> np.ndarray:
    """Add a unigram leftover mass to the unseen predicted words, or to all of them if none is.

    ``probs``: float [V] linear unigram probabilities of the seen words (0 elsewhere); ``seen``:
    bool [V] over predicted words. SRILM's ``distributeProb``: a back-off model's unigram level
    backs off to the uniform distribution over the words it does not list.
    """
    probs = probs.copy()
    predicted = predicted_mask(len(probs))
    targets = predicted & ~seen
    if not targets.any():
        targets = predicted
    probs[targets] += leftover / targets.sum()
    return probs


class BackoffBuilder:
    """Builds a back-off model order by order from the split form described in the module doc."""

    def __init__(self, words: list[str], unigram_probs: np.ndarray):
        self.words = words
        self.vocab_size = len(words)
        unigram = np.asarray(unigram_probs, dtype=np.float64).copy()
        unigram[BOS_ID] = 1.0  # <s> is never predicted; lmplz writes its log10 prob as 0
        self.probs = [unigram]
        self.bows = [np.ones(self.vocab_size)]
        self.ngrams = [np.arange(self.vocab_size, dtype=np.int32)[:, None]]
        self.index = NgramIndex(self.ngrams, self.vocab_size)

    @property
    def order(self) -> int:
        return len(self.ngrams)

    def order_counts(self, counts: NgramCounts, cutoff: int) -> OrderCounts:
        """The counts of order ``self.order + 1``, n-grams with count <= ``cutoff`` pruned."""
        n = self.order + 1
        rows, values = counts.ngrams[n - 1], counts.counts[n - 1]
        context = self.index.find(rows[:, :-1])
        keep = (values > cutoff) & (context >= 0)
        size = len(self.ngrams[-1])
        known = context >= 0

        def per_context(weights: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
            sums = np.bincount(context[mask], weights=None if weights is None else weights[mask], minlength=size)
            return np.rint(sums).astype(np.int64)

        total = per_context(values, known)
        kept_total = per_context(values, keep)
        return OrderCounts(
            rows=rows[keep],
            counts=values[keep],
            context=context[keep],
            total=total,
            types=per_context(None, known),
            pruned=total - kept_total,
            kept_types=per_context(None, keep),
            all_counts=values,
        )

    def add_order(self, rows, context, own, weight, leftover) -> None:
        """Add the order-n table and set the back-off weights of the (n-1)-grams.

        Args:
            rows: int32 [K, n] kept n-grams; context: int64 [K] their (n-1)-gram positions.
            own: float [K] a(hw). weight, leftover: float [C] g(h) and R(h) per (n-1)-gram
                (only contexts with kept n-grams are read).
        """
        lower = backoff_probs(self.index, self.probs, self.bows, rows[:, 1:])  # p(w|h')
        size = len(self.ngrams[-1])
        probs = own + weight[context] * lower
        has = np.bincount(context, minlength=size) > 0
        denominator = 1.0 - np.bincount(context, weights=lower, minlength=size)
        bows = np.ones(size)
        bows[has], scale = backoff_weights(weight[has], leftover[has], denominator[has])
        factor = np.ones(size)
        factor[has] = scale
        probs = probs * factor[context]
        self.bows[-1] = bows
        self.ngrams.append(np.asarray(rows, dtype=np.int32))
        self.probs.append(probs)
        self.bows.append(np.ones(len(rows)))
        self.index = NgramIndex(self.ngrams, self.vocab_size)

    def model(self) -> ArpaModel:
        backoffs = [to_log10(b) for b in self.bows[:-1]]  # log10 1 = 0: no back-off weight
        return ArpaModel(
            list(self.words), list(self.ngrams), [to_log10(p) for p in self.probs], [*backoffs, np.zeros(0)]
        )


def backoff_weights(weight: np.ndarray, leftover: np.ndarray, denominator: np.ndarray):
    """``bow = g + R / denominator`` per context, and the factor to scale its explicit probabilities by.

    Where the denominator is (numerically) zero, the leftover ``R`` cannot be backed off: the
    explicit probabilities are scaled by ``1 / (1 - R)`` to take it, and the weight stays ``g``.
    """
    bows = np.asarray(weight, dtype=np.float64).copy()
    scale = np.ones(len(bows))
    empty = denominator <= ZERO_MASS
    room = ~empty
    bows[room] += leftover[room] / denominator[room]
    stuck = empty & (leftover > 0)
    scale[stuck] = 1.0 / (1.0 - leftover[stuck])
    return bows, scale
