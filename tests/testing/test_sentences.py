import gzip
import math
import random
import re
from collections import Counter
from itertools import pairwise

import pytest

from speechdecode._io import open_text
from speechdecode.errors import InvalidArgumentError
from speechdecode.testing import MAX_WORDS, MIN_WORDS, SentenceGenerator, write_corpus

# Written here from English, not read from the generator.
DETERMINERS = {"the", "a", "an", "this", "that", "every", "my", "their"}
PREPOSITIONS = {"in", "on", "under", "with", "to", "from"}
CONJUNCTIONS = {"and", "but", "because", "while"}
VOWELS = set("aeiou")


@pytest.fixture(scope="module")
def corpus():
    return SentenceGenerator(seed=0).sentences(5000)


def test_same_seed_same_sentences_and_prefix_stable():
    a = SentenceGenerator(seed=7).sentences(200)
    assert a == SentenceGenerator(seed=7).sentences(200)
    assert SentenceGenerator(seed=7).sentences(50) == a[:50]


def test_different_seeds_differ():
    a = SentenceGenerator(seed=1).sentences(100)
    b = SentenceGenerator(seed=2).sentences(100)
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 90


def test_vocabulary_is_sorted_lowercase_words_of_plausible_size():
    vocab = SentenceGenerator().vocabulary
    assert vocab == sorted(set(vocab))
    assert 150 <= len(vocab) <= 300
    assert all(re.fullmatch(r"[a-z']+", w) for w in vocab)
    assert DETERMINERS | PREPOSITIONS | CONJUNCTIONS <= set(vocab)


def test_every_word_is_in_vocabulary_and_lengths_in_range(corpus):
    vocab = set(SentenceGenerator().vocabulary)
    for sentence in corpus:
        words = sentence.split(" ")
        assert all(words), f"empty word (double space?) in {sentence!r}"
        assert set(words) <= vocab, sentence
        assert MIN_WORDS <= len(words) <= MAX_WORDS, sentence
    assert (MIN_WORDS, MAX_WORDS) == (3, 20)


def test_sentences_vary_in_length_and_content(corpus):
    lengths = Counter(len(s.split()) for s in corpus)
    assert len(lengths) >= 10
    assert len(set(corpus)) > 0.9 * len(corpus)


def test_vocabulary_coverage(corpus):
    vocab = SentenceGenerator().vocabulary
    seen = {w for s in corpus for w in s.split()}
    assert len(seen & set(vocab)) > 0.8 * len(vocab)


def test_no_function_word_ends_a_sentence(corpus):
    final = Counter(s.split()[-1] for s in corpus)
    assert not (DETERMINERS | PREPOSITIONS | CONJUNCTIONS) & set(final)


def test_articles_agree_with_the_next_word(corpus):
    pairs = [(w, nxt) for s in corpus for w, nxt in pairwise(s.split()) if w in ("a", "an")]
    assert sum(w == "an" for w, _ in pairs) > 20
    for w, nxt in pairs:
        assert (nxt[0] in VOWELS) == (w == "an"), (w, nxt)


def test_determiners_are_followed_by_few_distinct_word_kinds(corpus):
    # After "the" come adjectives and nouns: never a determiner, preposition or conjunction.
    followers = {nxt for s in corpus for w, nxt in pairwise(s.split()) if w == "the"}
    assert followers
    assert not followers & (DETERMINERS | PREPOSITIONS | CONJUNCTIONS)


def test_bigram_structure_lowers_entropy(corpus):
    # Shuffling this corpus's words gives a ratio of about 0.85 (finite-sample bias); the grammar gives about 0.68.
    # A bag of words would have H(w_i | w_{i-1}) close to H(w_i); a grammar makes it much smaller.
    unigrams, bigrams, history = Counter(), Counter(), Counter()
    for s in corpus:
        words = ["<s>", *s.split()]
        unigrams.update(words[1:])
        bigrams.update(pairwise(words))
        history.update(words[:-1])
    n = sum(unigrams.values())
    h_unigram = -sum(c / n * math.log2(c / n) for c in unigrams.values())
    h_bigram = -sum(c / n * math.log2(c / history[prev]) for (prev, _), c in bigrams.items())
    assert h_bigram < 0.75 * h_unigram


def test_sentence_draws_from_the_given_rng_only():
    gen = SentenceGenerator(seed=123)
    rng_a, rng_b = random.Random(5), random.Random(5)
    first = [gen.sentence(rng_a) for _ in range(20)]
    assert first == [gen.sentence(rng_b) for _ in range(20)]
    assert first == SentenceGenerator(seed=5).sentences(20)
    assert first != [gen.sentence(rng_a) for _ in range(20)]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed_and_count(bad):
    with pytest.raises(InvalidArgumentError, match="seed"):
        SentenceGenerator(seed=bad)
    with pytest.raises(InvalidArgumentError, match="n: expected"):
        SentenceGenerator().sentences(bad)


@pytest.mark.parametrize("name", ["corpus.txt", "corpus.txt.gz"])
def test_write_corpus_round_trip(tmp_path, name):
    sentences = SentenceGenerator(seed=3).sentences(100)
    path = tmp_path / "sub" / name
    with pytest.raises(FileNotFoundError, match="does not exist"):  # directories are never made for you
        write_corpus(path, sentences)
    path.parent.mkdir()
    write_corpus(path, sentences)
    with open_text(path) as f:
        assert f.read().split("\n") == [*sentences, ""]
    if name.endswith(".gz"):
        with open(path, "rb") as f:
            assert f.read(2) == b"\x1f\x8b"
        assert gzip.decompress(path.read_bytes()).count(b"\n") == 100


def test_write_corpus_rejects_line_breaks_and_writes_nothing(tmp_path):
    path = tmp_path / "corpus.txt"
    with pytest.raises(InvalidArgumentError, match=r"sentences\[1\]"):
        write_corpus(path, ["a dog ran", "two\nlines"])
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
