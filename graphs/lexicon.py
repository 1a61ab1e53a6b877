"""Pronunciation lexicons: each word's token sequences, with optional probabilities.

Files use the Kaldi layouts, one pronunciation per line, fields separated by whitespace::

    lexicon.txt     word t1 t2 ...
    lexiconp.txt    word prob t1 t2 ...      (prob in (0, 1])

A word with several pronunciations has several lines.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from speechdecode._io import atomic_write, open_text
from speechdecode.errors import BackendUnavailableError, InputFileError, InvalidArgumentError
from speechdecode.graphs.symbols import EPSILON, is_disambig

__all__ = ["Lexicon", "Pronunciation", "char_lexicon", "piece_lexicon", "read_lexicon", "write_lexicon"]

_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class Pronunciation(NamedTuple):
    """One way to say a word: its tokens, and its probability (None in a lexicon without them)."""

    tokens: tuple[str, ...]
    prob: float | None = None


def _is_field(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not any(c.isspace() for c in value)


def _is_reserved(token: str) -> bool:
    """``<eps>`` and ``#0``, ``#1``, ...: the graph compiler's symbols, never a spoken token."""
    return token == EPSILON or is_disambig(token)


_RESERVED = "a token (<eps> and the disambiguation symbols #0, #1, ... are the graph compiler's)"


class Lexicon(Mapping[str, tuple[Pronunciation, ...]]):
    """Words mapped to their pronunciations, in insertion order.

    A read-only :class:`~collections.abc.Mapping` ``word -> tuple[Pronunciation, ...]`` (a missing
    word raises ``KeyError``), filled with :meth:`add`. Either every pronunciation has a
    probability or none has (:attr:`has_probabilities`), as in a Kaldi lexicon file.

    Args:
        entries: optional initial content, ``word -> iterable of pronunciations``, each a sequence
            of token strings or a :class:`Pronunciation`; added in order with :meth:`add`.

    Example:
        >>> lex = Lexicon({"read": [("r", "iy", "d"), ("r", "eh", "d")], "a": [("ah",)]})
        >>> len(lex), lex["read"][1].tokens, sorted(lex.tokens())
        (2, ('r', 'eh', 'd'), ['ah', 'd', 'eh', 'iy', 'r'])
    """

    def __init__(self, entries: Mapping[str, Iterable[Sequence[str] | Pronunciation]] | None = None):
        self._prons: dict[str, list[Pronunciation]] = {}
        self._has_probs: bool | None = None
        self._source: str | None = None
        self._lines: dict[tuple[str, tuple[str, ...]], int] = {}
        for word, prons in (entries or {}).items():
            for pron in prons:
                if isinstance(pron, Pronunciation):
                    self.add(word, pron.tokens, pron.prob)
                else:
                    self.add(word, pron)

    def add(self, word: str, tokens: Sequence[str], prob: float | None = None) -> None:
        """Add one pronunciation of ``word``.

        Args:
            word: non-empty, no whitespace.
            tokens: at least one token; each non-empty, no whitespace.
            prob: a number in (0, 1], or None; must match the lexicon's other pronunciations
                (all with a probability or all without).

        Raises:
            InvalidArgumentError: a bad word, token or probability, a token ``<eps>`` or ``#k``, a
                probability where the others have none (or the reverse), or a pronunciation the
                word already has.
        """
        if not _is_field(word):
            raise InvalidArgumentError("word", "a non-empty str without whitespace", repr(word))
        if isinstance(tokens, str):
            raise InvalidArgumentError("tokens", "a sequence of token strings", f"the str {tokens!r}")
        tokens = tuple(tokens)
        if not tokens:
            raise InvalidArgumentError("tokens", f"at least one token for {word!r}", "an empty pronunciation")
        for i, token in enumerate(tokens):
            if not _is_field(token):
                raise InvalidArgumentError(f"tokens[{i}]", "a non-empty str without whitespace", repr(token))
            if _is_reserved(token):
                raise InvalidArgumentError(f"tokens[{i}]", _RESERVED, f"{token!r} in the pronunciation of {word!r}")
        if prob is not None:
            if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 < prob <= 1.0:
                raise InvalidArgumentError("prob", "a number in (0, 1] or None", repr(prob))
            prob = float(prob)
        if self._has_probs is not None and self._has_probs != (prob is not None):
            expected = (
                "a probability, as every other pronunciation has"
                if self._has_probs
                else "prob=None, as for every other pronunciation"
            )
            raise InvalidArgumentError("prob", expected, repr(prob))
        prons = self._prons.setdefault(word, [])
        if any(p.tokens == tokens for p in prons):
            raise InvalidArgumentError("tokens", f"a pronunciation {word!r} does not have yet", " ".join(tokens))
        prons.append(Pronunciation(tokens, prob))
        self._has_probs = prob is not None

    @property
    def has_probabilities(self) -> bool:
        """True if the pronunciations carry probabilities (False for an empty lexicon)."""
        return bool(self._has_probs)

    @property
    def num_pronunciations(self) -> int:
        """Total number of (word, pronunciation) entries."""
        return sum(len(p) for p in self._prons.values())

    def origin(self, word: str, tokens: Sequence[str]) -> tuple[str, int] | None:
        """``(path, line)`` of a pronunciation read by :func:`read_lexicon`; None for one added in code."""
        line = self._lines.get((word, tuple(tokens)))
        return None if line is None or self._source is None else (self._source, line)

    def entries(self) -> Iterator[tuple[str, Pronunciation]]:
        """Every ``(word, pronunciation)`` in order: words by insertion, then their pronunciations."""
        for word, prons in self._prons.items():
            for pron in prons:
                yield word, pron

    def tokens(self) -> set[str]:
        """The set of tokens used by any pronunciation."""
        return {t for _, pron in self.entries() for t in pron.tokens}

    def __getitem__(self, word: str) -> tuple[Pronunciation, ...]:
        return tuple(self._prons[word])

    def __iter__(self) -> Iterator[str]:
        return iter(self._prons)

    def __len__(self) -> int:
        return len(self._prons)

    def __repr__(self) -> str:
        return f"Lexicon({len(self)} words, {self.num_pronunciations} pronunciations)"


def read_lexicon(path: str | os.PathLike, probabilities: bool | None = None) -> Lexicon:
    """Read a Kaldi-style lexicon (gzip, told by its content, is decompressed); blank lines are skipped.

    Which layout a file has is decided once for the whole file:

    * ``probabilities=None`` (default): the first entry decides. If its second field is written as a
      decimal number (``1``, ``0.5``, ``.25``, ``1e-3``), the file is ``word prob t1 ...`` and every
      line must have a probability in (0, 1] there; otherwise no line has one, and a numeric-looking
      second field on a later line is an ordinary token.
    * ``probabilities=True`` / ``False``: the layout is given, nothing is guessed. Use ``False`` for
      a plain lexicon whose first token may look like a number (e.g. digits as tokens).

    Args:
        path: the lexicon file.
        probabilities: the layout, or None to detect it as above.

    Returns:
        A :class:`Lexicon` in file order.

    Raises:
        InputFileError: ``path:line: ...`` for a word without tokens (empty pronunciation), a
            probability that is not a number in (0, 1], a token ``<eps>`` or ``#k`` (the graph
            compiler's symbols: the decoder would output the word for audio that does not spell
            it), a line that is not UTF-8, or a repeated (word, pronunciation) (naming the earlier
            line).
        OSError: the file cannot be opened.

    Example:
        >>> lex = read_lexicon("lexiconp.txt")  # doctest: +SKIP
        >>> lex["hello"][0]  # doctest: +SKIP
        Pronunciation(tokens=('hh', 'ah', 'l', 'ow'), prob=1.0)
    """
    lexicon = Lexicon()
    with_probs = probabilities
    decided_at = None if probabilities is None else "the probabilities argument"
    seen: dict[tuple[str, tuple[str, ...]], int] = {}
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            word = fields[0]
            if with_probs is None:
                with_probs = len(fields) > 1 and _NUMBER.fullmatch(fields[1]) is not None
                decided_at = f"line {line_number}"
            prob = None
            if with_probs:
                if len(fields) < 2:
                    raise InputFileError(
                        path, line_number, f"empty pronunciation (and no probability) for word {word!r}"
                    )
                prob = float(fields[1]) if _NUMBER.fullmatch(fields[1]) else math.nan
                if not 0.0 < prob <= 1.0:
                    raise InputFileError(
                        path,
                        line_number,
                        f"bad probability {fields[1]!r}: expected a number in (0, 1] "
                        f"(this file has probabilities in column 2, as set by {decided_at})",
                    )
            tokens = tuple(fields[2:] if with_probs else fields[1:])
            if not tokens:
                raise InputFileError(path, line_number, f"empty pronunciation for word {word!r}")
            reserved = next((t for t in tokens if _is_reserved(t)), None)
            if reserved is not None:
                raise InputFileError(
                    path, line_number, f"the pronunciation of {word!r} holds {reserved!r}: expected {_RESERVED}"
                )
            earlier = seen.setdefault((word, tokens), line_number)
            if earlier != line_number:
                raise InputFileError(path, line_number, f"word {word!r} repeats the pronunciation of line {earlier}")
            lexicon.add(word, tokens, prob)
    lexicon._source = os.fspath(path)
    lexicon._lines = seen
    return lexicon


def write_lexicon(path: str | os.PathLike, lexicon: Lexicon) -> None:
    """Write ``lexicon`` atomically, one ``word [prob] t1 t2 ...`` line per pronunciation.

    Probabilities are written when the lexicon has them, as the shortest decimal that reads back
    to the same float. A plain lexicon whose first token looks like a number reads back correctly
    only with ``read_lexicon(path, probabilities=False)``.
    """
    with atomic_write(path, "w") as handle:
        for word, pron in lexicon.entries():
            prob = [] if pron.prob is None else [repr(pron.prob)]
            handle.write(" ".join([word, *prob, *pron.tokens]) + "\n")


def char_lexicon(words: Iterable[str], word_boundary: str = "|") -> Lexicon:
    """The lexicon of a character CTC model with a visible word boundary.

    Each word is spelled as its characters followed by ``word_boundary``: ``"cab" -> c a b |``.
    The boundary token ends every word, so a decoded token sequence splits into words at it
    (the ``|`` of wav2vec2-style character vocabularies). Words repeated in ``words`` are added
    once; there are no probabilities. Its tokens, plus the blank, are
    :func:`speechdecode.graphs.char_tokens` of the same words.

    Raises:
        InvalidArgumentError: ``words`` is a single str, or a word is empty, contains whitespace,
            or contains the ``word_boundary`` character.

    Example:
        >>> char_lexicon(["to", "too", "to"])["too"]
        (Pronunciation(tokens=('t', 'o', 'o', '|'), prob=None),)
    """
    if isinstance(words, str):
        raise InvalidArgumentError("words", "an iterable of words", "a single str")
    if not _is_field(word_boundary):
        raise InvalidArgumentError("word_boundary", "a non-empty str without whitespace", repr(word_boundary))
    lexicon = Lexicon()
    for i, word in enumerate(words):
        if not _is_field(word):
            raise InvalidArgumentError(f"words[{i}]", "a non-empty str without whitespace", repr(word))
        if len(word_boundary) == 1 and word_boundary in word:
            raise InvalidArgumentError(
                f"words[{i}]", f"no character equal to word_boundary {word_boundary!r}", repr(word)
            )
        if word not in lexicon:
            lexicon.add(word, (*word, word_boundary))
    return lexicon


def piece_lexicon(words: Iterable[str], pieces: str | os.PathLike | Callable[[str], Sequence[str]]) -> Lexicon:
    """The lexicon of a word-piece CTC model: each word spelled as its pieces.

    Args:
        words: the words (e.g. an LM's vocabulary); repeats are added once.
        pieces: a sentencepiece model file (needs the ``sentencepiece`` package; each word is
            encoded alone, as ``encode(word, out_type=str)``), or any callable mapping a word to its
            pieces (e.g. a Hugging Face tokenizer's ``tokenize``).

    Raises:
        InvalidArgumentError: ``words`` is a single str, a word is empty or contains whitespace,
            or the model gives a word no pieces (or a piece with whitespace).
        BackendUnavailableError: a model path is given and sentencepiece is not installed.

    Example:
        >>> piece_lexicon(["hello"], lambda w: ["\u2581he", "llo"])["hello"][0].tokens
        ('\u2581he', 'llo')
    """
    if isinstance(words, str):
        raise InvalidArgumentError("words", "an iterable of words", "a single str")
    if callable(pieces):
        split = pieces
    else:
        try:
            import sentencepiece
        except ImportError:
            raise BackendUnavailableError(
                "a sentencepiece model needs the sentencepiece package: pip install sentencepiece"
            ) from None
        model = sentencepiece.SentencePieceProcessor(model_file=os.fspath(pieces))

        def split(word: str) -> list[str]:
            return model.encode(word, out_type=str)

    lexicon = Lexicon()
    for i, word in enumerate(words):
        if not _is_field(word):
            raise InvalidArgumentError(f"words[{i}]", "a non-empty str without whitespace", repr(word))
        if word in lexicon:
            continue
        spelled = tuple(split(word))
        if not spelled or not all(_is_field(p) for p in spelled):
            raise InvalidArgumentError("pieces", f"non-empty pieces without whitespace for {word!r}", spelled)
        lexicon.add(word, spelled)
    return lexicon
