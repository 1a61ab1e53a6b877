"""From decoded token symbols to words."""

from __future__ import annotations

from collections.abc import Sequence


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
