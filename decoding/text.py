"""From token symbols to words: label conventions, word boundaries, and an LM's words against the tokens."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from speechdecode import _tensors
from speechdecode.errors import InvalidArgumentError

__all__ = [
    "blank_id",
    "boundary_of",
    "check_lexicon_lm",
    "check_lm_words",
    "lexicon_entries",
    "load_lm",
    "spell",
    "token_pieces",
    "words_from_tokens",
]

SPECIAL_WORDS = ("<unk>", "<s>", "</s>")
PIECE_MARK = "\u2581"


def words_from_tokens(pieces: Sequence[str], word_boundary: str | None = "|") -> list[str]:
    """Join token symbols into words.

    With a ``word_boundary`` symbol (character CTC models with a visible boundary, e.g. ``|``)
    the pieces are concatenated and split at it; with ``None`` every piece is a word.

    >>> words_from_tokens(["t", "h", "e", "|", "c", "a", "t", "|"])
    ['the', 'cat']
    """
    if word_boundary is None:
        return list(pieces)
    return "".join(pieces).replace(word_boundary, " ").split()


def _examples(items, n: int = 5) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:n])
    return f"[{shown}{', ...' if len(items) > n else ''}]"


def blank_id(tokens: Sequence[str], blank: int | str) -> int:
    """The blank's id: an id in [0, V), or a symbol of ``tokens`` (``""``, ``"<pad>"``, ``"-"``)."""
    if isinstance(blank, str):
        if blank not in tokens:
            raise InvalidArgumentError("blank", f"an id or a symbol of the tokens {_examples(tokens, 8)}", repr(blank))
        return list(tokens).index(blank)
    return _tensors.label(blank, "blank", len(tokens))


def boundary_of(tokens: Sequence[str], blank: int, word_boundary: str | None) -> str | None:
    """The word-boundary marker the search uses (see :class:`CtcPrefixBeamSearch`'s ``word_boundary``).

    ``"auto"``: ``"|"`` if a token holds it, else ``" "`` if it is a token, else ``"▁"`` if a token
    starts with it, else None. A marker that no token (but the blank) starts with is an error: the words
    would run together.
    """
    symbols = [s for i, s in enumerate(tokens) if i != blank]
    if word_boundary == "auto":
        if any("|" in s for s in symbols):
            return "|"
        if " " in symbols:
            return " "
        return PIECE_MARK if any(s.startswith(PIECE_MARK) for s in symbols) else None
    if word_boundary is None:
        return None
    if not isinstance(word_boundary, str) or not word_boundary:
        raise InvalidArgumentError("word_boundary", "a non-empty str, 'auto' or None", repr(word_boundary))
    if not any(s.startswith(word_boundary) for s in symbols):
        expected = f"a token, or the start of tokens, of {_examples(symbols, 8)} (words would run together)"
        raise InvalidArgumentError("word_boundary", expected, f"{word_boundary!r}, which no token starts with")
    return word_boundary


def check_lm_words(tokens: Sequence[str], blank: int, word_boundary: str | None, vocab: Sequence[str]) -> None:
    """Check that the tokens can spell the LM's words (by characters).

    Raises InvalidArgumentError when they spell none of them (a case mismatch says so), or when
    there is no word boundary and most LM words are not tokens; warns when they spell fewer than
    half. The messages name examples of each side.
    """
    words = [w for w in vocab if w not in SPECIAL_WORDS]
    if word_boundary is None and words:
        symbols = set(tokens)
        if sum(w in symbols for w in words) * 2 < len(words):
            expected = "a word boundary for an LM of words (no token is '|' or ' ', none starts with '▁')"
            actual = f"None: every token would be a word, but LM words {_examples(words)} are not tokens"
            raise InvalidArgumentError("word_boundary", expected, actual)
    chars = set()
    for i, symbol in enumerate(tokens):
        if i != blank:
            chars.update(symbol.lstrip(word_boundary) if word_boundary else symbol)
    if not words or not chars:
        return
    spelled = [w for w in words if chars.issuperset(w)]
    if len(spelled) * 2 >= len(words):
        return
    unspelled = [w for w in words if not chars.issuperset(w)]
    both = f"LM words {_examples(unspelled)} are not spelled by the tokens {_examples(sorted(chars), 12)}"
    if not spelled:
        lower = {c.lower() for c in chars} | {c.upper() for c in chars}
        case = " (a case mismatch: the tokens and the LM differ in upper/lower case)"
        hint = case if sum(lower.issuperset(w) for w in words) * 2 >= len(words) else ""
        raise InvalidArgumentError("lm", "an LM whose words the tokens can spell", both + hint)
    share = f"{len(spelled)} of {len(words)} LM words can be spelled"
    warnings.warn(f"lm: {share}; {both}", UserWarning, stacklevel=3)


def check_lexicon_lm(entries: Sequence[tuple[tuple[int, ...], str]], vocab: Sequence[str]) -> None:
    """A lexicon none of whose words the LM knows is an error naming examples of both."""
    known = set(vocab)
    words = list(dict.fromkeys(w for _, w in entries))
    if any(w in known for w in words):
        return
    lm_words = [w for w in vocab if w not in SPECIAL_WORDS]
    lower = {w.lower() for w in lm_words}
    case = " (a case mismatch)" if any(w.lower() in lower for w in words) else ""
    actual = f"lexicon words {_examples(words)}, LM words {_examples(lm_words)}: none in common{case}"
    raise InvalidArgumentError("lm", "an LM that knows the lexicon's words", actual)


def load_lm(lm, name: str = "lm"):
    """An :class:`~speechdecode.lm.NgramModel` from a model (returned as is), a path of any file
    :meth:`NgramModel.load` reads, or None."""
    from speechdecode.lm.model import NgramModel

    if lm is None or isinstance(lm, NgramModel):
        return lm
    if isinstance(lm, (str, os.PathLike)):
        return NgramModel.load(lm)  # ARPA, gzip ARPA or KenLM binary, told by content
    raise InvalidArgumentError(name, "None, a speechdecode.lm.NgramModel or the path of an LM file", type(lm).__name__)


def lexicon_entries(
    lexicon, tokens: Sequence[str], pieces: Sequence[tuple[bool, str]], source: str | None = None, lines=None
) -> list[tuple[tuple[int, ...], str]]:
    """A lexicon as ``(token ids, word)`` pairs for the prefix search.

    ``lexicon``: a lexicon file (``word t1 t2 ...`` lines, :func:`speechdecode.graphs.read_lexicon`),
    or a mapping ``word -> spellings`` (each a sequence of token symbols, or a
    :class:`~speechdecode.graphs.Pronunciation`). Word-boundary tokens (a boundary token of its own,
    such as torchaudio's trailing ``|``) are dropped from spellings; ``pieces`` is
    :func:`token_pieces` of the tokens. ``source``
    and ``lines`` (``(word, spelling) -> line``) name a mapping's file in errors.

    Raises:
        InputFileError: (a file) a spelling with a token that is not in ``tokens``, the blank, or a
            word-starting token after its first, naming the word and its line.
        InvalidArgumentError: the same for a mapping, naming the word; an empty lexicon.
    """
    from speechdecode.errors import InputFileError
    from speechdecode.graphs.lexicon import Pronunciation, read_lexicon

    if isinstance(lexicon, (str, os.PathLike)):
        lexicon = read_lexicon(lexicon)
    source = source if source is not None else getattr(lexicon, "_source", None)
    lines = lines if lines is not None else getattr(lexicon, "_lines", {})
    ids = {s: i for i, s in reversed(list(enumerate(tokens)))}
    entries = []
    for word, spellings in lexicon.items():
        for spelling in spellings:
            symbols = tuple(spelling.tokens if isinstance(spelling, Pronunciation) else spelling)

            def bad(what: str, word=word, symbols=symbols):
                line = lines.get((word, symbols))
                if source is not None:
                    return InputFileError(source, line, f"word {word!r}: {what}")
                return InvalidArgumentError("lexicon", "spellings in the tokens", f"word {word!r}: {what}")

            spelled = []
            for symbol in symbols:
                if symbol not in ids:
                    raise bad(f"token {symbol!r} is not one of the {len(tokens)} tokens")
                starts, chars = pieces[ids[symbol]]
                if not chars and starts:
                    continue  # a boundary token of its own: words are separated by it anyway
                if not chars:
                    raise bad(f"token {symbol!r} has no characters (the blank?)")
                if starts and spelled:
                    raise bad(f"token {symbol!r} starts a word, after the spelling's first token")
                spelled.append(ids[symbol])
            if not spelled:
                raise bad("no token other than word boundaries")
            entries.append((tuple(spelled), word))
    if not entries:
        raise InvalidArgumentError("lexicon", "one or more words", "an empty lexicon")
    return entries


def token_pieces(tokens: Sequence[str], blank: int, word_boundary: str | None) -> list[tuple[bool, str]]:
    """Per token id: (starts a word, its characters), as the search reads the symbols.

    Leading ``word_boundary`` markers are stripped; the blank has no characters.
    """
    pieces = []
    for i, symbol in enumerate(tokens):
        if i == blank:
            pieces.append((False, ""))
        elif word_boundary is None:
            pieces.append((True, symbol))
        else:
            chars = symbol.lstrip(word_boundary)
            pieces.append((len(chars) < len(symbol), chars))
    return pieces


def spell(
    pieces: Sequence[tuple[bool, str]], tokens: Sequence[int], frames: Sequence[int]
) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The words of a token sequence and each word's first and last frame (of its first and last
    token with characters), from :func:`token_pieces` output; the rules are "Words" in
    :mod:`speechdecode.kernels.ctc_prefix_beam.reference`."""
    words: list[str] = []
    word_frames: list[tuple[int, int]] = []
    word, first, last = "", 0, 0
    for token, frame in zip(tokens, frames, strict=True):
        starts, chars = pieces[token]
        if starts and word:
            words.append(word)
            word_frames.append((first, last))
            word = ""
        if chars:
            first = first if word else frame
            word, last = word + chars, frame
    if word:
        words.append(word)
        word_frames.append((first, last))
    return tuple(words), tuple(word_frames)
