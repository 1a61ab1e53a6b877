"""A seeded generator of English-looking sentences, for n-gram LM tests, demos and benchmarks.

No corpus can be downloaded where this project is built and tested, so the LM code is exercised on
text from a small hand-written grammar instead: about 300 lowercase words (letters and apostrophes
only) in word classes, and a dozen weighted sentence templates (statements, questions, modal and
negated forms, "there was ...", optional subordinate clauses). The output has the structure an
n-gram model should find: determiners are followed by adjectives or nouns, "a"/"an" agree with the
next word, verbs take objects of the right shape, and frequent words follow a Zipf-like profile
within each class.
"""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Iterable, Sequence

from speechdecode._io import atomic_write
from speechdecode.errors import InvalidArgumentError

__all__ = ["MAX_WORDS", "MIN_WORDS", "SentenceGenerator", "write_corpus"]

MIN_WORDS = 3
MAX_WORDS = 20

# Words are listed most frequent first; _Choice weights rank r by 1 / (r + 5).
_DETERMINERS = "the a this that my your his our their every each some one no another".split()
_NOUNS = """
    dog man woman child cat house car friend teacher book door table garden city road river letter window doctor
    student bird horse farmer king queen village school market kitchen chair picture song story apple bread cake ball
    box key boat train ship bag clock forest mountain lake island egg orange umbrella owl elephant idea uncle artist
    morning night baker bridge
""".split()
_ADJECTIVES = """
    big small old young little new red happy good blue green sad angry quiet loud tall warm cold dark bright clever
    tired hungry busy empty heavy strange beautiful famous brave kind lazy early friendly important interesting
""".split()
# base/past; base forms appear after auxiliaries and "did".
_TRANSITIVE = [
    tuple(pair.split("/"))
    for pair in """
    see/saw find/found take/took bring/brought make/made buy/bought open/opened watch/watched help/helped
    visit/visited call/called carry/carried follow/followed like/liked want/wanted build/built write/wrote
    catch/caught eat/ate forget/forgot remember/remembered meet/met chase/chased fix/fixed lose/lost hear/heard
    know/knew love/loved
""".split()
]
_INTRANSITIVE = [
    tuple(pair.split("/"))
    for pair in """
    go/went walk/walked sleep/slept run/ran wait/waited sit/sat sing/sang laugh/laughed cry/cried swim/swam
    dance/danced arrive/arrived smile/smiled jump/jumped fall/fell stay/stayed work/worked travel/traveled
    listen/listened rest/rested
""".split()
]
_ADVERBS = (
    "quickly slowly quietly again together suddenly carefully happily loudly finally badly gently outside".split()
)
_TIMES = "yesterday today tonight later then".split()
_PREPOSITIONS = "in on with to near from under behind into across over through around at by for".split()
_NAMES = (
    "anna tom maria ben emma jack clara david felix grace henry iris kate leo nina oscar paul rosa sam vera".split()
)
# subject/object/verb "be" in the past ("was" or "were")
_PRONOUNS = [
    tuple(triple.split("/"))
    for triple in "he/him/was she/her/was they/them/were i/me/was we/us/were you/you/were it/it/was".split()
]
_MODALS = "will didn't can can't won't couldn't".split()
_CONJUNCTIONS = "and but because when while so before after".split()
_WH_TRANSITIVE = "what who".split()
_WH_INTRANSITIVE = "where why when how".split()
_VOWELS = frozenset("aeiou")


class _Choice:
    """A fixed list of words drawn with Zipf-like weights 1 / (rank + 5)."""

    def __init__(self, items: Sequence):
        self.items = tuple(items)
        total = 0.0
        cum = []
        for rank in range(len(self.items)):
            total += 1.0 / (rank + 5)
            cum.append(total)
        self.cum = cum

    def __call__(self, rng: random.Random):
        return rng.choices(self.items, cum_weights=self.cum)[0]


_det = _Choice(_DETERMINERS)
_noun = _Choice(_NOUNS)
_adj = _Choice(_ADJECTIVES)
_vt = _Choice(_TRANSITIVE)
_vi = _Choice(_INTRANSITIVE)
_adv = _Choice(_ADVERBS)
_time = _Choice(_TIMES)
_prep = _Choice(_PREPOSITIONS)
_name = _Choice(_NAMES)
_pronoun = _Choice(_PRONOUNS)
_modal = _Choice(_MODALS)
_conj = _Choice(_CONJUNCTIONS)


def _noun_phrase(rng: random.Random, max_adjectives: int = 2) -> list[str]:
    words = [_det(rng)]
    n_adj = rng.choices((0, 1, 2)[: max_adjectives + 1], weights=(5, 3, 1)[: max_adjectives + 1])[0]
    first = _adj(rng) if n_adj else None
    if n_adj:
        words.append(first)
    if n_adj == 2:
        second = _adj(rng)
        if second != first:
            words.append(second)
    words.append(_noun(rng))
    return words


def _subject(rng: random.Random, short: bool = False) -> tuple[list[str], bool]:
    """A subject noun phrase and whether it takes "were" rather than "was"."""
    r = rng.random()
    if r < 0.2:
        return [_name(rng)], False
    if r < 0.4:
        subj, _, be = _pronoun(rng)
        return [subj], be == "were"
    return _noun_phrase(rng, 1 if short else 2), False


def _object(rng: random.Random, short: bool = False) -> list[str]:
    r = rng.random()
    if r < 0.15:
        return [_name(rng)]
    if r < 0.3:
        return [_pronoun(rng)[1]]
    words = _noun_phrase(rng, 1 if short else 2)
    if not short and r > 0.85:
        words += [_prep(rng), *_noun_phrase(rng, 1)]
    return words


def _tail(rng: random.Random, probability: float = 0.3) -> list[str]:
    r = rng.random()
    if r < probability / 2:
        return [_adv(rng)]
    if r < probability:
        return [_time(rng)]
    return []


def _intransitive_complement(rng: random.Random) -> list[str]:
    """What follows an intransitive verb; never empty, so every sentence has at least three words."""
    r = rng.random()
    if r < 0.4:
        return [_adv(rng)]
    if r < 0.6:
        return [_time(rng)]
    return [_prep(rng), *_object(rng, short=True)]


def _be(plural: bool, negated: bool) -> str:
    return ("weren't" if negated else "were") if plural else ("wasn't" if negated else "was")


def _transitive(rng):
    subj, _ = _subject(rng)
    return [*subj, _vt(rng)[1], *_object(rng), *_tail(rng)]


def _intransitive(rng):
    subj, _ = _subject(rng)
    return [*subj, _vi(rng)[1], *_intransitive_complement(rng)]


def _modal_transitive(rng):
    subj, _ = _subject(rng)
    return [*subj, _modal(rng), _vt(rng)[0], *_object(rng), *_tail(rng)]


def _modal_intransitive(rng):
    subj, _ = _subject(rng)
    return [*subj, _modal(rng), _vi(rng)[0], *_intransitive_complement(rng)]


def _copula_adjective(rng):
    subj, plural = _subject(rng)
    return [*subj, _be(plural, rng.random() < 0.2), _adj(rng), *_tail(rng, 0.2)]


def _copula_place(rng):
    subj, plural = _subject(rng)
    return [*subj, _be(plural, False), _prep(rng), *_object(rng, short=True)]


def _yes_no_question(rng):
    subj, _ = _subject(rng)
    return ["did", *subj, _vt(rng)[0], *_object(rng)]


def _be_question(rng):
    subj, plural = _subject(rng)
    return [_be(plural, False), *subj, _adj(rng)]


def _who_question(rng):
    return ["who", _vt(rng)[1], *_object(rng), *_tail(rng)]


def _what_question(rng):
    subj, _ = _subject(rng)
    return [rng.choice(_WH_TRANSITIVE), "did", *subj, _vt(rng)[0]]


def _where_question(rng):
    subj, _ = _subject(rng)
    return [rng.choice(_WH_INTRANSITIVE), "did", *subj, _vi(rng)[0], *_tail(rng, 0.2)]


def _existential(rng):
    return ["there", "was", *_noun_phrase(rng, 1), _prep(rng), *_object(rng, short=True)]


def _its(rng):
    return ["it's", _det(rng), _adj(rng), _noun(rng)]


# (weight, template, may take a subordinate clause)
_MAIN_TEMPLATES = (
    (5.0, _transitive, True),
    (3.0, _intransitive, True),
    (2.0, _modal_transitive, True),
    (1.0, _modal_intransitive, True),
    (1.5, _copula_adjective, True),
    (1.0, _copula_place, True),
    (0.7, _existential, True),
    (1.0, _yes_no_question, False),
    (0.5, _be_question, False),
    (0.7, _who_question, False),
    (0.7, _what_question, False),
    (0.7, _where_question, False),
    (0.3, _its, False),
)
_CLAUSE_PROBABILITY = 0.3


def _simple_clause(rng):
    r = rng.random()
    if r < 0.5:
        subj, _ = _subject(rng, short=True)
        return [*subj, _vt(rng)[1], *_object(rng, short=True)]
    if r < 0.8:
        subj, _ = _subject(rng, short=True)
        return [*subj, _vi(rng)[1], *_intransitive_complement(rng)]
    subj, plural = _subject(rng, short=True)
    return [*subj, _be(plural, False), _adj(rng)]


def _fix_articles(words: list[str]) -> list[str]:
    for i in range(len(words) - 1):
        if words[i] in ("a", "an"):
            words[i] = "an" if words[i + 1][0] in _VOWELS else "a"
    return words


def _word_classes() -> dict[str, tuple[str, ...]]:
    classes = {
        "determiner": (*_DETERMINERS, "an"),
        "noun": _NOUNS,
        "adjective": _ADJECTIVES,
        "verb": tuple(w for pair in (*_TRANSITIVE, *_INTRANSITIVE) for w in pair),
        "adverb": (*_ADVERBS, *_TIMES),
        "preposition": _PREPOSITIONS,
        "name": _NAMES,
        "pronoun": tuple(w for subj, obj, _ in _PRONOUNS for w in (subj, obj)),
        "auxiliary": (*_MODALS, "did", "was", "were", "wasn't", "weren't"),
        "conjunction": _CONJUNCTIONS,
        "question": (*_WH_TRANSITIVE, *_WH_INTRANSITIVE),
        "other": ("it's", "there"),
    }
    return {name: tuple(sorted(set(words))) for name, words in classes.items()}


class SentenceGenerator:
    """Seeded English-looking sentences from a small template grammar (see the module docstring).

    Args:
        seed: any non-negative int. The same seed gives the same sentences on every machine and
            Python version this package supports (it drives a :class:`random.Random`).

    Attributes:
        vocabulary: sorted list of every word the generator can emit (about 300 words, lowercase
            letters and apostrophes only, e.g. ``"didn't"``, ``"it's"``).
        word_classes: class name -> sorted tuple of its words ("determiner", "noun", "adjective",
            "verb", "adverb", "preposition", "name", "pronoun", "auxiliary", "conjunction",
            "question", "other"). A few words belong to two classes ("when", "you", "it").

    Sentences have :data:`MIN_WORDS` to :data:`MAX_WORDS` words, lowercase, separated by single
    spaces, with no punctuation.

    Example:
        >>> gen = SentenceGenerator(seed=1)
        >>> a = gen.sentences(3)
        >>> a == SentenceGenerator(seed=1).sentences(3) and a == gen.sentences(5)[:3]
        True
        >>> all(3 <= len(s.split()) <= 20 for s in a)
        True
    """

    def __init__(self, seed: int = 0):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidArgumentError("seed", "a non-negative int", repr(seed))
        self.seed = seed
        self.word_classes = _word_classes()
        self.vocabulary = sorted({w for words in self.word_classes.values() for w in words})

    def sentence(self, rng: random.Random) -> str:
        """One sentence drawn with ``rng`` (a :class:`random.Random`); advances ``rng``."""
        _, template, clause_ok = rng.choices(_MAIN_TEMPLATES, weights=[t[0] for t in _MAIN_TEMPLATES])[0]
        words = template(rng)
        if clause_ok and rng.random() < _CLAUSE_PROBABILITY:
            clause = [_conj(rng), *_simple_clause(rng)]
            if len(words) + len(clause) <= MAX_WORDS:
                words += clause
        return " ".join(_fix_articles(words))

    def sentences(self, n: int) -> list[str]:
        """The first ``n`` sentences of this seed's stream.

        Every call starts the stream again (it is ``[self.sentence(rng) for _ in range(n)]`` with
        ``rng = random.Random(self.seed)``), so ``sentences(10)`` is a prefix of ``sentences(100)``
        and repeated calls return equal lists. For another stream use another seed.

        Raises:
            InvalidArgumentError: ``n`` is not a non-negative int.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgumentError("n", "a non-negative int", repr(n))
        rng = random.Random(self.seed)
        return [self.sentence(rng) for _ in range(n)]


def write_corpus(path: str | os.PathLike, sentences: Iterable[str]) -> None:
    """Write one sentence per line (UTF-8, ``\\n`` endings), atomically; ``.gz`` paths are gzipped.

    Args:
        path: the output file; it appears complete or not at all.
        sentences: strings without line breaks.

    Raises:
        InvalidArgumentError: a sentence contains a line break (names its index); nothing is written.

    Example:
        >>> write_corpus("corpus.txt.gz", SentenceGenerator(seed=0).sentences(1000))  # doctest: +SKIP
    """
    lines = []
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or "\n" in sentence or "\r" in sentence:
            raise InvalidArgumentError(f"sentences[{i}]", "a str without line breaks", repr(sentence))
        lines.append(sentence + "\n")
    text = "".join(lines)
    if os.fspath(path).endswith(".gz"):
        with atomic_write(path, "wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as gz:
            gz.write(text.encode("utf-8"))
    else:
        with atomic_write(path, "w") as handle:
            handle.write(text)
