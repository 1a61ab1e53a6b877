"""lm.generate: greedy, beam and sampling against brute force on small models."""

import itertools
import math
from pathlib import Path

import pytest

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import write_arpa
from speechdecode.lm.counts import count_sentences
from speechdecode.lm.estimate import estimate
from speechdecode.lm.generate import generate
from speechdecode.lm.model import NgramModel

DATA = Path(__file__).parent.parent / "data" / "lmplz"


@pytest.fixture(scope="module")
def kjv():
    return NgramModel.from_arpa(DATA / "kjv400.o3.arpa.gz")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-word-vocabulary bigram model: every sentence can be enumerated."""
    counts = count_sentences(["a b", "a b b", "b a", "a", "b b a c", "c"], 2)
    path = tmp_path_factory.mktemp("tiny") / "tiny.arpa"
    write_arpa(path, estimate(counts, "witten-bell"))
    return NgramModel.from_arpa(path)


def chain_score(model, words, eos=True):
    state, total = model.begin_state(), 0.0
    for w in [*words, "</s>"] if eos else words:
        score, state = model.score_word(state, w)
        total += score
    return total


def test_greedy_takes_the_argmax_word_each_step(kjv):
    out = generate(kjv, "and the", strategy="greedy", max_words=12)[0]
    state = kjv.begin_state()
    for w in ["and", "the"]:
        state = kjv.score_word(state, w)[1]
    for w in [*out.words, "</s>"] if out.finished else out.words:
        scores = {v: kjv.score_word(state, i)[0] for i, v in enumerate(kjv.vocab) if v not in ("<s>", "<unk>")}
        assert max(scores, key=scores.get) == w
        state = kjv.score_word(state, w)[1]
    continuation = chain_score(kjv, ["and", "the", *out.words]) - chain_score(kjv, ["and", "the"], eos=False)
    assert math.isclose(out.log10_prob, continuation, abs_tol=1e-4)


def test_beam_finds_the_most_probable_sentences(tiny):
    sentences = [list(s) for n in range(0, 6) for s in itertools.product(["a", "b", "c"], repeat=n)]
    best = sorted(sentences, key=lambda s: chain_score(tiny, s), reverse=True)[:3]
    out = generate(tiny, strategy="beam", beam=16, num=3, max_words=6)
    assert [g.words for g in out] == best
    assert all(g.finished for g in out)
    for g in out:
        assert math.isclose(g.log10_prob, chain_score(tiny, g.words), abs_tol=1e-5)


def test_sampling_follows_the_distribution(tiny):
    draws = generate(tiny, strategy="sample", num=4000, max_words=1, seed=3)
    first = [g.words[0] if g.words else "</s>" for g in draws]
    for word in ("a", "b", "c", "</s>"):
        p = 10 ** tiny.score_word(tiny.begin_state(), word)[0]
        assert abs(first.count(word) / len(first) - p) < 4 * math.sqrt(p * (1 - p) / len(first)) + 1e-3


def test_sampling_is_seeded_and_top_k_1_is_greedy(kjv):
    a = generate(kjv, "the", num=3, seed=7)
    assert a == generate(kjv, "the", num=3, seed=7)
    assert a != generate(kjv, "the", num=3, seed=8)
    greedy = generate(kjv, "the", strategy="greedy")[0]
    assert generate(kjv, "the", top_k=1, seed=1)[0].words == greedy.words
    assert generate(kjv, "the", temperature=1e-4, seed=2)[0].words == greedy.words


def test_never_generates_bos_or_unk(kjv):
    for g in generate(kjv, num=50, seed=0, temperature=3.0):
        assert "<s>" not in g.words and "<unk>" not in g.words


@pytest.mark.parametrize(
    "options, argument",
    [({"strategy": "top"}, "strategy"), ({"num": 0}, "num"), ({"temperature": 0}, "temperature"),
     ({"top_k": 0}, "top_k"), ({"max_words": -1}, "max_words"), ({"beam": 0}, "beam")],
)  # fmt: skip
def test_bad_options(kjv, options, argument):
    with pytest.raises(InvalidArgumentError, match=f"^{argument}: expected"):
        generate(kjv, **options)


def test_unigram_model_generates(tmp_path):
    path = tmp_path / "u.arpa"
    text = (DATA / "kjv400.txt").read_text().splitlines()
    write_arpa(path, estimate(count_sentences(text, 1), "mkn"))
    model = NgramModel.from_arpa(path)
    unigram = {w: model.score_word((), w)[0] for w in model.vocab if w not in ("<s>", "<unk>")}
    top = max(unigram, key=unigram.get)  # "and": more probable than </s> in this text
    assert top == "and"
    out = generate(model, strategy="greedy", max_words=3)[0]
    assert out.words == ["and"] * 3 and not out.finished
    assert math.isclose(out.log10_prob, 3 * unigram["and"], abs_tol=1e-5)
