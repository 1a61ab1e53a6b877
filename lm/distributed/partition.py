"""The work of one partition of a distributed modified Kneser-Ney build, in numpy.

An n-gram's *key* (:func:`keys_of`) is its last word and the word before it:
``last * (V + 1) + second + 1`` (``V`` the vocabulary size), ``last * (V + 1)`` for a unigram.
Partition p holds every n-gram, of every order, whose key is in ``[bounds[p], bounds[p + 1])``:
the partitions cut the keys in order, so putting their outputs one after another gives lmplz's
suffix order. A cut usually falls between two last words; a word that ends more rows than a
partition may hold is *split*: cut between second-to-last words, its unigram in the first of
its partitions (its *owner*). Everything an n-gram's probability needs is then either in its own
partition or an integer that can be added up elsewhere exactly:

* its adjusted count (its distinct left extensions share its last two words; a split word's
  unigram's, the number of distinct bigrams ending in it, is summed on the driver);
* the probability of its suffix (same last two words; a split word's unigram probability is
  computed from the driver's sum in each of its partitions), computed order by order;
* its context's totals (S(c), N1..N3+ of the kept extensions, the pruned mass): integers summed
  by the partition of the context's key (:func:`reduce_contexts`), sent back aligned;
* the count-of-counts and the unigram totals: integers summed on the driver.

Every floating-point operation is the one :func:`speechdecode.lm.methods._common.discounted_model`
does, in the same order and precision (float32 and glibc's ``log10f`` unless ``float64``), on the
same integers, so the numbers are bit for bit those of the single-process build.

Within a partition, order n is kept in suffix order with a key per row: ``suffix * V + first``
(``suffix`` the row of its last n-1 words in order n-1, ``V`` the vocabulary size), so the keys
ascend and an n-gram is found by walking its words from the last one (:meth:`Partition.locate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from speechdecode.errors import TensorError
from speechdecode.lm.methods._common import _log10, count_of_counts
from speechdecode.lm.vocab import BOS_ID, EOS_ID, UNK_ID

# Integer totals of a context, in this column order.
TOTAL, PRUNED_MASS, N1, N2, N3 = range(5)


@dataclass
class Piece:
    """One text shard's n-grams for one partition: per order, int32 [M, n] global-id rows (any
    order, unique within the shard) and int64 [M] counts."""

    rows: list[np.ndarray]
    counts: list[np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes + c.nbytes for r, c in zip(self.rows, self.counts, strict=True))


def keys_of(rows: np.ndarray, vocab_size: int) -> np.ndarray:
    """The key (int64) of each of ``rows`` (int32 [M, n] word ids): its last word and, from
    bigrams on, the word before it, in suffix order."""
    keys = rows[:, -1].astype(np.int64) * (vocab_size + 1)
    if rows.shape[1] > 1:
        keys += rows[:, -2].astype(np.int64) + 1
    return keys


def sort_keys(rows: np.ndarray, base: int) -> np.ndarray:
    """int64 keys that sort as ``rows`` (int [M, k], values below ``base``) do lexicographically,
    the first column most significant: the columns as digits of ``base``, the digits so far
    ranked (numbered in order) whenever one more would overflow. One sort of these is about 2.5x
    faster than ``np.lexsort`` on 5 columns, 6x than sorting the rows' bytes (measured, 4M rows)."""
    key = rows[:, 0].astype(np.int64)
    bound = base  # key < bound
    for column in range(1, rows.shape[1]):
        if bound > np.iinfo(np.int64).max // base:
            ranked = np.unique(key, return_inverse=True)[1].ravel()
            key, bound = ranked.astype(np.int64), max(1, int(ranked.max(initial=0)) + 1)
        key = key * base + rows[:, column]
        bound *= base
    return key


def partition_of(bounds: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The partition of each key (int64)."""
    return np.searchsorted(bounds, keys, side="right").astype(np.int64) - 1


@dataclass
class Partition:
    """The merged n-grams of one partition and what is computed from them.

    The last words ``[lo, hi)`` are those of the keys ``[key_lo, key_hi)``; ``owned`` marks the
    unigrams this partition writes (all but a split word's in its later partitions), ``split``
    lists the split words among them (the first and the last can be).

    Per order n (index n-1): ``rows`` int32 [M, n] in suffix order (order 1: the ids lo..hi-1);
    ``raw`` int64 counts (0 for ids never counted); ``adjusted`` int64 Kneser-Ney adjusted
    counts; ``pruned`` bool; for n >= 2 ``keys`` (ascending int64) and ``suffix`` (row of the
    last n-1 words in order n-1); ``context_slot``: the position of the n-gram's context in the
    contexts this partition sends out (:func:`merge_partition`), in partition order.

    Pickled (sent to the later stages through Ray's object store), it leaves out ``raw``, which
    only the merge uses, and ``keys``, rebuilt from ``suffix`` and the first words when a lookup
    needs them: 16 of the ~57 bytes per order-5 row.
    """

    key_lo: int
    key_hi: int
    vocab_size: int
    rows: list[np.ndarray] = field(default_factory=list)
    raw: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray | None] = field(default_factory=list)
    suffix: list[np.ndarray | None] = field(default_factory=list)
    adjusted: list[np.ndarray] = field(default_factory=list)
    pruned: list[np.ndarray] = field(default_factory=list)
    context_slot: list[np.ndarray | None] = field(default_factory=list)
    lo: int = field(init=False)
    hi: int = field(init=False)
    owned: np.ndarray = field(init=False)
    split: list[int] = field(init=False)

    def __post_init__(self):
        span = self.vocab_size + 1
        self.lo = self.key_lo // span
        self.hi = max(self.lo, -(-self.key_hi // span))
        self.owned = np.arange(self.lo, self.hi, dtype=np.int64) * span >= self.key_lo
        self.split = []
        if self.key_lo % span and self.hi > self.lo:
            self.split.append(self.lo)
        if self.key_hi % span and self.hi - 1 not in self.split:
            self.split.append(self.hi - 1)

    @property
    def order(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "raw": None, "keys": [None] * len(self.keys)}

    def sorted_keys(self, n: int) -> np.ndarray:
        """Order n's ``keys`` (n >= 2), rebuilt if they were left out."""
        if self.keys[n - 1] is None:
            self.keys[n - 1] = self.suffix[n - 1] * self.vocab_size + self.rows[n - 1][:, 0]
        return self.keys[n - 1]

    def locate(self, rows: np.ndarray) -> np.ndarray:
        """Rows (int64), in order ``rows.shape[1]`` of this partition, of word-id ``rows``; -1 if absent."""
        length = rows.shape[1]
        index = rows[:, -1].astype(np.int64) - self.lo
        found = (index >= 0) & (index < self.hi - self.lo)
        for n in range(2, length + 1):
            keys = self.sorted_keys(n)
            if len(keys) == 0:
                return np.full(len(rows), -1, dtype=np.int64)
            wanted = index * self.vocab_size + rows[:, length - n]
            position = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            found &= keys[position] == wanted
            index = position
        return np.where(found, index, -1)

    def require(self, rows: np.ndarray, what: str, *, suffix_sorted: bool = False) -> np.ndarray:
        """:meth:`locate` for rows that must be there (raises naming ``what`` otherwise).

        The rows are looked up in suffix order (sorted here unless ``suffix_sorted``): each
        level's binary searches then go forward through the keys, about 4x faster than in
        random order."""
        if suffix_sorted:
            index = self.locate(rows)
        else:
            order = np.argsort(sort_keys(rows[:, ::-1], self.vocab_size))
            index = np.empty(len(rows), dtype=np.int64)
            index[order] = self.locate(rows[order])
        if len(index) and index.min() < 0:
            bad = rows[int(np.flatnonzero(index < 0)[0])].tolist()
            raise TensorError(what, f"{rows.shape[1]}-grams counted in their partition", f"{bad} is missing")
        return index


def merge_partition(
    pieces: list[Piece],
    order: int,
    key_lo: int,
    key_hi: int,
    vocab_size: int,
    thresholds: np.ndarray,
    bounds: np.ndarray,
) -> tuple[dict, Partition, list[list[tuple[np.ndarray, np.ndarray]]]]:
    """Add up the shards' pieces of one partition and compute what needs no other partition.

    Returns ``(facts, partition, outgoing)``: ``facts`` for the driver (count-of-counts with
    pruned n-grams, kept n-grams per order, the unigrams' integer totals, all but the split
    words', and for each split word its distinct bigrams here and its raw count if owned: int64
    [k, 3] rows (word, bigrams, raw); the candidate for lmplz's count-of-counts quirk);
    ``outgoing[q]``: per order n >= 2 (index n-2), the contexts (int32 [K, n-1], unique,
    lexicographic) of this partition's n-grams whose key is in partition q, with their partial
    totals (int64 [K, 5], columns TOTAL..N3).
    """
    part = Partition(key_lo, key_hi, vocab_size)
    lo, hi = part.lo, part.hi
    for n in range(1, order + 1):
        rows = _concat([p.rows[n - 1] for p in pieces], (0, n), np.int32)
        counts = _concat([p.counts[n - 1] for p in pieces], (0,), np.int64)
        if n == 1:
            raw = np.bincount(rows[:, 0] - lo, weights=counts, minlength=hi - lo).astype(np.int64)
            part.rows.append(np.arange(lo, hi, dtype=np.int32)[:, None])
            part.keys.append(None)
            part.suffix.append(None)
        else:
            order_ = np.argsort(sort_keys(rows[:, ::-1], vocab_size))  # suffix order: keys below ascend
            rows, counts = rows[order_], counts[order_]
            suffix = part.require(rows[:, 1:], f"ngrams[{n - 1}] suffixes", suffix_sorted=True)
            keys = suffix * vocab_size + rows[:, 0]
            starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else keys
            keys = keys[starts]
            raw = np.add.reduceat(counts, starts) if len(starts) else counts
            suffix = keys // vocab_size
            first = (keys % vocab_size).astype(np.int32)
            part.rows.append(np.column_stack([first, part.rows[n - 2][suffix]]).astype(np.int32))
            part.keys.append(keys)
            part.suffix.append(suffix)
        part.raw.append(raw)
    for n in range(1, order + 1):
        part.adjusted.append(_adjusted(part, n))
        part.pruned.append(_pruned(part, n, thresholds))

    whole = part.owned.copy()  # unigrams whose facts are all here
    whole[np.asarray(part.split, dtype=np.int64) - lo] = False
    adjusted, pruned = [a[whole] if n == 0 else a for n, a in enumerate(part.adjusted)], part.pruned
    pruned = [m[whole] if n == 0 else m for n, m in enumerate(pruned)]
    facts = {
        "count_of_counts": [count_of_counts(a) for a in adjusted],
        "kept": [int(np.count_nonzero(~m)) for m in pruned],
        "ngrams": [int(np.count_nonzero(part.owned)), *(len(r) for r in part.rows[1:])],
        "unigram_totals": _totals(adjusted[0], pruned[0], np.zeros(len(adjusted[0]), dtype=np.int64), 1)[0],
        "split": np.array(
            [(w, part.adjusted[0][w - lo], part.raw[0][w - lo]) for w in part.split], dtype=np.int64
        ).reshape(-1, 3),
        "quirk": _quirk_candidate(part),
    }
    parts = len(bounds) - 1
    outgoing = [[] for _ in range(parts)]
    part.context_slot.append(None)
    for n in range(2, order + 1):
        contexts = part.rows[n - 1][:, :-1]
        unique, inverse = np.unique(sort_keys(contexts, vocab_size), return_inverse=True)
        inverse = inverse.ravel()
        unique_rows = np.empty((len(unique), n - 1), dtype=np.int32)
        unique_rows[inverse] = contexts  # equal rows: any of them
        totals = _totals(part.adjusted[n - 1], part.pruned[n - 1], inverse, len(unique))
        destination = partition_of(bounds, keys_of(unique_rows, vocab_size))
        by_destination = np.argsort(destination, kind="stable")
        slot = np.empty(len(unique), dtype=np.int64)
        slot[by_destination] = np.arange(len(unique))
        part.context_slot.append(slot[inverse])
        cuts = np.searchsorted(destination[by_destination], np.arange(parts + 1))
        for q in range(parts):
            take = by_destination[cuts[q] : cuts[q + 1]]
            outgoing[q].append((unique_rows[take], totals[take]))
    return facts, part, outgoing


def _concat(arrays: list[np.ndarray], empty_shape: tuple, dtype) -> np.ndarray:
    arrays = [a for a in arrays if len(a)]
    return np.concatenate(arrays) if arrays else np.zeros(empty_shape, dtype=dtype)


def _adjusted(part: Partition, n: int) -> np.ndarray:
    raw = part.raw[n - 1]
    if n == part.order:
        values = raw.copy()
    else:
        # Distinct left extensions: the (n+1)-grams whose suffix is this n-gram (same last two words;
        # a cut word's unigram: the driver adds up its partitions' counts).
        values = np.bincount(part.suffix[n], minlength=len(raw)).astype(np.int64)
        if n > 1:
            starts = part.rows[n - 1][:, 0] == BOS_ID
            values[starts] = raw[starts]
    if n == 1 and part.lo <= BOS_ID < part.hi:
        values[BOS_ID - part.lo] = 0
    return values


def _pruned(part: Partition, n: int, thresholds: np.ndarray) -> np.ndarray:
    if n == 1:
        return unigrams_pruned(np.arange(part.lo, part.hi), part.raw[0], thresholds)
    return part.raw[n - 1] <= thresholds[n - 1]


def unigrams_pruned(words: np.ndarray, raw: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Which unigrams ``words`` (ids) with raw counts ``raw`` are pruned (never the specials)."""
    return (raw <= thresholds[0]) & (thresholds[0] > 0) & ~np.isin(words, [UNK_ID, BOS_ID, EOS_ID])


def split_unigrams(split: np.ndarray, thresholds: np.ndarray) -> tuple[dict, dict]:
    """The split words' unigram facts, from the partitions' ``split`` facts (int64 [k, 3] rows
    (word, distinct bigrams there, raw count there), stacked): ``(adjusted, facts)``, where
    ``adjusted`` maps each word to its adjusted count (the distinct bigrams ending in it, all
    partitions together) and ``facts`` holds their count-of-counts, kept count and totals."""
    words, where = np.unique(split[:, 0], return_inverse=True)
    adjusted = np.bincount(where, weights=split[:, 1].astype(np.float64), minlength=len(words)).astype(np.int64)
    raw = np.bincount(where, weights=split[:, 2].astype(np.float64), minlength=len(words)).astype(np.int64)
    pruned = unigrams_pruned(words, raw, thresholds)
    facts = {
        "count_of_counts": count_of_counts(adjusted),
        "kept": int(np.count_nonzero(~pruned)),
        "unigram_totals": _totals(adjusted, pruned, np.zeros(len(words), dtype=np.int64), 1)[0],
        "raw": dict(zip(words.tolist(), raw.tolist(), strict=True)),
    }
    return dict(zip(words.tolist(), adjusted.tolist(), strict=True)), facts


def _totals(adjusted: np.ndarray, pruned: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """int64 [groups, 5]: per group, S = sum of adjusted counts, the pruned mass, and the number
    of kept members with adjusted count 1, 2 and >= 3 (a kept count of 0 counts in none)."""
    kept = ~pruned
    columns = [
        adjusted,
        np.where(pruned, adjusted, 0),
        kept & (adjusted == 1),
        kept & (adjusted == 2),
        kept & (adjusted >= 3),
    ]
    out = np.zeros((groups, 5), dtype=np.int64)
    for c, values in enumerate(columns):
        out[:, c] = np.bincount(group, weights=values.astype(np.float64), minlength=groups).astype(np.int64)
    return out


def _quirk_candidate(part: Partition) -> dict | None:
    """The last n-gram of lmplz's stream within this partition (kenlm issue 427), with the
    adjusted and raw counts of its buffered suffixes; the driver keeps the last one overall."""
    order = part.order
    if order < 2:
        return None
    candidates = []
    top = part.rows[order - 1]
    if len(top):
        candidates.append((top[-1].tolist(), order - 1))
    for k in range(2, order):
        starts = np.flatnonzero(part.rows[k - 1][:, 0] == BOS_ID)
        if len(starts):
            candidates.append(([BOS_ID] * (order - k) + part.rows[k - 1][starts[-1]].tolist(), k))
    if not candidates:
        return None
    padded, buffered = max(candidates, key=lambda c: c[0][::-1])
    counts = []
    for m in range(1, buffered + 1):
        tail = np.array([padded[order - m :]], dtype=np.int32)
        i = int(part.require(tail, "quirk suffix")[0])
        raw = 0 if m == 1 and padded[-1] == BOS_ID else int(part.raw[m - 1][i])
        counts.append((int(part.adjusted[m - 1][i]), raw))
    return {"padded": padded, "counts": counts}


def apply_quirk(tallies: list[np.ndarray], candidates: list[dict | None], split: dict, split_raw: dict) -> None:
    """lmplz's count-of-counts quirk on the global ``tallies`` (int64 [5] per order), in place:
    the suffixes of the stream's last n-gram count with their raw count. ``split`` and
    ``split_raw``: the split words' adjusted and raw unigram counts (:func:`split_unigrams`)."""
    candidates = [c for c in candidates if c is not None]
    if not candidates:
        return
    last = max(candidates, key=lambda c: c["padded"][::-1])
    counts = list(last["counts"])
    if last["padded"][-1] in split:  # its partition saw part of its unigram's counts
        counts[0] = (split[last["padded"][-1]], split_raw[last["padded"][-1]])
    for m, (adjusted, raw) in enumerate(counts, start=1):
        if 1 <= adjusted <= 4:
            tallies[m - 1][adjusted] -= 1
        if 1 <= raw <= 4:
            tallies[m - 1][raw] += 1


def gammas(discount: np.ndarray, totals: np.ndarray, real: type) -> np.ndarray:
    """gamma(c) per row of ``totals`` (int64 [K, 5]) with ``discount`` (real [4]) of the extensions'
    order, in lmplz's operations: (D1 N1 + D2 N2 + D3 N3+ + pruned mass) / S; 1 where S = 0."""
    gamma = np.zeros(len(totals), dtype=real)
    for k, column in ((1, N1), (2, N2), (3, N3)):
        gamma = gamma + discount[k] * totals[:, column].astype(np.float64).astype(real)
    gamma = gamma + totals[:, PRUNED_MASS].astype(np.float64).astype(real)
    total = totals[:, TOTAL]
    return np.divide(gamma, total.astype(np.float64).astype(real), out=np.ones_like(gamma), where=total > 0)


def reduce_contexts(
    part: Partition, discounts: np.ndarray, real: type, *incoming: list[tuple[np.ndarray, np.ndarray]]
) -> tuple:
    """Sum the partial context totals sent to this partition by every partition (``incoming[q]``
    from partition q, as :func:`merge_partition` gives them).

    Unigram contexts come to their word's owner only. Returns ``(own, *aligned)``: ``own[n-1]`` =
    (int64 totals S, real gamma) of this partition's n-grams as contexts, orders 1..N-1;
    ``aligned[q]``: per order n >= 2, (S, gamma) of the contexts partition q sent, in the order
    it sent them.
    """
    own = []
    aligned = [[] for _ in incoming]
    for n in range(2, part.order + 1):
        located = [part.require(rows, f"contexts of order {n - 1}") for rows, _ in (c[n - 2] for c in incoming)]
        index = np.concatenate([np.zeros(0, dtype=np.int64), *located])
        values = np.concatenate([np.zeros((0, 5), dtype=np.int64), *(c[n - 2][1] for c in incoming)])
        size = len(part.rows[n - 2])
        totals = np.zeros((size, 5), dtype=np.int64)
        for c in range(5):
            totals[:, c] = np.bincount(index, weights=values[:, c].astype(np.float64), minlength=size).astype(np.int64)
        gamma = gammas(discounts[n - 1], totals, real)
        own.append((totals[:, TOTAL], gamma))
        for q, where in enumerate(located):
            aligned[q].append((totals[where, TOTAL], gamma[where]))
    return (own, *aligned)


def estimate_partition(
    part: Partition, discounts: np.ndarray, unigram: tuple, split: dict, real: type, own: list, *aligned: list
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Probabilities and back-offs of this partition's kept n-grams, order by order.

    ``unigram``: (S, gamma, uniform) of the empty context, from the driver; ``split``: the split
    words' adjusted unigram counts (:func:`split_unigrams`); ``own`` and
    ``aligned[q]`` from :func:`reduce_contexts` (``aligned`` in partition order). Returns
    per order the kept rows (suffix order), float64 log10 probabilities (capped at 0) and
    back-offs (0 where the n-gram is no context; none at the highest order).
    """
    order = part.order
    total, gamma, uniform = unigram
    probs = []
    for n in range(1, order + 1):
        value = part.adjusted[n - 1]
        if n == 1 and part.split:
            value = value.copy()
            for w in part.split:
                value[w - part.lo] = split[w]
        discount = discounts[n - 1][np.minimum(value, 3)]
        if n == 1:
            u = (value.astype(real) - discount) / real(np.float64(total))
            p = u + gamma * uniform
            if part.lo <= BOS_ID < part.hi:
                p[BOS_ID - part.lo] = 1
        else:
            pieces = [a[n - 2] for a in aligned]
            slot = part.context_slot[n - 1]
            context_total = np.concatenate([np.zeros(0, dtype=np.int64), *(t for t, _ in pieces)])[slot]
            context_gamma = np.concatenate([np.zeros(0, dtype=real), *(g for _, g in pieces)])[slot]
            u = (value.astype(real) - discount) / context_total.astype(np.float64).astype(real)
            p = u + context_gamma * probs[n - 2][part.suffix[n - 1]]
        probs.append(p.astype(real))

    rows, log10_probs, backoffs = [], [], []
    with np.errstate(divide="ignore"):
        for n in range(1, order + 1):
            kept = ~part.pruned[n - 1]
            if n == 1:
                kept &= part.owned
            rows.append(part.rows[n - 1][kept])
            log10_probs.append(np.minimum(0.0, _log10(probs[n - 1][kept], real)))
            if n < order:
                context_total, context_gamma = own[n - 1]
                is_context = context_total[kept] > 0
                backoffs.append(np.where(is_context, _log10(context_gamma[kept], real), 0.0))
            else:
                backoffs.append(np.zeros(0))
    return rows, log10_probs, backoffs
