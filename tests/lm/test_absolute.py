"""Absolute discounting against a textbook version written here with dicts, and normalization."""

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from speechdecode.lm.counts import count_sentences
from speechdecode.lm.methods._common import conditional_distribution
from speechdecode.lm.methods.absolute import absolute_discounting
from speechdecode.lm.methods.kneser_ney import DiscountFallbackWarning
from speechdecode.lm.vocab import BOS_ID, EOS_ID

DATA = Path(__file__).parent.parent / "data" / "lmplz"


@pytest.fixture(scope="module")
def kjv_lines():
    return (DATA / "kjv400.txt").read_text().splitlines()


def textbook_absolute(sentences, order, interpolate):
    """{ngram tuple: (p(w | context), weight as a context or None)} from the definitions:
    u = (c - D) / S, gamma = D * (number of successors) / S, D = t1 / (t1 + 2 t2) per order on
    raw counts; unigrams interpolated with the uniform distribution over every word but <s>."""
    raw = Counter()
    for s in sentences:
        padded = ("<s>", *s.split(), "</s>")
        for n in range(1, order + 1):
            raw.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    raw[("<s>",)] = 0
    words = sorted({g[0] for g in raw if len(g) == 1 and g != ("<s>",)} | {"<unk>"})
    discount = {}
    for n in range(1, order + 1):
        t = Counter(c for g, c in raw.items() if len(g) == n)
        discount[n] = t[1] / (t[1] + 2 * t[2])
    successors = defaultdict(dict)
    for g, c in raw.items():
        if c > 0:
            successors[g[:-1]][g[-1]] = c

    def total(ctx):
        return sum(successors[ctx].values())

    def gamma(ctx):
        return discount[len(ctx) + 1] * len(successors[ctx]) / total(ctx)

    def p(w, ctx):
        succ = successors[ctx]
        u = (succ[w] - discount[len(ctx) + 1]) / total(ctx) if w in succ else 0.0
        if not ctx:
            return u + gamma(()) / len(words)
        if ctx not in successors:
            return p(w, ctx[1:])
        if interpolate:
            return u + gamma(ctx) * p(w, ctx[1:])
        return u if w in succ else weight(ctx) * p(w, ctx[1:])

    def weight(ctx):
        if ctx not in successors:
            return None
        if interpolate:
            return gamma(ctx)
        return gamma(ctx) / (1 - sum(p(x, ctx[1:]) for x in successors[ctx]))

    return {g: (p(g[-1], g[:-1]) if g != ("<s>",) else 1.0, weight(g)) for g in raw}


@pytest.mark.parametrize("interpolate", [True, False])
def test_matches_textbook(kjv_lines, interpolate):
    lines = kjv_lines[:40]
    model = absolute_discounting(count_sentences(lines, 3), interpolate=interpolate)
    expected = textbook_absolute(lines, 3, interpolate)
    for n in (1, 2, 3):
        listed = {}
        for i, row in enumerate(model.ngrams[n - 1].tolist()):
            backoff = model.backoffs[n - 1][i] if n < 3 else None
            listed[tuple(model.words[w] for w in row)] = (model.log10_probs[n - 1][i], backoff)
        assert set(listed) - {("<unk>",)} == {g for g in expected if len(g) == n}
        for g, (logp, logb) in listed.items():
            if g == ("<unk>",):
                continue
            p, b = expected[g]
            assert logp == pytest.approx(np.log10(p), abs=1e-12)
            if n < 3:
                assert logb == pytest.approx(0.0 if b is None else np.log10(b), abs=1e-12)


def test_discount_by_hand():
    counts = count_sentences(["a b", "a b", "a c", "b c", "d"], 2)
    # Bigrams: <s> a 3, a b 2, b </s> 2, c </s> 2, a c 1, <s> b 1, b c 1, <s> d 1, d </s> 1.
    assert Counter(counts.counts[1].tolist()) == {3: 1, 2: 3, 1: 5}
    d = 5 / (5 + 2 * 3)
    model = absolute_discounting(counts)
    ids = counts.vocab.id
    # p(b | a) = (c(a b) - D) / c(a .) + D * (2 successors) / c(a .) * p(b), c(a .) = 3.
    p_b = 10 ** model.log10_probs[0][ids("b")]
    row = np.flatnonzero((model.ngrams[1][:, 0] == ids("a")) & (model.ngrams[1][:, 1] == ids("b")))[0]
    assert 10 ** model.log10_probs[1][row] == pytest.approx((2 - d) / 3 + d * 2 / 3 * p_b, rel=1e-12)
    assert 10 ** model.backoffs[0][ids("a")] == pytest.approx(d * 2 / 3, rel=1e-12)


@pytest.mark.parametrize("prune", [None, [0, 1], [0, 0, 2]])
@pytest.mark.parametrize("interpolate", [True, False])
def test_normalized(kjv_lines, interpolate, prune):
    counts = count_sentences(kjv_lines, 4)
    model = absolute_discounting(counts, interpolate=interpolate, prune=prune)
    rng = np.random.default_rng(11)
    histories = [[]] + [rng.integers(0, len(model.words), size=int(rng.integers(1, 5))).tolist() for _ in range(10)]
    for n in (1, 2, 3):
        rows = model.ngrams[n - 1][model.ngrams[n - 1][:, -1] != EOS_ID]
        histories += [rows[i].tolist() for i in rng.choice(len(rows), size=15, replace=False)]
    for history in histories:
        p = conditional_distribution(model, history)
        assert p[BOS_ID] == 0 and abs(p.sum() - 1) < 1e-9


def test_pruned_ngrams_leave_their_mass_to_the_backoff(kjv_lines):
    counts = count_sentences(kjv_lines, 3)
    full, pruned = absolute_discounting(counts), absolute_discounting(counts, prune=[0, 1, 1])
    assert len(pruned.ngrams[1]) == int(np.sum(counts.counts[1] > 1))
    assert len(pruned.ngrams[2]) == int(np.sum(counts.counts[2] > 1))
    np.testing.assert_array_equal(full.log10_probs[0], pruned.log10_probs[0])  # unigrams are never pruned
    # A context that lost extensions backs off with more weight.
    context = pruned.words.index("the")
    assert pruned.backoffs[0][context] > full.backoffs[0][context]


def test_fallback_warning_names_order_and_counts():
    # Six bigrams (<s> a, a b, b </s>, <s> c, c d, d </s>), each seen once; unigrams are fine
    # (a, b, c, d once, </s> twice).
    with pytest.warns(DiscountFallbackWarning, match=r"absolute: .*order 2 \(no 2-grams with count 2; "
                      r"count-of-counts t1=6 t2=0\); using the fallback discount D=0.5"):  # fmt: skip
        model = absolute_discounting(count_sentences(["a b", "c d"], 2))
    assert abs(conditional_distribution(model, [3]).sum() - 1) < 1e-12


def test_options_are_checked():
    counts = count_sentences(["a b", "a b c"], 2)
    for bad in (0, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="discount_fallback"):
            absolute_discounting(counts, discount_fallback=bad)
    with pytest.raises(ValueError, match="interpolate"):
        absolute_discounting(counts, interpolate=1)
