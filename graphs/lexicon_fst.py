"""The lexicon transducer L: token sequences -> words (Kaldi's ``make_lexicon_fst``).

Every pronunciation is a path from the loop state back to it: the first arc reads the first
token and writes the word (with cost ``-ln prob`` when the lexicon has probabilities), the next
arcs read the remaining tokens and write nothing. L∘G is determinizable only if no token sequence
is ambiguous, so (Kaldi's ``add_lex_disambig``) a pronunciation that another word shares, or that
is a proper prefix of another pronunciation, ends with a disambiguation token ``#k`` (k >= 1,
numbered per token sequence). The loop state has a ``#0:#0`` self-loop so G's back-off arcs
(``#0:<eps>``) pass through the composition.

With ``silence``, optional silence may follow every word and start the utterance: from the start
state, ``<eps>`` to the loop state at cost ``-ln(1 - p)`` or to a silence state at cost ``-ln p``;
each word's last arc likewise goes to the loop state or (cost ``-ln p``) to the silence state,
which reads the silence token and returns to the loop state.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import NamedTuple

import numpy as np

from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.graphs.fst_io import fst_from_arrays
from speechdecode.graphs.lexicon import Lexicon
from speechdecode.graphs.symbols import EPSILON, SymbolTable, is_disambig

__all__ = ["DisambiguatedEntry", "disambiguate", "lexicon_fst"]


class DisambiguatedEntry(NamedTuple):
    """A lexicon entry with its disambiguation index (0: needs none, k: ends with ``#k``)."""

    word: str
    tokens: tuple[str, ...]
    prob: float | None
    disambig: int


def disambiguate(lexicon: Lexicon) -> tuple[list[DisambiguatedEntry], int]:
    """Assign disambiguation symbols as Kaldi's ``add_lex_disambig.pl`` does.

    A token sequence that several entries share, or that is a proper prefix of another entry's,
    gets ``#1``, ``#2``, ... on its successive entries (in lexicon order).

    Returns:
        The entries in lexicon order with their index, and the largest index used (0 if none).

    Example:
        >>> lex = Lexicon({"red": [("r", "eh", "d")], "read": [("r", "eh", "d")], "re": [("r", "eh")]})
        >>> [e.disambig for e in disambiguate(lex)[0]], disambiguate(lex)[1]
        ([1, 2, 1], 2)
    """
    counts = Counter(pron.tokens for _, pron in lexicon.entries())
    # In sorted order an entry is a proper prefix of some other entry exactly when it is one of the
    # next distinct entry (everything between the two shares the prefix): linear in the tokens,
    # where listing every prefix of every entry was quadratic in a pronunciation's length.
    distinct = sorted(counts)
    prefixes = {a for a, b in itertools.pairwise(distinct) if len(a) < len(b) and b[: len(a)] == a}
    used: Counter = Counter()
    entries = []
    for word, pron in lexicon.entries():
        k = 0
        if counts[pron.tokens] > 1 or pron.tokens in prefixes:
            used[pron.tokens] += 1
            k = used[pron.tokens]
        entries.append(DisambiguatedEntry(word, pron.tokens, pron.prob, k))
    return entries, max(used.values(), default=0)


def _token_id(tokens: SymbolTable, token: str, lexicon: Lexicon, entry: DisambiguatedEntry, blank: str | None) -> int:
    reserved = token == EPSILON or is_disambig(token)
    if token != blank and not reserved and token in tokens:
        return tokens.id(token)
    if reserved:  # <eps> would spell nothing, #k is the compiler's: either lets L emit unspoken words
        what = "is reserved (<eps> and #k are the graph compiler's symbols, not acoustic units)"
    elif token == blank:
        what = "is the blank, which no pronunciation may contain"
    else:
        what = "is not in the token table"
    message = f"token {token!r} of word {entry.word!r} {what}"
    origin = lexicon.origin(entry.word, entry.tokens)
    if origin is not None:
        raise InputFileError(origin[0], origin[1], message)
    raise InvalidArgumentError("lexicon", "pronunciations made of the token table's units", message)


def lexicon_fst(
    lexicon: Lexicon,
    tokens: SymbolTable,
    words: SymbolTable,
    *,
    blank: str | None = None,
    silence: str | None = None,
    silence_prob: float = 0.5,
    disambig: bool = True,
):
    """Build L as a ``pywrapfst.VectorFst`` (input: token ids, output: word ids; module docstring).

    Args:
        lexicon: the pronunciations.
        tokens: the token table (:func:`~speechdecode.graphs.symbols.token_table`), holding every
            lexicon token and ``#0 .. #k`` for the k that :func:`disambiguate` needs.
        words: the word table (:func:`~speechdecode.graphs.symbols.word_table`), holding every
            lexicon word and ``#0``.
        blank: the CTC blank symbol, which no pronunciation may use.
        silence: a token for optional silence between words, or None for none.
        silence_prob: the probability of silence after a word, in (0, 1).
        disambig: append ``#k`` to ambiguous pronunciations (turn off only to show why L∘G then
            fails to determinize).

    Raises:
        InputFileError: ``lexicon.txt:line: token 'x' of word 'w' is not in the token table`` (or is
            the blank) for a lexicon read from a file.
        InvalidArgumentError: the same for a lexicon built in code; an empty lexicon; a word, ``#0``
            or ``#k`` missing from its table; a bad silence token or probability.

    Example:
        >>> from speechdecode.graphs.symbols import token_table, word_table
        >>> lex = Lexicon({"ab": [("a", "b")], "a": [("a",)]})
        >>> L = lexicon_fst(lex, token_table(["<blk>", "a", "b"], 2), word_table(lex))
        >>> L.num_states()  # the loop state, one inside "a b", one inside "a #1"
        3
    """
    if len(lexicon) == 0:
        raise InvalidArgumentError("lexicon", "at least one word", "an empty lexicon")
    entries, max_k = disambiguate(lexicon)
    if not disambig:
        entries, max_k = [e._replace(disambig=0) for e in entries], 0
    needed = [f"#{k}" for k in range(max_k + 1)]
    for table, name, symbols in ((tokens, "tokens", needed), (words, "words", ["#0"])):
        missing = [s for s in symbols if s not in table]
        if missing:
            raise InvalidArgumentError(name, f"a table with {', '.join(symbols)}", f"a table without {missing[0]}")
    if silence is not None:
        if silence not in tokens or silence == blank:
            raise InvalidArgumentError("silence", "a token of the token table other than the blank", repr(silence))
        if not 0.0 < silence_prob < 1.0:
            raise InvalidArgumentError("silence_prob", "a probability in (0, 1)", silence_prob)

    start, loop = (0, 1) if silence is not None else (0, 0)
    sil_state = 2
    next_state = 3 if silence is not None else 1
    src, dst, ilab, olab, cost = [], [], [], [], []

    def arc(s: int, d: int, i: int, o: int, w: float) -> None:
        src.append(s)
        dst.append(d)
        ilab.append(i)
        olab.append(o)
        cost.append(w)

    no_sil_cost = -math.log(1.0 - silence_prob) if silence is not None else 0.0
    sil_cost = -math.log(silence_prob) if silence is not None else 0.0
    for entry in entries:
        if entry.word not in words:
            raise InvalidArgumentError("words", f"a table with the lexicon word {entry.word!r}", "a table without it")
        labels = [_token_id(tokens, t, lexicon, entry, blank) for t in entry.tokens]
        if entry.disambig:
            labels.append(tokens.id(f"#{entry.disambig}"))
        outputs = [words.id(entry.word)] + [0] * (len(labels) - 1)
        costs = [0.0 if entry.prob is None else -math.log(entry.prob)] + [0.0] * (len(labels) - 1)
        state = loop
        for position, (i, o, w) in enumerate(zip(labels, outputs, costs, strict=True)):
            if position == len(labels) - 1:
                arc(state, loop, i, o, w + no_sil_cost)
                if silence is not None:
                    arc(state, sil_state, i, o, w + sil_cost)
            else:
                arc(state, next_state, i, o, w)
                state = next_state
                next_state += 1
    arc(loop, loop, tokens.id("#0"), words.id("#0"), 0.0)
    if silence is not None:
        arc(start, loop, 0, 0, no_sil_cost)
        arc(start, sil_state, 0, 0, sil_cost)
        arc(sil_state, loop, tokens.id(silence), 0, 0.0)
    finals = np.full(next_state, np.inf)
    finals[loop] = 0.0
    return fst_from_arrays(start, finals, src, ilab, olab, np.asarray(cost, dtype=np.float32), dst)
