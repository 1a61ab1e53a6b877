"""Raw n-gram counts: the data that every smoothing method estimates from.

Each sentence is padded as ``<s> w1 ... wk </s>`` (one ``<s>``: n-grams with more ``<s>``
padding carry no information beyond this), and ``counts[n-1][i]`` is the number of times the
n-gram ``ngrams[n-1][i]`` occurs in the padded sentences. Words outside a limiting vocabulary
become ``<unk>``. This module holds the type, its ``.npz`` files and the plain-Python reference
counter :func:`count_sentences`, the oracle for the native file counter in
:mod:`speechdecode.lm.counting`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from speechdecode import _args
from speechdecode._io import atomic_write
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.lm.vocab import BOS_ID, EOS_ID, Vocabulary

WORD_BOUNDARY = "|"


def to_units(sentence: str, units: str = "word", word_boundary: str = WORD_BOUNDARY) -> list[str]:
    """Split a line into LM tokens: whitespace-separated words, or characters.

    With ``units="char"`` each character is a token and ``word_boundary`` separates words,
    as character CTC models with a visible boundary emit them:

    >>> to_units("the cat", "char")
    ['t', 'h', 'e', '|', 'c', 'a', 't']
    """
    words = sentence.split()
    if units == "word":
        return words
    if units == "char":
        return list(word_boundary.join(words))
    raise InvalidArgumentError("units", "'word' or 'char'", repr(units))


@dataclass
class NgramCounts:
    """Counts of all n-grams of orders 1..N.

    Attributes:
        vocab: word ids (``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2).
        ngrams: per order n, int32 [M_n, n] unique word-id rows, sorted lexicographically.
        counts: per order n, int64 [M_n] occurrence counts.
    """

    vocab: Vocabulary
    ngrams: list[np.ndarray]
    counts: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.ngrams)

    def count(self, words: str | Iterable[str]) -> int:
        """The count of one n-gram given as words (0 if it never occurs)."""
        ids = np.array(self.vocab.ids(words.split() if isinstance(words, str) else words), dtype=np.int32)
        n = len(ids)
        if not 1 <= n <= self.order:
            raise InvalidArgumentError("words", f"1 to {self.order} words", n)
        table = self.ngrams[n - 1]
        keys = _row_keys(table)
        i = np.searchsorted(keys, _row_keys(ids[None, :]))
        return int(self.counts[n - 1][i[0]]) if i[0] < len(keys) and keys[i[0]] == _row_keys(ids[None, :])[0] else 0

    def save(self, path: str | os.PathLike) -> None:
        """Write to an ``.npz`` file atomically (a shard to :meth:`merge` later)."""
        arrays = {"vocab": np.array(self.vocab.words, dtype=str)}
        for n, (grams, counts) in enumerate(zip(self.ngrams, self.counts, strict=True), start=1):
            arrays[f"ngrams{n}"], arrays[f"counts{n}"] = grams, counts
        with atomic_write(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NgramCounts:
        try:
            with np.load(path, allow_pickle=False) as data:
                order = sum(1 for k in data.files if k.startswith("ngrams"))
                vocab = Vocabulary(str(w) for w in data["vocab"][3:])
                ngrams = [data[f"ngrams{n}"] for n in range(1, order + 1)]
                counts = [data[f"counts{n}"] for n in range(1, order + 1)]
        except (OSError, KeyError, ValueError) as exc:
            raise InputFileError(path, None, f"not an n-gram counts file ({exc})") from None
        return cls(vocab, ngrams, counts)

    @classmethod
    def merge(cls, shards: list[NgramCounts]) -> NgramCounts:
        """Add up counts from shards counted separately (vocabularies are merged)."""
        if not shards:
            raise InvalidArgumentError("shards", "at least one NgramCounts", "none")
        order = shards[0].order
        if any(s.order != order for s in shards):
            raise InvalidArgumentError("shards", f"shards of one order ({order})", [s.order for s in shards])
        vocab = Vocabulary()
        remaps = []
        for shard in shards:
            remaps.append(np.array([vocab.add(w) for w in shard.vocab.words], dtype=np.int32))
        ngrams, counts = [], []
        for n in range(order):
            rows = np.concatenate([remap[s.ngrams[n]] for remap, s in zip(remaps, shards, strict=True)])
            values = np.concatenate([s.counts[n] for s in shards])
            grams, summed = _aggregate(rows.reshape(-1, n + 1), values)
            ngrams.append(grams)
            counts.append(summed)
        return cls(vocab, ngrams, counts)


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One sortable void key per row (lexicographic order of big-endian ids)."""
    big = np.ascontiguousarray(rows.astype(">u4"))
    return big.view(np.dtype((np.void, 4 * rows.shape[1]))).ravel()


def _aggregate(rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows sorted lexicographically, with their values summed."""
    if len(rows) == 0:
        return rows.astype(np.int32), values.astype(np.int64)
    unique, inverse = np.unique(_row_keys(rows), return_inverse=True)
    summed = np.zeros(len(unique), dtype=np.int64)
    np.add.at(summed, inverse.ravel(), values)
    grams = unique.view(">u4").reshape(len(unique), rows.shape[1]).astype(np.int32)
    return grams, summed


def count_sentences(
    sentences: Iterable[str], order: int, *, vocab: Vocabulary | None = None, limit_vocab: Iterable[str] | None = None,
    units: str = "word",
) -> NgramCounts:  # fmt: skip
    """Reference counter (plain Python): counts of every n-gram of orders 1..order.

    ``limit_vocab``: words outside it become ``<unk>``. ``vocab``: an existing vocabulary to
    extend (ids of its words are kept).
    """
    order = _args.integer(order, "order", 1)
    vocab = vocab if vocab is not None else Vocabulary()
    allowed = set(limit_vocab) if limit_vocab is not None else None
    tables = [Counter() for _ in range(order)]
    for sentence in sentences:
        words = to_units(sentence, units)
        if allowed is not None:
            words = [w if w in allowed else "<unk>" for w in words]
        ids = [BOS_ID, *(vocab.add(w) for w in words), EOS_ID]
        for n in range(1, order + 1):
            table = tables[n - 1]
            for i in range(len(ids) - n + 1):
                table[tuple(ids[i : i + n])] += 1
    ngrams, counts = [], []
    for n, table in enumerate(tables, start=1):
        keys = sorted(table)
        ngrams.append(np.array(keys, dtype=np.int32).reshape(len(keys), n))
        counts.append(np.array([table[k] for k in keys], dtype=np.int64))
    return NgramCounts(vocab, ngrams, counts)
