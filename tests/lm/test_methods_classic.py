"""The classic smoothing methods: mle, additive, katz, witten_bell, jelinek_mercer.

Expected values are worked out by hand in the comments, from the formulas in the papers, or
from an independent scorer (a plain dict walk of the ARPA tables, below); distributions are
checked with ``conditional_distribution`` from ``_common``, which is not this code's.
"""

import doctest
import math
import pathlib

import numpy as np
import pytest

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import read_arpa, write_arpa
from speechdecode.lm.counts import count_sentences
from speechdecode.lm.methods import additive as additive_module
from speechdecode.lm.methods import jelinek_mercer as jelinek_mercer_module
from speechdecode.lm.methods import katz as katz_module
from speechdecode.lm.methods import mle as mle_module
from speechdecode.lm.methods import witten_bell as witten_bell_module
from speechdecode.lm.methods._common import conditional_distribution
from speechdecode.lm.methods.additive import additive
from speechdecode.lm.methods.jelinek_mercer import jelinek_mercer
from speechdecode.lm.methods.katz import good_turing_discounts, katz
from speechdecode.lm.methods.mle import mle
from speechdecode.lm.methods.witten_bell import witten_bell
from speechdecode.lm.vocab import Vocabulary
from speechdecode.testing import SentenceGenerator

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "lmplz"
KJV = (DATA / "kjv400.txt").read_text().splitlines()
TINY = ["a b", "a c", "b"]  # padded: <s> a b </s> | <s> a c </s> | <s> b </s>
TRAIN, HELDOUT = KJV[:360], KJV[360:]


METHODS = {
    "mle": lambda c, **kw: mle(c, **kw),
    "add-1": lambda c, **kw: additive(c, **kw),
    "add-0.01": lambda c, **kw: additive(c, k=0.01, **kw),
    "katz": lambda c, **kw: katz(c, **kw),
    "wb": lambda c, **kw: witten_bell(c, **kw),
    "wb-backoff": lambda c, **kw: witten_bell(c, interpolate=False, **kw),
    "jm": lambda c, **kw: jelinek_mercer(c, heldout=HELDOUT, **kw),
}


class Scorer:
    """p(w | h) by the ARPA rule, walking dicts built from the tables (independent of the code)."""

    def __init__(self, model):
        self.order = model.order
        self.ids = {w: i for i, w in enumerate(model.words)}
        self.prob, self.bow = {}, {}
        for n in range(model.order):
            for row, p in zip(model.ngrams[n].tolist(), model.log10_probs[n].tolist(), strict=True):
                self.prob[tuple(row)] = p
            if n + 1 < model.order:
                for row, b in zip(model.ngrams[n].tolist(), model.backoffs[n].tolist(), strict=True):
                    self.bow[tuple(row)] = b

    def log10(self, history, word):
        history = tuple(history[max(0, len(history) - (self.order - 1)) :] if self.order > 1 else ())
        if (*history, word) in self.prob:
            return self.prob[(*history, word)]
        return self.bow.get(history, 0.0) + self.log10(history[1:], word)

    def sentence_log10(self, sentence):
        ids = [self.ids["<s>"], *(self.ids.get(w, self.ids["<unk>"]) for w in sentence.split()), self.ids["</s>"]]
        return sum(self.log10(ids[:i], ids[i]) for i in range(1, len(ids)))

    def perplexity(self, sentences):
        total = sum(self.sentence_log10(s) for s in sentences)
        return 10 ** (-total / sum(len(s.split()) + 1 for s in sentences))


def p(model, *words):
    """p(last word | the others) in a model, linear."""
    ids = [model.words.index(w) for w in words]
    return float(conditional_distribution(model, ids[:-1])[ids[-1]])


def assert_normalized(model, seed=0, per_order=12):
    """sum_w p(w|h) = 1 for listed contexts, random listed n-grams and random word strings."""
    rng = np.random.default_rng(seed)
    vocab_size = len(model.words)
    histories = [[]]
    for n in range(1, model.order):
        table = model.ngrams[n - 1]
        contexts = np.flatnonzero(model.backoffs[n - 1] != 0)
        for pick in (contexts, np.arange(len(table))):
            if len(pick):
                histories += [table[i].tolist() for i in rng.choice(pick, size=min(per_order, len(pick)))]
        histories += [rng.integers(0, vocab_size, size=n).tolist() for _ in range(4)]
    for history in histories:
        dist = conditional_distribution(model, history)
        assert dist.sum() == pytest.approx(1.0, abs=1e-9), history
        assert dist.min() >= 0


@pytest.fixture(scope="module")
def kjv_counts():
    return count_sentences(TRAIN, 4)


@pytest.fixture(scope="module")
def synthetic_counts():
    return count_sentences(SentenceGenerator(seed=3).sentences(1500), 3)


@pytest.mark.parametrize("prune", [None, [0, 1, 1], [0, 0, 2]], ids=["full", "prune011", "prune002"])
@pytest.mark.parametrize("name", list(METHODS))
def test_normalized_on_kjv(name, prune, kjv_counts):
    model = METHODS[name](kjv_counts, prune=prune)
    assert model.order == 4
    assert model.words == kjv_counts.vocab.words
    assert_normalized(model)
    if prune is not None:  # n-grams at or below the cutoffs are not listed
        thresholds = [*prune, prune[-1]]
        for n in range(2, 5):
            kept = {tuple(r) for r in model.ngrams[n - 1].tolist()}
            rows, counts = kjv_counts.ngrams[n - 1], kjv_counts.counts[n - 1]
            assert kept == {tuple(r) for r in rows[counts > thresholds[n - 1]].tolist()}


@pytest.mark.parametrize("name", list(METHODS))
def test_normalized_on_synthetic(name, synthetic_counts):
    model = METHODS[name](synthetic_counts)
    assert_normalized(model, seed=1)


@pytest.mark.parametrize("name", list(METHODS))
def test_arpa_conventions(name, tmp_path):
    counts = count_sentences(KJV[:60], 3)
    model = METHODS[name](counts)
    lmplz = read_arpa(DATA / "kjv400.o3.arpa.gz")
    bos = model.words.index("<s>")
    # <s> as lmplz writes it: log10 prob 0, with a backoff since sentences start with it
    assert model.log10_probs[0][bos] == lmplz.log10_probs[0][lmplz.words.index("<s>")] == 0
    assert model.backoffs[0][bos] != 0
    # every unigram is in the table, ids unchanged; n-grams ending in </s> are no contexts
    assert model.ngrams[0][:, 0].tolist() == list(range(len(counts.vocab)))
    eos = model.words.index("</s>")
    for n in range(1, model.order):
        assert np.all(model.backoffs[n - 1][model.ngrams[n - 1][:, -1] == eos] == 0)
    assert len(model.backoffs[-1]) == 0
    # a written and re-read model (float32 digits) is still a distribution to float32 precision
    write_arpa(tmp_path / "m.arpa", model)
    again = read_arpa(tmp_path / "m.arpa")
    for history in ([], [bos], [bos, model.words.index("and")]):
        assert conditional_distribution(again, history).sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("name", list(METHODS))
def test_unk_in_text_unseen_vocabulary_words_and_order_one(name, order):
    train = KJV[:80]
    limited = count_sentences(train, order, limit_vocab=sorted(set(" ".join(train).split()))[:150])
    assert limited.count("<unk>") > 0  # <unk> occurs, so it also starts contexts
    extended = count_sentences(train, order, vocab=Vocabulary(["never", "seen"]))
    for counts in (limited, extended):
        model = METHODS[name](counts)
        assert model.order == order
        assert_normalized(model, seed=order)
    # a word of the vocabulary that never occurs: probability 0 (log10 -99) for maximum likelihood only
    assert (p(model, "never") < 1e-90) == (name == "mle")


def test_mle_by_hand():
    model = mle(count_sentences(TINY, 2))
    # unigrams over N = 8 tokens (a 2, b 2, c 1, </s> 3); <unk> never seen
    assert [p(model, w) for w in ("a", "b", "c", "</s>")] == pytest.approx([2 / 8, 2 / 8, 1 / 8, 3 / 8])
    assert model.log10_probs[0][0] == -99
    assert p(model, "<s>", "a") == pytest.approx(2 / 3)
    assert p(model, "a", "c") == pytest.approx(1 / 2)
    assert p(model, "b", "</s>") == pytest.approx(1.0)
    # every seen context used all its mass: an unseen word after it has probability 0
    assert model.backoffs[0][model.words.index("a")] == -99
    assert p(model, "a", "a") < 1e-90
    # an unseen context ("</s>") backs off with weight 1
    assert p(model, "</s>", "a") == pytest.approx(2 / 8)


def test_mle_pruned_mass_goes_to_backoff():
    model = mle(count_sentences(TINY, 2), prune=[0, 1])
    # kept: "<s> a" (2) and "b </s>" (2). Context <s>: S = 3, pruned "<s> b" leaves R = 1/3,
    # spread over the words not listed after <s> in proportion to p(w): 1 - p(a) = 6/8 of it,
    # bow = (1/3) / (6/8) = 4/9, so p(b | <s>) = 4/9 * 2/8 = 1/9.
    assert p(model, "<s>", "a") == pytest.approx(2 / 3)
    assert p(model, "<s>", "b") == pytest.approx(1 / 9)
    assert 10 ** model.backoffs[0][model.words.index("<s>")] == pytest.approx(4 / 9)
    # "a" lost all its continuations: it is no context and backs off with weight 1
    assert p(model, "a", "b") == pytest.approx(2 / 8)
    assert model.backoffs[0][model.words.index("a")] == 0


def test_additive_by_hand():
    model = additive(count_sentences(TINY, 2), k=1)
    # unigrams: (c + 1) / (8 + 5) over <unk>, </s>, a, b, c
    assert [p(model, w) for w in ("<unk>", "</s>", "a", "b", "c")] == pytest.approx(
        [1 / 13, 4 / 13, 3 / 13, 3 / 13, 2 / 13]
    )
    # after "a" (S = 2): seen b and c get (1 + 1) / (2 + 5) = 2/7 each, as Laplace says; the
    # other three words share Laplace's 3/7 in proportion to p(w): bow = (3/7) / (1 - 5/13)
    # = 39/56, so p(a | a) = 39/56 * 3/13 = 9/56 and p(</s> | a) = 39/56 * 4/13 = 12/56.
    assert p(model, "a", "b") == pytest.approx(2 / 7)
    assert p(model, "a", "c") == pytest.approx(2 / 7)
    assert p(model, "a", "a") == pytest.approx(9 / 56)
    assert p(model, "a", "</s>") == pytest.approx(12 / 56)
    # Lidstone, one k per order: unigrams (c + 0.5) / (8 + 2.5); after "a": (1 + 2) / (2 + 10)
    lidstone = additive(count_sentences(TINY, 2), k=[0.5, 2])
    assert p(lidstone, "a") == pytest.approx(2.5 / 10.5)
    assert p(lidstone, "a", "b") == pytest.approx(3 / 12)


def test_katz_discount_ratios():
    def tallies(*n):  # counts with n[0] singletons, n[1] doubletons, ...
        return np.concatenate([np.full(m, r + 1) for r, m in enumerate(n)])

    # n1=10, n2=4, n3=2, k=2: A = 3*2/10 = 0.6; d1 = (2*4/10 - 0.6)/0.4 = 0.5;
    # d2 = (3*2/(2*4) - 0.6)/0.4 = 0.375
    assert good_turing_discounts(tallies(10, 4, 2), 2) == pytest.approx([1, 0.5, 0.375])
    # k lowered while n_{k+1} = 0: with n4 = 0, k = 3 acts as k = 2
    assert good_turing_discounts(tallies(10, 4, 2), 3) == pytest.approx([1, 0.5, 0.375, 1])
    # n1=20, n2=6, n3=4, n4=1, k=3: A = 4/20 = 0.2; d1 = (12/20 - 0.2)/0.8 = 0.5;
    # d2 = (12/12 - 0.2)/0.8 = 1; d3 = (4/12 - 0.2)/0.8 = 1/6
    assert good_turing_discounts(tallies(20, 6, 4, 1), 3) == pytest.approx([1, 0.5, 1, 1 / 6])
    # r*/r = 24/20 > 1 for r = 1: out of range, not discounted; r = 2: (12/24 - 0.2)/0.8 = 0.375
    assert good_turing_discounts(tallies(20, 12, 4, 1), 3) == pytest.approx([1, 1, 0.375, 1 / 6])
    # no singletons, or A >= 1: no discounting
    assert good_turing_discounts(tallies(0, 5, 3), 1) == pytest.approx([1, 1])
    assert good_turing_discounts(tallies(2, 4, 1), 2) == pytest.approx([1, 1, 1])


def test_katz_takes_the_good_turing_mass(kjv_counts):
    info = {}
    model = katz(kjv_counts, fitted=info)
    for n in (2, 3, 4):
        d = info["discounts"][n - 1]
        values = kjv_counts.counts[n - 1]
        assert np.all((d[1:] > 0) & (d[1:] < 1))  # all ratios are usable on this text
        # Katz's constraint: the counts taken from r <= k add up to n1, Good-Turing's unseen mass
        taken = sum((values == r).sum() * r * (1 - d[r]) for r in range(1, 6))
        assert taken == pytest.approx((values == 1).sum(), rel=1e-9)
        # and each listed n-gram holds d_c c / S(h), S(h) = count of its context's continuations
        rows = model.ngrams[n - 1]
        for i in np.random.default_rng(n).choice(len(rows), 40):
            row = tuple(rows[i].tolist())
            c = kjv_counts.count(kjv_counts.vocab.word(w) for w in row)
            followers = kjv_counts.counts[n - 1][np.all(kjv_counts.ngrams[n - 1][:, :-1] == row[:-1], axis=1)]
            # (a context whose counts are all above k keeps no mass: its total gets one more)
            total = followers.sum() + (followers.min() > 5)
            expected = (d[c] if c <= 5 else 1.0) * c / total
            assert 10 ** model.log10_probs[n - 1][i] == pytest.approx(expected, rel=1e-12)


def test_katz_without_discount_gets_one_extra_count():
    model = katz(count_sentences(TINY, 2), k=0)
    # Nothing is discounted, so every total is increased by one (Doug Paul's fix): unigrams
    # c / 9 and <unk> 1/9; after "a" (S = 2 + 1): b and c 1/3 each, R = 1/3 backed off with
    # bow = (1/3) / (1 - 2/9 - 1/9) = 1/2: p(a | a) = 1/2 * 2/9 = 1/9, p(<unk> | a) = 1/18.
    assert [p(model, w) for w in ("<unk>", "a", "c", "</s>")] == pytest.approx([1 / 9, 2 / 9, 1 / 9, 3 / 9])
    assert p(model, "a", "b") == pytest.approx(1 / 3)
    assert p(model, "a", "a") == pytest.approx(1 / 9)
    assert p(model, "a", "<unk>") == pytest.approx(1 / 18)


def test_witten_bell_by_hand():
    model = witten_bell(count_sentences(TINY, 2))
    # unigrams: N = 8, T = 4 distinct words, |V'| = 5: p(w) = (c + 4/5) / 12
    assert [p(model, w) for w in ("<unk>", "a", "c", "</s>")] == pytest.approx([1 / 15, 7 / 30, 3 / 20, 19 / 60])
    # after "a": S = 2, T = 2: p(b | a) = (1 + 2 * 7/30) / 4 = 11/30, p(c | a) = (1 + 2 * 3/20) / 4
    # = 13/40, and the unseen share T / (S + T) = 1/2 of p(w): p(a | a) = 7/60
    assert p(model, "a", "b") == pytest.approx(11 / 30)
    assert p(model, "a", "c") == pytest.approx(13 / 40)
    assert p(model, "a", "a") == pytest.approx(7 / 60)
    assert 10 ** model.backoffs[0][model.words.index("a")] == pytest.approx(1 / 2)
    # after <s>: S = 3, T = 2: p(a | <s>) = (2 + 2 * 7/30) / 5 = 37/75
    assert p(model, "<s>", "a") == pytest.approx(37 / 75)

    backoff = witten_bell(count_sentences(TINY, 2), interpolate=False)
    # unigrams c / 12; the unseen mass 4/12 all goes to <unk>, the only unseen word
    assert [p(backoff, w) for w in ("<unk>", "a", "</s>")] == pytest.approx([1 / 3, 2 / 12, 3 / 12])
    # after "a": b and c 1/4 each; R = 2/4 over 1 - 2/12 - 1/12 = 3/4: bow 2/3, p(a | a) = 1/9
    assert p(backoff, "a", "b") == pytest.approx(1 / 4)
    assert p(backoff, "a", "a") == pytest.approx(1 / 9)


def test_jelinek_mercer_fixed_lambdas_by_hand():
    model = jelinek_mercer(count_sentences(TINY, 2), lambdas=[0.6, 0.5])
    # p(a) = 0.6 * 2/8 + 0.4 / 5 = 0.23; p(<unk>) = 0.08
    assert p(model, "a") == pytest.approx(0.23)
    assert p(model, "<unk>") == pytest.approx(0.08)
    # p(b | a) = 0.5 * 1/2 + 0.5 * p(b) = 0.25 + 0.115; p(a | a) = 0.5 * 0.23
    assert p(model, "a", "b") == pytest.approx(0.365)
    assert p(model, "a", "a") == pytest.approx(0.115)


def test_jelinek_mercer_em(kjv_counts):
    info = {}
    model = jelinek_mercer(kjv_counts, heldout=HELDOUT, fitted=info)
    trace = info["log10_likelihood"]
    lambdas = info["lambdas"]
    assert len(lambdas) == 4 and all(0 < x < 1 for x in lambdas)
    assert len(trace) > 3
    assert np.all(np.diff(trace) >= -1e-9 * abs(trace[0]))  # EM never lowers the likelihood
    assert trace[-1] > trace[0] + 10
    # the likelihood EM maximized is the built model's log10 probability of the held-out text
    scorer = Scorer(model)
    assert sum(scorer.sentence_log10(s) for s in HELDOUT) == pytest.approx(trace[-1], rel=1e-9)
    # held-out counts instead of sentences: the same fit
    other = {}
    jelinek_mercer(kjv_counts, heldout=count_sentences(HELDOUT, 4), fitted=other)
    assert other["lambdas"] == pytest.approx(lambdas, rel=1e-12)


def test_jelinek_mercer_em_finds_the_best_weights():
    counts = count_sentences(TRAIN, 2)
    info = {}
    jelinek_mercer(counts, heldout=HELDOUT, fitted=info, tol=1e-12, max_iter=2000)
    best = info["log10_likelihood"][-1]
    # no weights on a grid do better (the held-out likelihood scored independently)
    for l1 in (0.5, 0.7, 0.9):
        for l2 in (0.2, 0.4, 0.6):
            scorer = Scorer(jelinek_mercer(counts, lambdas=[l1, l2]))
            assert sum(scorer.sentence_log10(s) for s in HELDOUT) <= best + 1e-9


def test_smoothed_methods_beat_add_one_on_heldout(kjv_counts):
    perplexity = {name: Scorer(METHODS[name](kjv_counts)).perplexity(HELDOUT) for name in METHODS}
    assert math.isinf(perplexity["mle"]) or perplexity["mle"] > 1e6  # unseen events have p = 0
    for name in ("katz", "wb", "wb-backoff", "jm"):
        assert perplexity[name] < 0.7 * perplexity["add-1"], perplexity


def test_bad_options():
    counts = count_sentences(TINY, 2)
    with pytest.raises(InvalidArgumentError, match="prune"):
        mle(counts, prune=[1, 1])
    with pytest.raises(InvalidArgumentError, match="prune"):
        witten_bell(counts, prune=[0, 2, 1])
    with pytest.raises(InvalidArgumentError, match="k"):
        additive(counts, k=0)
    with pytest.raises(InvalidArgumentError, match="k"):
        katz(counts, k=[1, 2, 3])
    for heldout in (None, [], "a b", [1, 2]):
        with pytest.raises(InvalidArgumentError, match="heldout"):
            jelinek_mercer(counts, heldout=heldout)
    with pytest.raises(InvalidArgumentError, match="heldout"):
        jelinek_mercer(count_sentences(TINY, 3), heldout=count_sentences(TINY, 2))
    with pytest.raises(InvalidArgumentError, match="lambdas"):
        jelinek_mercer(counts, lambdas=[0.5, 1.5])
    with pytest.raises(InvalidArgumentError, match="lambdas"):
        jelinek_mercer(counts, lambdas="half")
    with pytest.raises(InvalidArgumentError, match="interpolate"):
        witten_bell(counts, interpolate="yes")


@pytest.mark.parametrize(
    "module",
    [mle_module, additive_module, katz_module, witten_bell_module, jelinek_mercer_module],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
