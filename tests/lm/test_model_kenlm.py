"""NgramModel against KenLM's own query code (the ``kenlm`` Python module) on the same ARPA files.

The ARPA files are estimated here, from generated text, with a small back-off estimator written
for this test (absolute discounting, Katz back-off weights that normalise every context), so
the models are valid and varied: orders 2 to 5, the highest order pruned of singletons, and a
variant with middle-order n-grams removed, which both loaders must fill in. Held-out sentences
from another seed, with unknown words mixed in, are scored by both.
"""

import math
import random
from collections import Counter, defaultdict

import kenlm
import numpy as np
import pytest

from speechdecode.lm.model import NgramModel
from speechdecode.testing import SentenceGenerator

DISCOUNT = 0.5
OOV_WORDS = ["zebra", "quux", "<UNK>", "Cat"]


def estimate(sentences: list[str], order: int) -> list[dict[tuple[str, ...], list[float]]]:
    """Per order, n-gram -> [log10 p, log10 backoff] of an absolute-discount back-off model.

    Unigrams: add-one over the vocabulary plus <unk> and </s>. Order n > 1: p(w | c) =
    (count(c w) - D) / count(c .); the held-back mass D * |{w}| / count(c .) goes to the lower
    order through bo(c) = held-back / (1 - sum over seen w of p_lower(w | c minus its first word)).
    Half the highest-order singletons (order >= 3) are dropped, their mass given to the back-off.
    """
    rng = random.Random(order)
    counts = [Counter() for _ in range(order)]
    for sentence in sentences:
        words = ["<s>", *sentence.split(), "</s>"]
        for n in range(1, order + 1):
            for i in range(len(words) - n + 1):
                counts[n - 1][tuple(words[i : i + n])] += 1
    model: list[dict[tuple[str, ...], list[float]]] = [{} for _ in range(order)]
    vocab = [*sorted({g[0] for g in counts[0]} - {"<s>"}), "<unk>"]
    total = sum(c for g, c in counts[0].items() if g != ("<s>",))
    for w in vocab:
        model[0][(w,)] = [math.log10((counts[0][(w,)] + 1) / (total + len(vocab))), 0.0]
    model[0][("<s>",)] = [0.0, 0.0]
    for n in range(2, order + 1):
        followers: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
        for gram, c in counts[n - 1].items():
            followers[gram[:-1]][gram[-1]] = c
        for context, seen in followers.items():
            context_total = sum(seen.values())
            kept = {w: c for w, c in seen.items() if n < 3 or n < order or c > 1 or rng.random() < 0.5}
            if not kept:
                continue
            held_back = 1.0 - sum((c - DISCOUNT) / context_total for c in kept.values())
            lower = sum(10 ** backoff_log10prob(model, context[1:], w) for w in kept)
            for w, c in kept.items():
                model[n - 1][(*context, w)] = [math.log10((c - DISCOUNT) / context_total), 0.0]
            model[n - 2][context][1] = math.log10(held_back / (1.0 - lower))
    return model


def backoff_log10prob(model, context: tuple[str, ...], word: str) -> float:
    """The estimator's own back-off query (float64), used only to normalise the weights."""
    for start in range(len(context) + 1):
        gram = (*context[start:], word)
        if gram in model[len(gram) - 1]:
            backoffs = sum(model[len(context) - j - 1].get(context[j:], [0.0, 0.0])[1] for j in range(start))
            return model[len(gram) - 1][gram][0] + backoffs
    raise AssertionError(f"{word!r} is not a unigram")


def write_arpa(path, model) -> None:
    order = len(model)
    with open(path, "w", encoding="utf-8") as out:
        out.write("\\data\\\n")
        for n in range(1, order + 1):
            out.write(f"ngram {n}={len(model[n - 1])}\n")
        for n in range(1, order + 1):
            out.write(f"\n\\{n}-grams:\n")
            for gram, (prob, backoff) in model[n - 1].items():
                line = f"{prob:.7g}\t{' '.join(gram)}"
                if n < order and backoff != 0.0:
                    line += f"\t{backoff:.7g}"
                out.write(line + "\n")
        out.write("\n\\end\\\n")


def held_out(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    sentences = []
    for sentence in SentenceGenerator(seed=seed).sentences(count):
        words = sentence.split()
        for _ in range(rng.randint(0, 2)):
            words.insert(rng.randint(0, len(words)), rng.choice(OOV_WORDS))
        sentences.append(" ".join(words))
    return sentences


@pytest.fixture(scope="module")
def training():
    return SentenceGenerator(seed=100).sentences(3000)


@pytest.fixture(scope="module")
def sentences(training):
    """150 new sentences and 50 training ones (long matches), unknown words mixed into both."""
    rng = random.Random(300)
    seen = [" ".join(w if rng.random() > 0.05 else rng.choice(OOV_WORDS) for w in s.split()) for s in training[:50]]
    return held_out(seed=200, count=150) + seen


def load_both(path):
    return NgramModel.from_arpa(path), kenlm.Model(str(path))


def assert_same_scores(ours, theirs, sentences):
    for sentence in sentences:
        for bos, eos in [(True, True), (True, False), (False, True), (False, False)]:
            got = ours.full_scores(sentence, bos=bos, eos=eos)
            want = list(theirs.full_scores(sentence, bos=bos, eos=eos))
            assert [(s.ngram_length, s.oov) for s in got] == [(n, oov) for _, n, oov in want], sentence
            assert np.allclose([s.log10_prob for s in got], [p for p, _, _ in want], rtol=0, atol=1e-4), sentence
            # The same float32 arithmetic in the same order: equal to the last bit, in fact.
            assert [s.log10_prob for s in got] == [p for p, _, _ in want], sentence
            assert ours.score(sentence, bos=bos, eos=eos) == pytest.approx(
                theirs.score(sentence, bos=bos, eos=eos), abs=1e-4
            )
        assert ours.perplexity(sentence) == pytest.approx(theirs.perplexity(sentence), rel=1e-5)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_scores_equal_kenlm(tmp_path, training, sentences, order):
    path = tmp_path / f"o{order}.arpa"
    model = estimate(training, order)
    write_arpa(path, model)
    ours, theirs = load_both(path)
    assert ours.order == order and ours.counts == tuple(len(m) for m in model)
    assert_same_scores(ours, theirs, sentences)
    assert np.allclose(ours.score_batch(sentences), [theirs.score(s) for s in sentences], rtol=0, atol=1e-4)
    assert ours.perplexity_of(sentences) == pytest.approx(
        10 ** (-sum(theirs.score(s) for s in sentences) / sum(len(s.split()) + 1 for s in sentences)), rel=1e-5
    )


@pytest.mark.parametrize("order", [3, 5])
def test_state_api_equals_kenlm_and_merges_the_same_histories(tmp_path, training, sentences, order):
    path = tmp_path / f"o{order}.arpa"
    write_arpa(path, estimate(training, order))
    ours, theirs = load_both(path)
    our_states, their_states = [], []
    for sentence in sentences:
        ours_state, theirs_state = ours.begin_state(), kenlm.State()
        theirs.BeginSentenceWrite(theirs_state)
        for word in [*sentence.split(), "</s>"]:
            out = kenlm.State()
            want = theirs.BaseScore(theirs_state, word, out)
            got, ours_state = ours.score_word(ours_state, ours.word_id(word))
            assert got == pytest.approx(want, abs=1e-4)
            theirs_state = out
            our_states.append(ours_state)
            their_states.append(theirs_state)
    # Right-minimised states: two histories share our state exactly when they share KenLM's.
    # (kenlm.State is equality-comparable; pairs are checked within windows to stay quadratic-free.)
    for i in range(0, len(our_states) - 50, 7):
        for j in range(i + 1, i + 50):
            assert (our_states[i] == our_states[j]) == (their_states[i] == their_states[j])
    distinct = len(set(our_states))
    assert 1 < distinct < len(our_states)


def test_missing_suffixes_filled_in_like_kenlm(tmp_path, training, sentences):
    """Remove 3-grams that are suffixes of 4-grams but contexts of none: both loaders re-create them."""
    model = estimate(training, 4)
    contexts = {gram[:-1] for gram in model[3]}
    suffixes = {gram[1:] for gram in model[3]}
    rng = random.Random(7)
    removable = sorted(g for g in model[2] if g in suffixes and g not in contexts)
    removed = rng.sample(removable, len(removable) // 10)
    assert len(removed) >= 5
    for gram in removed:
        del model[2][gram]
    path = tmp_path / "pruned.arpa"
    write_arpa(path, model)
    ours, theirs = load_both(path)
    # Sentences that run through the removed 3-grams, and the held-out ones.
    gone = set(removed)
    through = [" ".join(w for w in gram if w not in ("<s>", "</s>")) for gram in removed]
    through += [" ".join(w for w in gram if w not in ("<s>", "</s>")) for gram in model[3] if gram[1:] in gone]
    assert_same_scores(ours, theirs, through + sentences[:50])
