"""Symbol tables: the bidirectional map between token or word strings and integer ids.

Files are read in either of the two layouts speech toolkits use:

* one symbol per line, the id being the symbol's index among the non-blank lines (0-based);
* ``symbol id`` pairs separated by whitespace (OpenFst / Kaldi / k2 / icefall ``tokens.txt``,
  ``words.txt``), in any order, the ids a permutation of ``0 .. n-1``.

Tables are written as ``symbol id`` pairs in id order, which every one of those tools reads.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Iterable, Iterator, Sequence

from speechdecode._io import atomic_write, open_text
from speechdecode.errors import InputFileError, InvalidArgumentError

__all__ = ["SymbolTable", "acoustic_units", "char_tokens", "is_disambig", "token_table", "word_table"]

_ID = re.compile(r"[0-9]+")


def _check_symbol(symbol: object, argument: str) -> str:
    if not isinstance(symbol, str) or not symbol or any(c.isspace() for c in symbol):
        raise InvalidArgumentError(argument, "a non-empty str without whitespace", repr(symbol))
    return symbol


class SymbolTable:
    """An immutable symbol <-> id map with ids ``0 .. len - 1``.

    Args:
        symbols: the symbols in id order (``symbols[i]`` gets id ``i``); non-empty strings without
            whitespace, no duplicates.

    Raises:
        InvalidArgumentError: an empty, non-str or whitespace-containing symbol, or a duplicate
            (the message gives both ids).

    Example:
        >>> table = SymbolTable(["<blk>", "|", "a", "b"])
        >>> table.id("a"), table.symbol(3), len(table), "c" in table
        (2, 'b', 4, False)
        >>> table.encode("ab|a"), table.decode([3, 2])
        ([2, 3, 1, 2], ['b', 'a'])
    """

    __slots__ = ("_ids", "_symbols")

    def __init__(self, symbols: Iterable[str]):
        self._symbols = tuple(symbols)
        self._ids: dict[str, int] = {}
        for i, symbol in enumerate(self._symbols):
            _check_symbol(symbol, f"symbols[{i}]")
            first = self._ids.setdefault(symbol, i)
            if first != i:
                raise InvalidArgumentError(f"symbols[{i}]", "unique symbols", f"{symbol!r}, already id {first}")

    @property
    def symbols(self) -> list[str]:
        """All symbols in id order (a new list)."""
        return list(self._symbols)

    def id(self, symbol: str) -> int:
        """The id of ``symbol``; InvalidArgumentError if it is not in the table."""
        try:
            return self._ids[symbol]
        except (KeyError, TypeError):
            raise InvalidArgumentError("symbol", f"one of the table's {len(self)} symbols", repr(symbol)) from None

    def symbol(self, id: int) -> str:
        """The symbol with id ``id``; InvalidArgumentError unless ``0 <= id < len(self)``."""
        index = self._index(id, "id")
        return self._symbols[index]

    def encode(self, symbols: Iterable[str]) -> list[int]:
        """Ids of ``symbols`` (any iterable; a str is a sequence of one-character symbols).

        Raises:
            InvalidArgumentError: naming the first unknown symbol and its position.
        """
        ids = []
        for position, symbol in enumerate(symbols):
            i = self._ids.get(symbol) if isinstance(symbol, str) else None
            if i is None:
                raise InvalidArgumentError(
                    f"symbols[{position}]", f"one of the table's {len(self)} symbols", f"unknown symbol {symbol!r}"
                )
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Symbols of ``ids`` (ints, numpy integers, or a 1-D integer array).

        Raises:
            InvalidArgumentError: naming the first id outside ``[0, len)`` and its position.
        """
        return [self._symbols[self._index(i, f"ids[{position}]")] for position, i in enumerate(ids)]

    def _index(self, value: object, argument: str) -> int:
        try:
            index = operator.index(value)
        except TypeError:
            raise InvalidArgumentError(argument, "an integer id", repr(value)) from None
        if not 0 <= index < len(self._symbols):
            raise InvalidArgumentError(argument, f"an id in [0, {len(self._symbols)})", index)
        return index

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._symbols)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymbolTable):
            return NotImplemented
        return self._symbols == other._symbols

    def __hash__(self) -> int:
        return hash(self._symbols)

    def __repr__(self) -> str:
        shown = ", ".join(map(repr, self._symbols[:5]))
        more = f", ... ({len(self)} symbols)" if len(self) > 5 else ""
        return f"SymbolTable([{shown}{more}])"

    @classmethod
    def read(cls, path: str | os.PathLike) -> SymbolTable:
        """Read a table in either layout of the module docstring (gzip, told by its content, is decompressed).

        Blank lines are skipped; the first non-blank line fixes the layout (1 field: one symbol per
        line, 2 fields: ``symbol id``).

        Raises:
            InputFileError: ``path:line: ...`` for a line with another number of fields, a line in the
                other layout, an id that is not a non-negative decimal integer, a repeated symbol or
                id (naming the earlier line), or ids that are not ``0 .. n-1`` (naming the line of an
                id ``>= n``, and the smallest missing id).
            OSError: the file cannot be opened.
        """
        entries: list[tuple[int, str, int | None]] = []  # (line number, symbol, id or None)
        layout = None
        with open_text(path) as handle:
            for line_number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) > 2:
                    raise InputFileError(
                        path, line_number, f"expected 'symbol' or 'symbol id', got {len(fields)} fields"
                    )
                if layout is None:
                    layout = (len(fields), line_number)
                elif len(fields) != layout[0]:
                    kinds = {1: "one symbol per line", 2: "'symbol id' pairs"}
                    raise InputFileError(
                        path,
                        line_number,
                        f"mixed layouts: this line has {len(fields)} field(s) but line {layout[1]} "
                        f"started a table of {kinds[layout[0]]}",
                    )
                if len(fields) == 2 and not _ID.fullmatch(fields[1]):
                    raise InputFileError(path, line_number, f"id {fields[1]!r} is not a non-negative integer")
                entries.append((line_number, fields[0], int(fields[1]) if len(fields) == 2 else None))

        symbol_line: dict[str, int] = {}
        for line_number, symbol, _ in entries:
            earlier = symbol_line.setdefault(symbol, line_number)
            if earlier != line_number:
                raise InputFileError(path, line_number, f"symbol {symbol!r} repeats line {earlier}")
        if layout is None or layout[0] == 1:
            return cls(symbol for _, symbol, _ in entries)

        n = len(entries)
        by_id: dict[int, tuple[int, str]] = {}
        for line_number, symbol, i in entries:
            if i in by_id:
                raise InputFileError(path, line_number, f"id {i} repeats line {by_id[i][0]}")
            by_id[i] = (line_number, symbol)
        for line_number, _, i in entries:
            if i >= n:
                missing = min(set(range(n)).difference(by_id))
                raise InputFileError(
                    path,
                    line_number,
                    f"id {i} leaves a gap: {n} symbols need ids 0..{n - 1}, and id {missing} is missing",
                )
        return cls(by_id[i][1] for i in range(n))

    def write(self, path: str | os.PathLike) -> None:
        """Write ``symbol id`` lines in id order, atomically (the file is complete or absent)."""
        with atomic_write(path, "w") as handle:
            handle.writelines(f"{symbol} {i}\n" for i, symbol in enumerate(self._symbols))


def char_tokens(words: Iterable[str], blank: str = "<blk>", word_boundary: str = "|") -> SymbolTable:
    """The token table of a character CTC model: blank, word boundary, then each character.

    Ids: ``blank`` 0, ``word_boundary`` 1, then the distinct characters of ``words`` sorted by
    code point from id 2. This pairs with :func:`speechdecode.graphs.char_lexicon`.

    Args:
        words: the words to spell (e.g. an LM's vocabulary); non-empty strings without whitespace.
        blank: the CTC blank symbol.
        word_boundary: the token that ends each word.

    Raises:
        InvalidArgumentError: an empty or whitespace-containing word, blank equal to
            ``word_boundary``, or a word containing either of them as a character.

    Example:
        >>> char_tokens(["cab", "a"]).symbols
        ['<blk>', '|', 'a', 'b', 'c']
    """
    _check_symbol(blank, "blank")
    _check_symbol(word_boundary, "word_boundary")
    if blank == word_boundary:
        raise InvalidArgumentError("word_boundary", f"a symbol other than blank {blank!r}", repr(word_boundary))
    if isinstance(words, str):
        raise InvalidArgumentError("words", "an iterable of words", "a single str")
    chars: set[str] = set()
    for i, word in enumerate(words):
        _check_symbol(word, f"words[{i}]")
        for reserved, name in ((blank, "blank"), (word_boundary, "word_boundary")):
            if reserved in word and len(reserved) == 1:
                raise InvalidArgumentError(f"words[{i}]", f"no character equal to {name} {reserved!r}", repr(word))
        chars.update(word)
    return SymbolTable([blank, word_boundary, *sorted(chars)])


EPSILON = "<eps>"
BOS, EOS = "<s>", "</s>"
_DISAMBIG = re.compile(r"#[0-9]+")


def is_disambig(symbol: str) -> bool:
    """True for a disambiguation symbol ``#0``, ``#1``, ... (reserved in both tables)."""
    return _DISAMBIG.fullmatch(symbol) is not None


def acoustic_units(
    units: Iterable[str] | SymbolTable | str | os.PathLike, blank: str = "<blk>", blank_last: bool = False
) -> list[str]:
    """The acoustic model's output symbols in output order, with the blank first (or last).

    ``units`` is the model's token list: a file in either :class:`SymbolTable` layout (one token per
    line in output order, or k2/icefall ``token id`` pairs, the id being the output index), a
    :class:`SymbolTable`, or the symbols in order. If the list lacks ``blank`` it is inserted at
    index 0 (or appended with ``blank_last``); if it has it, it must be at that index.

    Returns:
        A list of V symbols; index i is acoustic-model output i.

    Raises:
        InvalidArgumentError: a reserved symbol in the list (``<eps>``, ``#k``, ``<s>``, ``</s>`` are
            added by the graph compiler), the blank elsewhere than first (last), or no units besides
            the blank.
        InputFileError: a malformed token file (see :meth:`SymbolTable.read`), or one of the
            problems above in a token file (naming the file, and the line of the symbol).

    Example:
        >>> acoustic_units(["a", "b"]), acoustic_units(["a", "b"], blank_last=True)
        (['<blk>', 'a', 'b'], ['a', 'b', '<blk>'])
    """
    _check_symbol(blank, "blank")
    source = None
    if isinstance(units, (str, os.PathLike)):
        source = units
        table = SymbolTable.read(units)
    elif isinstance(units, SymbolTable):
        table = units
    else:
        table = SymbolTable(units)

    def bad(argument: str, expected: str, actual: object, symbol: str | None = None) -> Exception:
        if source is None:
            return InvalidArgumentError(argument, expected, actual)
        line = None if symbol is None else _line_of(source, symbol)
        return InputFileError(source, line, f"{argument}: expected {expected}, got {actual}")

    symbols = table.symbols
    for i, symbol in enumerate(symbols):
        if symbol == EPSILON or is_disambig(symbol):
            expected = "an acoustic-model output (<eps> and #k are added by the graph compiler)"
            raise bad(f"units[{i}]", expected, repr(symbol), symbol)
    if blank not in table:
        symbols = [*symbols, blank] if blank_last else [blank, *symbols]
    where = len(symbols) - 1 if blank_last else 0
    if symbols[where] != blank:
        expected = f"the blank {blank!r} {'last' if blank_last else 'first'} (output index {where})"
        raise bad("units", expected, f"blank at index {symbols.index(blank)}", blank)
    if len(symbols) < 2:
        raise bad("units", "at least one token besides the blank", symbols)
    return symbols


def _line_of(path: str | os.PathLike, symbol: str) -> int | None:
    """The line of ``path`` whose first field is ``symbol`` (for an error message)."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.split()[:1] == [symbol]:
                return number
    return None


def token_table(units: Sequence[str], num_disambig: int) -> SymbolTable:
    """The graph's input table: ``<eps>`` 0, the acoustic outputs at ids 1..V, then ``#0 .. #k``.

    Id ``i >= 1`` below V+1 is acoustic-model output ``i - 1``; ``num_disambig`` symbols ``#0 ..
    #(num_disambig-1)`` follow at ids V+1 onward. ``units`` comes from :func:`acoustic_units`.
    """
    if num_disambig < 1:
        raise InvalidArgumentError("num_disambig", "at least 1 (#0 for the LM's back-off arcs)", num_disambig)
    return SymbolTable([EPSILON, *units, *(f"#{k}" for k in range(num_disambig))])


def word_table(words: Iterable[str]) -> SymbolTable:
    """The graph's output table: ``<eps>`` 0, ``words`` in order from id 1, then ``#0``, ``<s>``, ``</s>``.

    Raises:
        InvalidArgumentError: a word that is ``<eps>``, ``<s>``, ``</s>`` or ``#k``, or a repeated word.

    Example:
        >>> word_table(["hi", "there"]).symbols
        ['<eps>', 'hi', 'there', '#0', '<s>', '</s>']
    """
    words = list(words)
    for i, word in enumerate(words):
        if word in (EPSILON, BOS, EOS) or (isinstance(word, str) and is_disambig(word)):
            raise InvalidArgumentError(f"words[{i}]", "a word (<eps>, <s>, </s> and #k are reserved)", repr(word))
    return SymbolTable([EPSILON, *words, "#0", BOS, EOS])
