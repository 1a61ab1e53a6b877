"""Counting the n-grams of text corpora: files in, :class:`NgramCounts` out (the type and its
files live in :mod:`speechdecode.lm.counts`).

The native counter (``csrc/lm/ngram_counter``) reads the files, counts in a hash table bounded
by ``memory`` and spills sorted runs to disk when the table is full, so any corpus that fits on
disk can be counted. Its result equals :func:`speechdecode.lm.counts.count_sentences` on the
files' lines exactly (same ids, same rows, same counts); that plain-Python counter is the
reference backend.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from speechdecode import _args, _backend
from speechdecode._io import open_text
from speechdecode._progress import progress as progress_bar
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.lm.counts import WORD_BOUNDARY, NgramCounts, count_sentences, to_units
from speechdecode.lm.vocab import BOS, EOS, Vocabulary

__all__ = [
    "CountOptions",
    "count_files",
    "count_native",
    "count_native_to",
    "count_options",
    "input_files",
    "parse_size",
]

Path = str | os.PathLike
MAX_ORDER = 16  # the native counter's limit (speechdecode._native.COUNT_MAX_ORDER)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def parse_size(size: int | str) -> int:
    """A memory size in bytes, from an int or a string with a binary suffix or a percentage.

    >>> parse_size("500M"), parse_size("2G"), parse_size("1.5k"), parse_size(4096)
    (524288000, 2147483648, 1536, 4096)
    >>> parse_size("50%") == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    True

    Suffixes K, M, G, T are powers of 1024 (as lmplz's ``-S``); ``B`` / ``iB`` may follow; ``P%``
    is P percent of the machine's physical memory (as lmplz's ``-S 80%``).
    """
    if isinstance(size, bool) or not isinstance(size, int | str):
        raise InvalidArgumentError("memory", "bytes as an int or a string like '500M' or '2G'", repr(size))
    if isinstance(size, int):
        if size < 0:
            raise InvalidArgumentError("memory", "a non-negative number of bytes", size)
        return size
    percent = _PERCENT.match(size)
    if percent is not None:
        share = float(percent.group(1))
        if not 0 < share <= 100:
            raise InvalidArgumentError("memory", "a percentage of physical memory in (0, 100]", repr(size))
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(physical * share / 100)
    match = _SIZE.match(size)
    if match is None:
        raise InvalidArgumentError("memory", "a size like 4096, '500M', '2G' or '80%'", repr(size))
    return int(float(match.group(1)) * _UNIT[match.group(2).lower()])


def input_files(paths: Path | Iterable[Path]) -> list[str]:
    """The text files to count, as str; a missing one or a directory fails, named."""
    items = [paths] if isinstance(paths, str | bytes | os.PathLike) else list(paths)
    if not items:
        raise InvalidArgumentError("paths", "at least one file", "none")
    names = [os.fsdecode(p) for p in items]
    for name in names:
        if not os.path.exists(name):
            raise InputFileError(name, None, "no such file")
        if os.path.isdir(name):
            raise InputFileError(name, None, "is a directory, not a text file")
    return names


def _limit_words(limit_vocab: Path | Iterable[str] | None) -> list[str] | None:
    """The limiting vocabulary as words: a file of whitespace-separated words, or the words."""
    if limit_vocab is None:
        return None
    if isinstance(limit_vocab, str | bytes | os.PathLike):
        name = os.fsdecode(limit_vocab)
        try:
            with open_text(name) as handle:
                return handle.read().split()
        except OSError as exc:
            raise InputFileError(name, None, f"cannot read the limiting vocabulary ({exc.strerror or exc})") from None
    words = list(limit_vocab)
    bad = [w for w in words if not isinstance(w, str)]
    if bad:
        raise InvalidArgumentError("limit_vocab", "a file path or an iterable of str", f"an item {bad[0]!r}")
    return words


@dataclass(frozen=True)
class CountOptions:
    """The options of :func:`count_files`, checked (:func:`count_options`): what a counter needs
    besides its files (``limit_words``: the limiting vocabulary read into words, or None)."""

    order: int
    units: str
    word_boundary: str
    limit_words: list[str] | None
    memory_bytes: int
    tmp_dir: str | None
    encoding_errors: str


def count_options(
    order: int,
    *,
    units: str = "word",
    word_boundary: str = WORD_BOUNDARY,
    limit_vocab: Path | Iterable[str] | None = None,
    memory: int | str = "1G",
    tmp_dir: Path | None = None,
    encoding_errors: str = "strict",
) -> CountOptions:
    """:func:`count_files`'s options checked (each error names its argument), the limiting
    vocabulary read; for counters that share them (one per shard in a distributed build)."""
    order = _args.integer(order, "order", 1, MAX_ORDER)
    if units not in ("word", "char"):
        raise InvalidArgumentError("units", "'word' or 'char'", repr(units))
    if units == "char" and (not isinstance(word_boundary, str) or len(word_boundary) != 1 or word_boundary.isspace()):
        raise InvalidArgumentError("word_boundary", "one character that is not whitespace", repr(word_boundary))
    if encoding_errors not in ("strict", "replace"):
        raise InvalidArgumentError("encoding_errors", "'strict' or 'replace'", repr(encoding_errors))
    memory_bytes = parse_size(memory)
    if tmp_dir is not None and not os.path.isdir(tmp_dir):
        raise InvalidArgumentError("tmp_dir", "an existing directory", repr(os.fspath(tmp_dir)))
    tmp_dir = None if tmp_dir is None else os.fspath(tmp_dir)
    return CountOptions(order, units, word_boundary, _limit_words(limit_vocab), memory_bytes, tmp_dir, encoding_errors)


def _file_lines(path: str, encoding_errors: str, units: str) -> list[str]:
    """The lines of a file as the native counter splits them (at '\\n' only)."""
    with open_text(path, errors=encoding_errors) as handle:  # errors name the file and line
        text = handle.read()
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines if units == "word" else (), start=1):
        words = line.split()
        if BOS in words or EOS in words:
            special = BOS if BOS in words else EOS
            raise InputFileError(path, number, f"{special} in the text: <s> and </s> are added around each line")
    return lines


def _count_reference(paths: list[str], options: CountOptions) -> tuple[NgramCounts, int]:
    lines = [line for path in paths for line in _file_lines(path, options.encoding_errors, options.units)]
    if options.units == "char":  # count_sentences knows only the default boundary: split here instead
        lines = [" ".join(to_units(line, "char", options.word_boundary)) for line in lines]
    counts = count_sentences(lines, options.order, limit_vocab=options.limit_words)
    return counts, sum(len(line.split()) for line in lines)


def count_files(
    paths: Path | Iterable[Path],
    order: int,
    *,
    units: str = "word",
    word_boundary: str = WORD_BOUNDARY,
    limit_vocab: Path | Iterable[str] | None = None,
    memory: int | str = "1G",
    tmp_dir: Path | None = None,
    encoding_errors: str = "strict",
    progress: bool | Callable[[int], object] = False,
    backend: str | None = None,
) -> NgramCounts:
    """Count every n-gram of orders 1..``order`` in text files, one sentence per line.

    Each line is padded as ``<s> w1 ... wk </s>``; an empty line is the sentence ``<s> </s>``.
    Lines end at ``\\n`` (a ``\\r`` before it is whitespace). Word ids: ``<unk>`` = 0, ``<s>`` = 1,
    ``</s>`` = 2, then tokens in order of first appearance, so the result equals
    :func:`~speechdecode.lm.counts.count_sentences` on the same lines.

    Args:
        paths: one file or several, counted as one corpus in the order given; plain UTF-8 text
            or gzip (detected from the content).
        order: the highest order N, 1 <= N <= 16.
        units: ``"word"`` (whitespace-separated, as ``str.split()``) or ``"char"`` (each
            character is a token and ``word_boundary`` separates words, as
            :func:`~speechdecode.lm.counts.to_units`).
        word_boundary: one non-whitespace character, for ``units="char"``.
        limit_vocab: a file of whitespace-separated words, or an iterable of words: tokens
            outside it count as ``<unk>``. ``<unk>`` written in the text is that word.
        memory: the budget of the counting table and merge buffers, in bytes or as ``"500M"``,
            ``"2G"``; beyond it sorted runs are spilled to ``tmp_dir``. The vocabulary and the
            returned arrays come on top. Counts are exact whatever the budget.
        tmp_dir: where runs are spilled (default ``$TMPDIR`` or ``/tmp``). The files are unlinked
            as soon as they are created, so none is left behind, even after a crash or Ctrl-C.
        encoding_errors: ``"strict"`` (invalid UTF-8 raises, naming file and line) or
            ``"replace"`` (each invalid sequence becomes U+FFFD, as Python's decoder does).
        progress: True for a progress bar on stderr (when it is a terminal), or a callable
            given the input bytes read so far (about every 4 MiB).
        backend: ``"native"`` (default when built) or ``"reference"`` (reads the files into
            memory and calls :func:`count_sentences`).

    Returns:
        :class:`~speechdecode.lm.counts.NgramCounts`: per order n an int32 [M_n, n] array of
        sorted unique id rows and an int64 [M_n] array of counts, and the vocabulary.

    Raises:
        InvalidArgumentError: bad order, units, word_boundary, memory (below the minimum for
            the order, which the message gives), encoding_errors, or a corpus with no tokens.
        InputFileError: a missing or unreadable file, invalid UTF-8 (strict), or ``<s>`` /
            ``</s>`` in the text, as ``path:line: what``.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.txt"
        >>> _ = path.write_text("the cat sat\\nthe cat ran\\n")
        >>> counts = count_files(path, 3)
        >>> counts.count("the cat"), counts.count("<s> the cat"), counts.ngrams[2].shape
        (2, 2, (5, 3))
    """
    options = count_options(
        order,
        units=units,
        word_boundary=word_boundary,
        limit_vocab=limit_vocab,
        memory=memory,
        tmp_dir=tmp_dir,
        encoding_errors=encoding_errors,
    )
    names = input_files(paths)

    if _backend.select("cpu", backend, implemented=_backend.NO_KERNEL) == "reference":
        counts, tokens = _count_reference(names, options)
    else:
        counts, tokens = count_native(names, options, progress)
    if tokens == 0:
        raise InvalidArgumentError("paths", "a corpus with at least one token", f"none in {', '.join(names)}")
    return counts


def count_native(
    names: list[str], options: CountOptions, progress: bool | Callable[[int], object] = False
) -> tuple[NgramCounts, int]:
    """The native counter on ``names`` (as :func:`input_files` gives them; an empty corpus is no
    error here): the counts and the number of tokens read. Errors as :func:`count_files`."""
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        bar = progress_bar(desc="counting n-grams", total=sum(os.path.getsize(n) for n in names), unit="B")

        def callback(done: int) -> None:
            bar.update(done - bar.n)

    try:
        words, ngrams, counts, stats = _native_count(names, options, callback, [])
    finally:
        if bar is not None:
            bar.close()
    return NgramCounts(Vocabulary(words[3:]), ngrams, counts), stats["tokens"]


def count_native_to(
    names: list[str], options: CountOptions, output_fds: list[int]
) -> tuple[Vocabulary, list[int], int]:
    """:func:`count_native` with the counts written to files instead of returned: ``output_fds``
    holds, for each order n in turn, an open file for its n-grams (int32 ids, row-major) and one
    for their int64 counts, written from their current offsets in lexicographic row order; the
    counter holds a few MiB of buffers beside ``options.memory_bytes`` however many rows there
    are. Returns the vocabulary, the rows written per order and the number of tokens read."""
    words, _, _, stats = _native_count(names, options, None, output_fds)
    return Vocabulary(words[3:]), list(stats["rows"]), stats["tokens"]


def _native_count(names: list[str], options: CountOptions, callback, output_fds: list[int]):
    native = _backend.native()
    order, memory_bytes, tmp_dir = options.order, options.memory_bytes, options.tmp_dir
    minimum = native.count_min_memory(order)
    if memory_bytes < minimum:
        raise InvalidArgumentError("memory", f"at least {minimum} bytes for order {order}", memory_bytes)
    return native.count_files(
        [os.fsencode(n) for n in names],
        order,
        units=options.units,
        word_boundary=options.word_boundary,
        limit_vocab=options.limit_words,
        memory_bytes=memory_bytes,
        tmp_dir=os.fspath(tmp_dir) if tmp_dir is not None else "",
        encoding_errors=options.encoding_errors,
        progress=callback,
        output_fds=output_fds,
    )
