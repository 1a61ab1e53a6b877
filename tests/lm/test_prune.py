"""Relative-entropy pruning (Stolcke 1998), checked against a brute-force relative entropy.

The brute force removes one n-gram at a time from the full conditional distribution of its
context (``conditional_distribution`` from ``_common``, not this code's), renormalizes by the
back-off rule and sums p log(p / p') over the vocabulary.
"""

import doctest
import math
import pathlib

import numpy as np
import pytest

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm import prune as prune_module
from speechdecode.lm.arpa import ArpaModel, read_arpa
from speechdecode.lm.counts import count_sentences
from speechdecode.lm.methods._common import conditional_distribution
from speechdecode.lm.methods.jelinek_mercer import jelinek_mercer
from speechdecode.lm.methods.katz import katz
from speechdecode.lm.methods.mle import mle
from speechdecode.lm.methods.witten_bell import witten_bell
from speechdecode.lm.prune import prune_entropy
from speechdecode.testing import SentenceGenerator

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "lmplz"
KJV = (DATA / "kjv400.txt").read_text().splitlines()


def rows_of(model, n):
    return {tuple(r) for r in model.ngrams[n - 1].tolist()}


def history_prob(model, history):
    """p(h) by the chain rule; a first <s> counts as p(</s>) (a sentence starts where one ends)."""
    bos, eos = model.words.index("<s>"), model.words.index("</s>")
    first = eos if history[0] == bos else history[0]
    prob = conditional_distribution(model, [])[first]
    for k in range(1, len(history)):
        prob *= conditional_distribution(model, history[:k])[history[k]]
    return prob


def stolcke_ratios(model, n):
    """10**D - 1 for each n-gram of order n: D = p(h) KL(p(.|h) || p(.|h) without the n-gram)."""
    ratios = np.zeros(len(model.ngrams[n - 1]))
    rows = model.ngrams[n - 1]
    for context in {r[:-1] for r in rows_of(model, n)}:
        members = np.flatnonzero(np.all(rows[:, :-1] == context, axis=1))
        dist = conditional_distribution(model, list(context))
        lower = conditional_distribution(model, list(context[1:]))
        weight = history_prob(model, list(context))
        for i in members:
            others = rows[members, -1][rows[members, -1] != rows[i, -1]]
            new = lower * (1 - dist[others].sum()) / (1 - lower[others].sum())
            new[others] = dist[others]
            seen = dist > 0
            kl = float(np.sum(dist[seen] * np.log10(dist[seen] / new[seen])))
            ratios[i] = 10 ** (weight * kl) - 1
    return ratios


def threshold_between(ratios, quantile):
    """A threshold in a clear gap between two sorted ratios near the quantile."""
    values = np.unique(ratios)
    for j in range(int(quantile * (len(values) - 1)), len(values) - 1):
        if values[j + 1] > values[j] * (1 + 1e-4) + 1e-15:
            return (values[j] + values[j + 1]) / 2
    raise AssertionError("no gap")


def assert_normalized(model, seed=0):
    rng = np.random.default_rng(seed)
    for n in range(1, model.order):
        contexts = np.flatnonzero(model.backoffs[n - 1] != 0)
        for i in rng.choice(contexts, size=min(15, len(contexts)), replace=False):
            history = model.ngrams[n - 1][i].tolist()
            assert conditional_distribution(model, history).sum() == pytest.approx(1.0, abs=1e-9), history
    assert conditional_distribution(model, []).sum() == pytest.approx(1.0, abs=1e-9)


def perplexity(model, sentences):
    ids = {w: i for i, w in enumerate(model.words)}
    total, tokens = 0.0, 0
    for sentence in sentences:
        words = [ids["<s>"], *(ids.get(w, ids["<unk>"]) for w in sentence.split()), ids["</s>"]]
        for i in range(1, len(words)):
            total += math.log10(conditional_distribution(model, words[max(0, i - model.order + 1) : i])[words[i]])
            tokens += 1
    return 10 ** (-total / tokens)


@pytest.fixture(scope="module")
def katz3():
    return katz(count_sentences(KJV[:360], 3))


@pytest.mark.parametrize("quantile", [0.2, 0.5, 0.8])
def test_bigram_model_prunes_exactly_below_threshold(quantile):
    model = witten_bell(count_sentences(KJV[:50], 2))
    ratios = stolcke_ratios(model, 2)
    threshold = threshold_between(ratios, quantile)
    pruned = prune_entropy(model, threshold)
    assert rows_of(pruned, 2) == {tuple(r) for r in model.ngrams[1][ratios >= threshold].tolist()}
    assert rows_of(pruned, 1) == rows_of(model, 1)
    assert_normalized(pruned)


def test_trigram_model_keeps_contexts_and_suffixes_of_kept_ngrams():
    model = katz(count_sentences(KJV[:30], 3))
    scores = {n: stolcke_ratios(model, n) for n in (2, 3)}
    threshold = threshold_between(scores[3], 0.5)
    pruned = prune_entropy(model, threshold)
    kept3 = {tuple(r) for r in model.ngrams[2][scores[3] >= threshold].tolist()}
    assert rows_of(pruned, 3) == kept3
    # a bigram stays if it scores above the threshold, or if a kept trigram starts or ends with it
    needed = {r[:2] for r in kept3} | {r[1:] for r in kept3}
    by_score = {tuple(r) for r in model.ngrams[1][scores[2] >= threshold].tolist()}
    assert rows_of(pruned, 2) == by_score | needed
    assert needed - by_score  # the rule matters here: some bigrams are kept only for it
    assert_normalized(pruned)


def test_threshold_zero_removes_nothing(katz3):
    same = prune_entropy(katz3, 0.0)
    for n in range(3):
        assert np.array_equal(same.ngrams[n], katz3.ngrams[n])
        assert np.array_equal(same.log10_probs[n], katz3.log10_probs[n])
        assert np.array_equal(same.backoffs[n], katz3.backoffs[n])


def test_higher_threshold_prunes_a_subset_and_perplexity_grows_slowly(katz3):
    heldout = KJV[360:380]
    base = perplexity(katz3, heldout)
    sizes, previous = [], katz3
    for threshold in (1e-7, 1e-6, 1e-5, 1e-4):
        pruned = prune_entropy(katz3, threshold)
        for n in (1, 2, 3):
            assert rows_of(pruned, n) <= rows_of(previous, n)
        sizes.append(sum(len(g) for g in pruned.ngrams))
        assert_normalized(pruned, seed=len(sizes))
        if threshold == 1e-5:  # a third of the model gone costs little on held-out text
            assert sizes[-1] < 0.7 * sum(len(g) for g in katz3.ngrams)
            assert perplexity(pruned, heldout) < 1.05 * base
        previous = pruned
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0]


def test_only_contexts_that_lost_ngrams_get_new_backoffs(katz3):
    pruned = prune_entropy(katz3, 1e-5)
    for n in (1, 2):
        old = dict(zip(map(tuple, katz3.ngrams[n - 1].tolist()), katz3.backoffs[n - 1], strict=True))
        lost = {r[:-1] for r in rows_of(katz3, n + 1) - rows_of(pruned, n + 1)}
        changed = 0
        for row, backoff in zip(pruned.ngrams[n - 1].tolist(), pruned.backoffs[n - 1], strict=True):
            if tuple(row) in lost:
                changed += backoff != old[tuple(row)]
            else:
                assert backoff == old[tuple(row)]
        assert changed > 0


@pytest.mark.parametrize("make", [mle, lambda c: witten_bell(c, interpolate=False), "jm"], ids=["mle", "wb", "jm"])
def test_pruned_models_of_other_methods_stay_normalized(make):
    sentences = SentenceGenerator(seed=5).sentences(600)
    counts = count_sentences(sentences[:500], 3)
    model = jelinek_mercer(counts, heldout=sentences[500:]) if make == "jm" else make(counts)
    pruned = prune_entropy(model, 1e-5)
    assert sum(len(g) for g in pruned.ngrams) < sum(len(g) for g in model.ngrams)
    assert_normalized(pruned)


def test_lmplz_model():
    model = read_arpa(DATA / "kjv400.o3.arpa.gz")
    pruned = prune_entropy(model, 1e-6)
    assert len(pruned.ngrams[2]) < 0.9 * len(model.ngrams[2])
    assert pruned.words == model.words
    # lmplz's float32 numbers are normalized to float32 precision, and stay so
    for history in ([1], [1, model.words.index("and")], [model.words.index("the")]):
        assert conditional_distribution(pruned, history).sum() == pytest.approx(1.0, abs=1e-6)


def test_bad_arguments(katz3):
    for threshold in (-1e-9, float("nan"), float("inf"), "1e-6"):
        with pytest.raises(InvalidArgumentError, match="threshold"):
            prune_entropy(katz3, threshold)
    orphan = ArpaModel(
        ["<unk>", "<s>", "</s>", "a"],
        [
            np.arange(4, dtype=np.int32)[:, None],
            np.array([[1, 3]], dtype=np.int32),
            np.array([[3, 3, 2]], dtype=np.int32),
        ],
        [np.log10([0.1, 1, 0.5, 0.4]), np.array([-0.1]), np.array([-0.1])],
        [np.zeros(4), np.zeros(1), np.zeros(0)],
    )
    with pytest.raises(InvalidArgumentError, match="3-gram"):
        prune_entropy(orphan, 1e-3)


def test_docstring_example():
    result = doctest.testmod(prune_module)
    assert result.attempted > 0 and result.failed == 0
