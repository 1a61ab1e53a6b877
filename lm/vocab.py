"""The word vocabulary of an n-gram LM: ids as KenLM numbers them.

``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, then words in order of first appearance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from speechdecode.errors import InvalidArgumentError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


class Vocabulary:
    """Words <-> int ids; unknown words map to ``<unk>`` (id 0).

    >>> v = Vocabulary(["the", "cat", "the"])
    >>> v.words, v.id("cat"), v.id("dog")
    (['<unk>', '<s>', '</s>', 'the', 'cat'], 4, 0)
    """

    def __init__(self, words: Iterable[str] = ()):
        self._words: list[str] = [UNK, BOS, EOS]
        self._ids: dict[str, int] = {UNK: UNK_ID, BOS: BOS_ID, EOS: EOS_ID}
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        """The id of ``word``, adding it if new."""
        found = self._ids.get(word)
        if found is not None:
            return found
        if not isinstance(word, str) or not word or any(c.isspace() for c in word):
            raise InvalidArgumentError("word", "a non-empty string without whitespace", repr(word))
        self._ids[word] = len(self._words)
        self._words.append(word)
        return len(self._words) - 1

    def id(self, word: str) -> int:
        """The id of ``word``; ``<unk>``'s id (0) for a word not in the vocabulary."""
        return self._ids.get(word, UNK_ID)

    def ids(self, words: Iterable[str]) -> list[int]:
        return [self._ids.get(w, UNK_ID) for w in words]

    def word(self, word_id: int) -> str:
        return self._words[word_id]

    @property
    def words(self) -> list[str]:
        """All words, by id."""
        return list(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def __len__(self) -> int:
        return len(self._words)

    def __iter__(self) -> Iterator[str]:
        return iter(self._words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._words == other._words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"
