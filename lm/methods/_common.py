"""What the smoothing methods share: indexed n-gram tables, pruning, the discounted-model engine,
and :func:`conditional_distribution`, the check that a model's distributions sum to one.

Tables are flat numpy arrays, one set per order; an n-gram is addressed by its row number, and
each row knows the row of its context (first n-1 words) and of its suffix (last n-1 words) one
order down. Everything below works on whole orders at once.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.vocab import BOS, BOS_ID, EOS_ID, UNK_ID


@dataclass
class NgramTables:
    """Raw counts indexed for estimation. Lists are per order n (index n-1).

    Attributes:
        words: the vocabulary; every word is a unigram and unigram row i is word i.
        rows: int32 [M_n, n] unique word-id rows, sorted lexicographically (orders >= 2 are
            ``counts.ngrams`` as given).
        counts: int64 [M_n] raw counts (0 for vocabulary words that never occur; for ``<s>``,
            the number of sentences).
        context: int64 [M_n] row, in order n-1, of the first n-1 words; all 0 for unigrams
            (the empty context). Non-decreasing, since rows are sorted.
        suffix: int64 [M_n] row, in order n-1, of the last n-1 words; -1 for unigrams.
    """

    words: list[str]
    rows: list[np.ndarray]
    counts: list[np.ndarray]
    context: list[np.ndarray]
    suffix: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.rows)

    def size(self, n: int) -> int:
        """Number of n-grams; 1 for n = 0 (the empty context)."""
        return 1 if n == 0 else len(self.rows[n - 1])

    def lookup(self, n: int, query: np.ndarray) -> np.ndarray:
        """Rows, in order n, of the word-id rows ``query`` [K, n]; -1 where one is absent."""
        query = np.asarray(query, dtype=np.int64).reshape(-1, n)
        vocab_size = len(self.words)
        if n == 1:
            words = query[:, 0]
            return np.where((words >= 0) & (words < vocab_size), words, -1)
        keys = self._keys(n)
        if len(keys) == 0:
            return np.full(len(query), -1, dtype=np.int64)
        prefix = self.lookup(n - 1, query[:, :-1])
        wanted = prefix * vocab_size + query[:, -1]
        pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return np.where((prefix >= 0) & (keys[pos] == wanted), pos, -1)

    def _keys(self, n: int) -> np.ndarray:
        # (context row, last word) packed in one int64: ascending because rows are sorted.
        return self.context[n - 1] * len(self.words) + self.rows[n - 1][:, -1]

    def per_context(self, n: int, mask: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
        """Sum over the n-grams of each context (a row of order n-1) of ``weights`` (or 1).

        Returns float64 [size(n-1)] (exact for integer sums below 2**53).
        """
        context = self.context[n - 1]
        if mask is not None:
            context = context[mask]
            weights = None if weights is None else weights[mask]
        return np.bincount(context, weights=weights, minlength=self.size(n - 1)).astype(np.float64)


def ngram_tables(counts: NgramCounts) -> NgramTables:
    """Index ``counts`` for estimation (see :class:`NgramTables`); checks that they are usable."""
    if not isinstance(counts, NgramCounts):
        raise InvalidArgumentError("counts", "an NgramCounts", type(counts).__name__)
    order = counts.order
    if order < 1 or len(counts.counts) != order:
        raise InvalidArgumentError("counts", "one n-gram table and one count array per order >= 1",
                                   f"{len(counts.ngrams)} tables, {len(counts.counts)} count arrays")  # fmt: skip
    words = counts.vocab.words
    vocab_size = len(words)
    for n, (grams, values) in enumerate(zip(counts.ngrams, counts.counts, strict=True), start=1):
        if grams.ndim != 2 or grams.shape[1] != n or len(values) != len(grams):
            raise TensorError(f"counts.ngrams[{n - 1}]", f"[M, {n}] rows with M counts",
                              f"shape {grams.shape} with {len(values)} counts")  # fmt: skip
        if len(grams) and (grams.min() < 0 or grams.max() >= vocab_size):
            raise TensorError(f"counts.ngrams[{n - 1}]", f"word ids in [0, {vocab_size})",
                              f"ids in [{grams.min()}, {grams.max()}]")  # fmt: skip
        if len(values) and values.min() < 1:
            raise TensorError(f"counts.counts[{n - 1}]", "counts >= 1", f"minimum {values.min()}")
        if n > 1 and np.any(grams[:, 1:] == BOS_ID):
            raise InvalidArgumentError(f"counts.ngrams[{n - 1}]", "'<s>' only as the first word (sentences padded "
                                       "with one '<s>')", "'<s>' inside an n-gram")  # fmt: skip
    if len(np.unique(counts.ngrams[0][:, 0])) != len(counts.ngrams[0]):
        raise InvalidArgumentError("counts.ngrams[0]", "unique unigrams", "repeated unigrams")
    unigram_counts = np.zeros(vocab_size, dtype=np.int64)
    unigram_counts[counts.ngrams[0][:, 0]] = counts.counts[0]
    if unigram_counts[EOS_ID] == 0:
        raise InvalidArgumentError("counts", "counts of at least one sentence", "no '</s>' unigram")
    tables = NgramTables(
        words=words,
        rows=[np.arange(vocab_size, dtype=np.int32)[:, None]],
        counts=[unigram_counts],
        context=[np.zeros(vocab_size, dtype=np.int64)],
        suffix=[np.full(vocab_size, -1, dtype=np.int64)],
    )
    for n in range(2, order + 1):
        grams = np.ascontiguousarray(counts.ngrams[n - 1], dtype=np.int32)
        context = tables.lookup(n - 1, grams[:, :-1])
        suffix = tables.lookup(n - 1, grams[:, 1:])
        if len(grams) and (context.min() < 0 or suffix.min() < 0):
            bad = grams[np.flatnonzero((context < 0) | (suffix < 0))[0]]
            raise InvalidArgumentError(f"counts.ngrams[{n - 1}]", f"{n}-grams whose first and last {n - 1} words "
                                       f"are {n - 1}-grams", f"{[words[i] for i in bad]}")  # fmt: skip
        tables.rows.append(grams)
        tables.counts.append(np.asarray(counts.counts[n - 1], dtype=np.int64))
        tables.context.append(context)
        tables.suffix.append(suffix)
        if np.any(np.diff(tables._keys(n)) <= 0):
            raise InvalidArgumentError(f"counts.ngrams[{n - 1}]", "unique rows sorted lexicographically", "unsorted")
    return tables


def raw_counts(tables: NgramTables) -> list[np.ndarray]:
    """Raw counts per order with ``<s>``'s unigram count set to 0: ``<s>`` is never predicted."""
    values = [c.copy() for c in tables.counts]
    values[0][BOS_ID] = 0
    return values


def prune_thresholds(prune: Sequence[int] | None, order: int, *, unigrams: bool = False) -> np.ndarray:
    """lmplz's ``--prune`` thresholds: int64 [order], one count cutoff per order.

    An n-gram whose raw count is <= its order's threshold is pruned: left out of the model, its
    mass left to its context's backoff (:func:`pruned_masks`). As in lmplz, the list may be
    shorter than the order (the last value repeats) and must not decrease (so no kept n-gram
    loses a prefix or a suffix: an n-gram never occurs more often than its parts).

    ``unigrams``: whether the calling method prunes unigrams (``mkn`` and ``kn`` do, as lmplz
    does); for the others the unigram threshold must be 0.
    """
    if prune is None:
        return np.zeros(order, dtype=np.int64)
    if isinstance(prune, (str, bytes)) or not isinstance(prune, Sequence) or not prune:
        raise InvalidArgumentError("prune", f"a non-empty list of at most {order} count thresholds", repr(prune))
    if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0 for t in prune):
        raise InvalidArgumentError("prune", "integer thresholds >= 0", repr(prune))
    if len(prune) > order:
        raise InvalidArgumentError("prune", f"at most {order} thresholds (one per order)", repr(prune))
    if not unigrams and prune[0] != 0:
        raise InvalidArgumentError("prune", "0 as the unigram threshold (this method does not prune unigrams)",
                                   repr(prune))  # fmt: skip
    if any(b < a for a, b in itertools.pairwise(prune)):
        raise InvalidArgumentError("prune", "non-decreasing thresholds", repr(prune))
    return np.array([*prune, *[prune[-1]] * (order - len(prune))], dtype=np.int64)


def pruned_masks(tables: NgramTables, thresholds: np.ndarray) -> list[np.ndarray]:
    """Per order, bool [M_n]: the n-grams that ``thresholds`` (from :func:`prune_thresholds`) prune.

    An n-gram is pruned when its raw count is <= its order's threshold, as lmplz's ``--prune``
    (KenLM's lm/builder/adjust_counts.cc marks it, initial_probabilities.cc drops it). Unigrams
    only when the unigram threshold is above 0, and never ``<unk>``, ``<s>`` or ``</s>``
    (lmplz keeps and prints those three whatever their count; of them only ``</s>`` can have a
    count <= the threshold, when there are that few sentences, and lmplz then writes an
    inconsistent file: ``</s>`` listed with log10 probability 0 yet treated as pruned in the
    header's count, the uniform share and ``gamma()``). Vocabulary words that never occur (count 0) are
    pruned too once the unigram threshold is above 0. Since thresholds never decrease, every
    n-gram containing a pruned unigram is itself pruned (its count is at most the word's).
    """
    masks = []
    for n in range(1, tables.order + 1):
        mask = tables.counts[n - 1] <= thresholds[n - 1]
        if n == 1:
            mask &= thresholds[0] > 0
            mask[[UNK_ID, BOS_ID, EOS_ID]] = False
        masks.append(mask)
    return masks


def count_of_counts(values: np.ndarray) -> np.ndarray:
    """int64 [5]: t[k] = number of entries of ``values`` equal to k, for k = 0..4."""
    return np.bincount(values[values < 5], minlength=5)[:5].astype(np.int64)


def discounted_model(
    tables: NgramTables,
    values: list[np.ndarray],
    discounts: list[np.ndarray],
    pruned: list[np.ndarray],
    *,
    interpolate: bool = True,
    dtype: type = np.float64,
) -> ArpaModel:
    """A back-off model from discounted counts, as lmplz builds modified Kneser-Ney.

    For an n-gram ``c w`` with count ``v = values[n-1]`` (adjusted or raw) and discount
    ``D(v) = discounts[n-1][min(v, 3)]``:

    * ``S(c) = sum_x v(c x)`` over all extensions, pruned ones included;
    * ``u(w|c) = (v(c w) - D(v(c w))) / S(c)``;
    * ``gamma(c) = [D1 N1(c) + D2 N2(c) + D3 N3+(c) + sum over pruned x of v(c x)] / S(c)``,
      ``N_k`` counting unpruned extensions with ``v = k`` (k = 3 meaning >= 3).

    Unigrams are always interpolated with the uniform distribution over every kept unigram but
    ``<s>``: ``p(w) = u(w) + gamma() / |V|``, |V| = number of unpruned unigrams less one (lmplz's
    ``counts_pruned[0] - 1``; pruned unigrams leave their mass to ``gamma()`` like any pruned
    n-gram). Above, ``interpolate=True`` gives
    ``p(w|c) = u(w|c) + gamma(c) p(w|c')`` (``c'``: ``c`` less its first word), written with
    backoff ``gamma(c)``; ``interpolate=False`` gives ``p(w|c) = u(w|c)`` for seen ``c w`` and backoff
    ``gamma(c) / (1 - sum over seen c x of p(x|c'))`` (a context followed by every word keeps its
    undiscounted relative frequencies and backoff 1). ``<s>`` gets probability 1 (log10 0).

    ``dtype=np.float32`` reproduces lmplz's single-precision arithmetic, operation for operation.
    Rows of the returned model are in lmplz's order (by last word, then the word before, ...).
    """
    order = tables.order
    real = np.dtype(dtype).type
    vocab_size = int(np.count_nonzero(~pruned[0])) - 1  # kept unigrams but <s>
    # lmplz divides in double and stores the result as a float.
    uniform = real(1.0 / float(real(vocab_size)))
    totals, gammas = [], []
    for n in range(1, order + 1):
        value, keep, context = values[n - 1], ~pruned[n - 1], tables.context[n - 1]
        total = tables.per_context(n, weights=value)
        discount = np.asarray(discounts[n - 1], dtype=real)
        gamma = np.zeros(tables.size(n - 1), dtype=real)
        for k, selected in ((1, value == 1), (2, value == 2), (3, value >= 3)):
            gamma = gamma + discount[k] * tables.per_context(n, keep & selected).astype(real)
        gamma = gamma + tables.per_context(n, ~keep, value).astype(real)
        has = total > 0
        gamma = np.divide(gamma, total.astype(real), out=np.ones_like(gamma), where=has)
        totals.append(total)
        gammas.append(gamma)

    probs = []
    for n in range(1, order + 1):
        value, keep, context = values[n - 1], ~pruned[n - 1], tables.context[n - 1]
        total = totals[n - 1].astype(real)[context]
        discount = np.asarray(discounts[n - 1], dtype=real)[np.minimum(value, 3)]
        u = (value.astype(real) - discount) / total
        if n == 1:
            p = u + gammas[0][context] * uniform
            p[BOS_ID] = 1
        elif interpolate:
            p = u + gammas[n - 1][context] * probs[n - 2][tables.suffix[n - 1]]
        else:
            lower = probs[n - 2][tables.suffix[n - 1]]
            seen = tables.per_context(n, keep, lower.astype(np.float64)).astype(real)
            full = tables.per_context(n, keep) >= vocab_size
            backoff = np.divide(
                gammas[n - 1], 1 - seen, out=np.ones_like(gammas[n - 1]), where=~full & (totals[n - 1] > 0)
            )
            p = np.where(full[context], value.astype(real) / total, u)
            gammas[n - 1] = backoff
        probs.append(p.astype(real))

    kept_rows, log10_probs, backoffs = [], [], []
    with np.errstate(divide="ignore"):
        for n in range(1, order + 1):
            kept = np.flatnonzero(~pruned[n - 1])
            kept = kept[np.lexsort(tables.rows[n - 1][kept].T)]
            kept_rows.append(tables.rows[n - 1][kept])
            log10_probs.append(np.minimum(0.0, _log10(probs[n - 1][kept], real)))
            if n < order:
                is_context = totals[n][kept] > 0
                backoffs.append(np.where(is_context, _log10(gammas[n][kept], real), 0.0))
            else:
                backoffs.append(np.zeros(0))
    return ArpaModel(list(tables.words), kept_rows, log10_probs, backoffs)


def _log10(x: np.ndarray, real: type) -> np.ndarray:
    """log10 as float64: glibc's ``log10f`` (what lmplz calls) when computing in float32."""
    if real is np.float32:
        return glibc_log10f(x).astype(np.float64)
    return np.log10(x.astype(np.float64))


# glibc's logf (since 2.27; from Arm's optimized-routines): ln x = k ln2 + ln c + log1p(z/c - 1) in
# double, with x = 2^k z, z in [0x3f330000, 2 * 0x3f330000) and 1/c, ln c from a 16-entry table.
_LOGF_INVC = np.array([float.fromhex(h) for h in (
    "0x1.661ec79f8f3bep+0", "0x1.571ed4aaf883dp+0", "0x1.49539f0f010bp+0", "0x1.3c995b0b80385p+0",
    "0x1.30d190c8864a5p+0", "0x1.25e227b0b8eap+0", "0x1.1bb4a4a1a343fp+0", "0x1.12358f08ae5bap+0",
    "0x1.0953f419900a7p+0", "0x1p+0", "0x1.e608cfd9a47acp-1", "0x1.ca4b31f026aap-1",
    "0x1.b2036576afce6p-1", "0x1.9c2d163a1aa2dp-1", "0x1.886e6037841edp-1", "0x1.767dcf5534862p-1",
)])  # fmt: skip
_LOGF_LOGC = np.array([float.fromhex(h) for h in (
    "-0x1.57bf7808caadep-2", "-0x1.2bef0a7c06ddbp-2", "-0x1.01eae7f513a67p-2", "-0x1.b31d8a68224e9p-3",
    "-0x1.6574f0ac07758p-3", "-0x1.1aa2bc79c81p-3", "-0x1.a4e76ce8c0e5ep-4", "-0x1.1973c5a611cccp-4",
    "-0x1.252f438e10c1ep-5", "0x0p+0", "0x1.aa5aa5df25984p-5", "0x1.c5e53aa362eb4p-4",
    "0x1.526e57720db08p-3", "0x1.bc2860d22477p-3", "0x1.1058bc8a07ee1p-2", "0x1.4043057b6ee09p-2",
)])  # fmt: skip
_LOGF_LN2 = float.fromhex("0x1.62e42fefa39efp-1")
_LOGF_POLY = tuple(float.fromhex(h) for h in ("-0x1.00ea348b88334p-2", "0x1.5575b0be00b6ap-2", "-0x1.ffffef20a4123p-2"))
# fdlibm's log10f constants (float32 bit patterns): 1/ln 10, log10(2) split in a high and a low part.
_IVLN10, _LOG10_2HI, _LOG10_2LO = np.array([0x3EDE5BD9, 0x3E9A2080, 0x355427DB], dtype=np.uint32).view(np.float32)


def _glibc_logf(x: np.ndarray) -> np.ndarray:
    """float32 [K] in [0.5, 2) -> float32 ln x, bit for bit as glibc's logf."""
    bits = x.view(np.uint32)
    offset = bits - np.uint32(0x3F330000)
    entry = (offset >> np.uint32(19)) & np.uint32(15)
    exponent = (offset.view(np.int32) >> 23).astype(np.float64)
    z = (bits - (offset & np.uint32(0xFF800000))).view(np.float32).astype(np.float64)
    r = z * _LOGF_INVC[entry] - 1.0
    r2 = r * r
    poly = _LOGF_POLY[0] * r2 + (_LOGF_POLY[1] * r + _LOGF_POLY[2])
    y = poly * r2 + ((_LOGF_LOGC[entry] + exponent * _LOGF_LN2) + r)
    return np.where(bits == np.uint32(0x3F800000), 0.0, y).astype(np.float32)


def glibc_log10f(x: np.ndarray) -> np.ndarray:
    """float32 log10 of positive (or zero) float32s, bit for bit as glibc's ``log10f``.

    lmplz prints ``log10f`` of its float32 probabilities; glibc's is not correctly rounded (about
    3% of results differ by one ulp from the nearest float), so the digits lmplz writes need it:
    fdlibm's reduction x = 2^k m (m in [1, 2), or [0.5, 1) when k < 0), then
    ``k log10(2) + log(m) / ln 10`` in float32 over glibc's ``logf``.
    """
    x = np.array(x, dtype=np.float32)
    bits = x.view(np.int32)
    subnormal = bits < 0x00800000
    x[subnormal] *= np.float32(2.0**25)
    bits = x.view(np.int32)
    exponent = (bits >> 23) - 127 - np.where(subnormal, 25, 0)
    below_one = (exponent < 0).astype(np.int32)
    mantissa = ((bits & 0x007FFFFF) | ((0x7F - below_one) << 23)).view(np.float32)
    k = (exponent + below_one).astype(np.float32)
    out = (k * _LOG10_2LO + _IVLN10 * _glibc_logf(mantissa)) + k * _LOG10_2HI
    return np.where(x == 0, np.float32(-np.inf), out)


def conditional_distribution(model: ArpaModel, history_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """p(w | history) for every word w of ``model``, with ARPA back-off semantics.

    ``p(w|h) = 10**prob(h w)`` if ``h w`` is listed, else ``10**backoff(h) * p(w|h')`` with ``h'``
    = ``h`` less its first word (backoff 0 where ``h`` is not listed); only the last
    ``order - 1`` words of the history matter.

    Args:
        model: any ARPA model (e.g. from :func:`speechdecode.lm.estimate.estimate` or ``read_arpa``).
        history_ids: word ids (indices into ``model.words``), oldest first; may be empty.

    Returns:
        float64 [len(model.words)], 0 for ``<s>`` (never predicted): a proper model sums to 1.

    >>> from speechdecode.lm.counts import count_sentences
    >>> from speechdecode.lm.estimate import estimate
    >>> model = estimate(count_sentences(["a b a", "b a"], 2), "kn")
    >>> round(float(conditional_distribution(model, [3]).sum()), 9)  # after "a"
    1.0
    """
    history = np.asarray(history_ids)
    if history.ndim != 1 or (history.size and not np.issubdtype(history.dtype, np.integer)):
        raise TensorError("history_ids", "a 1-D sequence of integer word ids", f"{history.dtype} {history.shape}")
    vocab_size = len(model.words)
    if history.size and (history.min() < 0 or history.max() >= vocab_size):
        raise TensorError("history_ids", f"word ids in [0, {vocab_size})", history.tolist())
    history = history.astype(np.int64)[max(0, len(history) - (model.order - 1)) :]
    p = np.zeros(vocab_size, dtype=np.float64)
    p[model.ngrams[0][:, 0]] = 10.0 ** model.log10_probs[0]
    for n in range(2, len(history) + 2):
        context = history[len(history) - (n - 1) :]
        listed = np.flatnonzero(np.all(model.ngrams[n - 2] == context, axis=1))
        if len(listed):
            p *= 10.0 ** model.backoffs[n - 2][listed[0]]
        extensions = np.flatnonzero(np.all(model.ngrams[n - 1][:, :-1] == context, axis=1))
        p[model.ngrams[n - 1][extensions, -1]] = 10.0 ** model.log10_probs[n - 1][extensions]
    if BOS in model.words:
        p[model.words.index(BOS)] = 0.0
    return p
