"""The grammar G: an ARPA back-off n-gram LM as a tropical acceptor over words (Kaldi's ``arpa2fst``).

States are the LM's histories: the empty history (the unigram state), ``<s>`` (the start state)
and every n-gram (n < N) that is the context of some (n+1)-gram. For an n-gram ``h w`` with
log10 probability p there is an arc ``w:w`` of cost ``-ln(10) * p`` from state ``h`` to the state of
the new history (``h w``, or ``h w`` without its first word at the highest order), or, when that
history is not a state, to its longest suffix that is, with the back-off weights of the skipped
histories added to the cost. Each history state has a back-off arc ``#0:<eps>`` of cost
``-ln(10) * backoff`` to the state of its longest proper suffix (the same rule). ``<s>`` is never
an arc label: it is consumed into the start state; ``</s>`` is the final weight of the state of
its context. N-grams with ``<unk>`` are dropped when the word table lacks it (no pronunciation can
reach them). N-grams with other words the word table lacks are an error, or, with ``allow_oov``, are
dropped and counted.

Built with numpy (n-grams looked up by sorted keys) and handed to OpenFst in its binary format
(:func:`~speechdecode.graphs.fst_io.fst_from_arrays`).
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

from speechdecode.errors import InvalidArgumentError
from speechdecode.graphs.fst_io import fst_from_arrays
from speechdecode.graphs.symbols import BOS, EOS, EPSILON, SymbolTable
from speechdecode.lm.arpa import ArpaModel, read_arpa

__all__ = ["Grammar", "grammar_fst"]

LN10 = math.log(10.0)


class Grammar(NamedTuple):
    """G and what was left out of it.

    Attributes:
        fst: the ``pywrapfst.VectorFst`` (tropical), input labels word ids or ``#0``, outputs
            word ids or epsilon.
        oov_words: LM words the word table lacks (sorted), whose n-grams were dropped.
        dropped_ngrams: per order, how many n-grams were dropped for holding such a word.
    """

    fst: object
    oov_words: list[str]
    dropped_ngrams: tuple[int, ...]


def _load(lm) -> tuple[ArpaModel, str]:
    from speechdecode.lm.model import NgramModel

    if isinstance(lm, ArpaModel):
        return lm, "lm"
    if isinstance(lm, NgramModel):
        return read_arpa(lm.path), lm.path
    if isinstance(lm, (str, os.PathLike)):
        return read_arpa(lm), os.fspath(lm)
    raise InvalidArgumentError("lm", "an ArpaModel, an NgramModel or an ARPA file path", type(lm).__name__)


class _Tables:
    """The kept n-grams of each order, with lookup of word-id rows by sorted keys."""

    def __init__(self, rows: list[np.ndarray], vocab: int):
        self.rows = rows
        self.vocab = vocab
        self.unigram_index = np.full(vocab, -1, dtype=np.int64)
        self.unigram_index[rows[0][:, 0]] = np.arange(len(rows[0]))
        self.sorted_keys: list[np.ndarray | None] = [None]
        self.sorted_index: list[np.ndarray | None] = [None]
        self.prefix: list[np.ndarray | None] = [None]
        for n in range(2, len(rows) + 1):
            table = rows[n - 1]
            prefix = self.find(table[:, :-1])
            self.prefix.append(prefix)
            keys = np.where(prefix >= 0, prefix * vocab + table[:, -1], -1)
            order = np.argsort(keys, kind="stable")
            self.sorted_keys.append(keys[order])
            self.sorted_index.append(order)

    def find(self, spans: np.ndarray) -> np.ndarray:
        """Index of each row of ``spans`` [R, m] in the order-m table, -1 where absent."""
        index = self.unigram_index[spans[:, 0]]
        for m in range(2, spans.shape[1] + 1):
            sorted_keys = self.sorted_keys[m - 1]
            if not len(sorted_keys):
                return np.full(len(spans), -1, dtype=np.int64)
            keys = np.where(index >= 0, index * self.vocab + spans[:, m - 1], -2)
            pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
            hit = (keys >= 0) & (sorted_keys[pos] == keys)
            index = np.where(hit, self.sorted_index[m - 1][pos], -1)
        return index


def _target(tables: _Tables, histories: np.ndarray, state_of: list[np.ndarray], backoffs: list[np.ndarray]):
    """State of each history row (its longest suffix that is a state) and the log10 back-offs skipped."""
    rows, length = histories.shape
    dest = np.zeros(rows, dtype=np.int64)  # state 0: the empty history
    extra = np.zeros(rows)
    open_ = np.ones(rows, dtype=bool)
    for k in range(length):
        span = histories[:, k:]
        index = tables.find(span)
        found = index >= 0
        state = np.where(found, state_of[span.shape[1] - 1][np.maximum(index, 0)], -1)
        take = open_ & (state >= 0)
        dest[take] = state[take]
        skipped = open_ & found & ~take
        extra[skipped] += backoffs[span.shape[1] - 1][index[skipped]]
        open_ &= ~take
    return dest, extra


UNK = "<unk>"


def grammar_fst(lm, words: SymbolTable, *, allow_oov: bool = False) -> Grammar:
    """Build G from an ARPA model (module docstring).

    Args:
        lm: an :class:`~speechdecode.lm.arpa.ArpaModel`, an :class:`~speechdecode.lm.model.NgramModel`
            (its ARPA file is read again for the n-gram tables) or an ARPA file path.
        words: the word table (:func:`~speechdecode.graphs.symbols.word_table`): labels are its ids.
        allow_oov: drop n-grams with words the table lacks (counted in the result) instead of
            raising. N-grams with ``<unk>`` are dropped either way when the table lacks it (no
            pronunciation reaches them); they are counted too.

    Returns:
        A :class:`Grammar`.

    Raises:
        ArpaFormatError: the ARPA file does not parse (``path:line: ...``).
        InvalidArgumentError: words the table lacks (without ``allow_oov``; the message counts them
            and names the first few), an LM without ``<s>`` or ``</s>``, ``<s>``/``</s>`` inside an
            n-gram, or an n-gram whose context is not an n-gram of the order below.

    Example:
        >>> from speechdecode.graphs.symbols import word_table
        >>> g = grammar_fst("lm.arpa", word_table(["a", "b"]))  # doctest: +SKIP
        >>> g.fst.num_states(), g.oov_words  # doctest: +SKIP
    """
    model, name = _load(lm)
    vocab = len(model.words)
    for symbol in (BOS, EOS):
        if symbol not in model.words:
            raise InvalidArgumentError(name, f"an LM with the word {symbol}", f"an LM without {symbol}")
    bos, eos = model.words.index(BOS), model.words.index(EOS)
    reserved = {"#0", EPSILON}
    label = np.array([words.id(w) if w in words and w not in reserved else -1 for w in model.words], dtype=np.int64)
    label[[bos, eos]] = -2
    oov = sorted(w for w, lab in zip(model.words, label, strict=True) if lab == -1)
    # <unk> has no pronunciation in a lexicon: its n-grams are unreachable in L o G, so they are
    # dropped (and counted) without allow_oov; every lmplz model has <unk>.
    spoken = [w for w in oov if w.lower() != UNK]
    if spoken and not allow_oov:
        oov = spoken
        shown = ", ".join(repr(w) for w in oov[:10]) + (", ..." if len(oov) > 10 else "")
        raise InvalidArgumentError(
            name,
            "n-grams over the lexicon's words (or allow_oov=True to drop the others)",
            f"{len(oov)} words the lexicon lacks: {shown}",
        )
    order = model.order
    rows, logp, backoff, dropped = [], [], [], []
    for n in range(1, order + 1):
        table = model.ngrams[n - 1].astype(np.int64)
        keep = (label[table] != -1).all(axis=1)
        inner = table[keep]
        misplaced = (inner[:, 1:] == bos).any(axis=1) | (inner[:, :-1] == eos).any(axis=1)
        if n > 1 and misplaced.any():
            bad = " ".join(model.words[w] for w in inner[np.argmax(misplaced)])
            raise InvalidArgumentError(name, f"{BOS} only first and {EOS} only last in an n-gram", repr(bad))
        rows.append(inner)
        logp.append(model.log10_probs[n - 1][keep])
        backoff.append(model.backoffs[n - 1][keep] if n < order else np.zeros(int(keep.sum())))
        dropped.append(int((~keep).sum()))
    tables = _Tables(rows, vocab)
    for n in range(2, order + 1):
        missing = tables.prefix[n - 1] < 0
        if missing.any():
            bad = " ".join(model.words[w] for w in rows[n - 1][np.argmax(missing)])
            raise InvalidArgumentError(name, f"every {n}-gram's context among the {n - 1}-grams", repr(bad))

    # States: 0 the empty history, then the contexts of each order (with <s> always one).
    is_context = [np.zeros(len(r), dtype=bool) for r in rows]
    for n in range(2, order + 1):
        is_context[n - 2][tables.prefix[n - 1]] = True
    if order > 1:
        is_context[0][tables.unigram_index[bos]] = True
    state_of, num_states = [], 1
    for n in range(order):
        ids = np.full(len(rows[n]), -1, dtype=np.int64)
        count = int(is_context[n].sum())
        ids[is_context[n]] = np.arange(num_states, num_states + count)
        state_of.append(ids)
        num_states += count
    start = int(state_of[0][tables.unigram_index[bos]]) if order > 1 else 0

    src, dst, lab, cost = [], [], [], []
    finals = np.full(num_states, np.inf)
    for n in range(1, order + 1):
        table, last = rows[n - 1], rows[n - 1][:, -1]
        source = np.zeros(len(table), dtype=np.int64) if n == 1 else state_of[n - 2][tables.prefix[n - 1]]
        ends = last == eos
        finals[source[ends]] = -LN10 * logp[n - 1][ends]
        arcs = (last != eos) & (last != bos)
        histories = table[arcs] if n < order else table[arcs][:, 1:]
        if histories.shape[1]:
            dest, extra = _target(tables, histories, state_of, backoff)
        else:
            dest, extra = np.zeros(len(histories), dtype=np.int64), np.zeros(len(histories))
        src.append(source[arcs])
        dst.append(dest)
        lab.append(label[last[arcs]])
        cost.append(-LN10 * (logp[n - 1][arcs] + extra))
        contexts = table[is_context[n - 1]]
        if n == 1:
            dest, extra = np.zeros(len(contexts), dtype=np.int64), np.zeros(len(contexts))
        else:
            dest, extra = _target(tables, contexts[:, 1:], state_of, backoff)
        src.append(state_of[n - 1][is_context[n - 1]])
        dst.append(dest)
        lab.append(np.full(len(contexts), words.id("#0"), dtype=np.int64))
        cost.append(-LN10 * (backoff[n - 1][is_context[n - 1]] + extra))
    src, dst, lab, cost = (np.concatenate(x) for x in (src, dst, lab, cost))
    finite = np.isfinite(cost)
    olab = np.where(lab == words.id("#0"), 0, lab)
    fst = fst_from_arrays(
        start, finals, src[finite], lab[finite], olab[finite], cost[finite].astype(np.float32), dst[finite]
    )
    return Grammar(fst, oov, tuple(dropped))
