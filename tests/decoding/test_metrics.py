"""edit_distance, word_error_rate, char_error_rate: hand-checked cases, metric axioms, a brute-force oracle."""

import functools
import random

import numpy as np
import pytest

from speechdecode.decoding.metrics import char_error_rate, edit_distance, word_error_rate
from speechdecode.errors import InvalidArgumentError


def brute_force(a, b) -> int:
    """The textbook recursion, memoized; only for short inputs."""
    a, b = tuple(a), tuple(b)

    @functools.cache
    def d(i, j):
        if i == 0:
            return j
        if j == 0:
            return i
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        ("", "", 0),
        ("abc", "", 3),  # three deletions
        ("", "ab", 2),  # two insertions
        ("abc", "abc", 0),
        ("kitten", "sitting", 3),  # k->s, e->i, insert g
        ("flaw", "lawn", 2),  # delete f, insert n
        ("abcdef", "azced", 3),  # b->z, delete d, f->d
        ("aaaa", "aa", 2),  # two deletions
        ("ab", "ba", 2),  # no transpositions: two substitutions
        ("intention", "execution", 5),  # delete i, n->e, t->x, insert c, n->u
        (["the", "cat", "sat"], ["the", "bat", "sat", "down"], 2),  # cat->bat, insert down
        ([1, 2, 3, 4], [1, 3, 4], 1),  # delete 2
    ],
)
def test_known_cases(ref, hyp, expected):
    assert edit_distance(ref, hyp) == expected
    assert brute_force(ref, hyp) == expected


def test_numpy_arrays_and_generators():
    assert edit_distance(np.array([1, 2, 3]), np.array([1, 5, 3, 3])) == 2
    assert edit_distance((c for c in "abc"), iter("abd")) == 1


def random_seq(rng: random.Random, max_len: int, alphabet: str = "abc") -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len)))


def test_agrees_with_brute_force_on_short_random_sequences():
    rng = random.Random(0)
    for _ in range(500):
        a, b = random_seq(rng, 8), random_seq(rng, 8)
        assert edit_distance(a, b) == brute_force(a, b), (a, b)


def test_metric_axioms_on_random_strings():
    rng = random.Random(1)
    for _ in range(300):
        a, b, c = (random_seq(rng, 30, "abcd") for _ in range(3))
        d_ab = edit_distance(a, b)
        assert d_ab == edit_distance(b, a)
        assert (d_ab == 0) == (a == b)
        assert abs(len(a) - len(b)) <= d_ab <= max(len(a), len(b))
        assert edit_distance(a, c) <= d_ab + edit_distance(b, c)


def test_distance_counts_planted_edits():
    # Substituting k distinct positions of a string with a letter outside its alphabet costs exactly k.
    rng = random.Random(2)
    for _ in range(100):
        a = random_seq(rng, 40, "ab") or "a"
        k = rng.randint(0, len(a))
        positions = set(rng.sample(range(len(a)), k))
        b = "".join("z" if i in positions else ch for i, ch in enumerate(a))
        assert edit_distance(a, b) == k


def test_word_error_rate():
    refs = ["the cat sat on the mat", "hello world", "a b c"]
    hyps = ["the cat sat on mat", "hello  big world", "x y z w"]
    # edits: 1 deletion + 1 insertion + (3 substitutions + 1 insertion) = 6; reference words 6 + 2 + 3 = 11
    assert word_error_rate(refs, hyps) == pytest.approx(6 / 11)
    assert word_error_rate(["a b"], ["a b"]) == 0.0
    assert word_error_rate(["a"], ["b c d"]) == 3.0
    assert word_error_rate(["", "a b"], ["x", "a b"]) == 0.5  # an empty reference still counts its insertions


def test_char_error_rate():
    # "abc d" vs "abd d" after whitespace normalization: one substitution over 5 characters.
    assert char_error_rate(["abc  d "], [" abd d"]) == pytest.approx(1 / 5)
    # "hi" -> "hi!" one insertion; "yo" -> "" two deletions; 4 reference characters.
    assert char_error_rate(["hi", "yo"], ["hi!", ""]) == pytest.approx(3 / 4)
    assert char_error_rate(["ab cd"], ["abcd"]) == pytest.approx(1 / 5)  # the space counts


@pytest.mark.parametrize("rate", [word_error_rate, char_error_rate])
def test_rates_reject_bad_input(rate):
    with pytest.raises(InvalidArgumentError, match="hyps: expected 2 hypotheses"):
        rate(["a", "b"], ["a"])
    with pytest.raises(InvalidArgumentError, match="refs: expected at least one reference"):
        rate(["", "  "], ["a", "b"])
    with pytest.raises(InvalidArgumentError, match=r"refs.*single str"):
        rate("abc", "abc")
    with pytest.raises(InvalidArgumentError, match=r"hyps\[1\]"):
        rate(["a", "b"], ["a", None])
