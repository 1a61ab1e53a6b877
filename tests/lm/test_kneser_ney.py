"""Kneser-Ney: ``mkn`` against KenLM lmplz's own ARPA files, ``kn`` against a textbook version
written here with dicts, and both for normalization."""

import gzip
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import read_arpa, write_arpa
from speechdecode.lm.counts import NgramCounts, count_sentences
from speechdecode.lm.methods._common import conditional_distribution, prune_thresholds
from speechdecode.lm.methods.kneser_ney import (
    DiscountFallbackWarning,
    adjusted_counts,
    kneser_ney,
    modified_discounts,
    modified_kneser_ney,
)
from speechdecode.lm.vocab import BOS_ID, EOS_ID, UNK_ID

DATA = Path(__file__).parent.parent / "data" / "lmplz"
LMPLZ_CASES = [(f"kjv400.o{n}.arpa.gz", n, None) for n in range(2, 7)] + [
    ("kjv400.o4.prune011.arpa.gz", 4, [0, 1, 1]),
    ("kjv400.o3.prune002.arpa.gz", 3, [0, 0, 2]),
    # Unigram pruning (lmplz drops words seen <= threshold times, but never <unk> <s> </s>).
    ("kjv400.o3.prune11.arpa.gz", 3, [1, 1]),
    ("kjv400.o4.prune123.arpa.gz", 4, [1, 2, 3]),
    ("kjv400.o3.prune22.arpa.gz", 3, [2, 2]),
]

# A corpus on which lmplz's count-of-counts quirk (kenlm issue 427) changes the discounts, and
# what `lmplz -o 2 --text quirk.txt --arpa quirk.arpa` (KenLM built from source) printed and wrote.
# "and", the word with the highest id, is the last n-gram of lmplz's suffix-sorted stream; it
# follows only "cat" (adjusted count 1) but occurs twice, and lmplz tallies its raw count 2:
# unigram t1, t2 = 6, 1 instead of 7, 0.
QUIRK_CORPUS = """\
the house dog the
mat the
cat to to
cat the cat house dog the
on
the the
cat to mat the
cat the ran the
the the the cat cat on
dog dog on
on to cat and the
cat and the the
"""
QUIRK_LMPLZ_DISCOUNTS = [(0.142857, 1.42857, 2.85714), (0.454545, 1.69697, 2.09091)]  # "Statistics:" on stderr
QUIRK_LMPLZ_ARPA = """\
\\data\\
ngram 1=12
ngram 2=29

\\1-grams:
-1.1966004	<unk>	0
0	<s>	-0.2474472
-1.1641973	</s>	0
-0.6851878	the	-0.37238592
-1.0793759	house	-0.071355894
-1.1641973	dog	-0.18607551
-1.0793759	mat	-0.071355894
-0.9871609	cat	-0.14437689
-1.1641973	to	-0.3424227
-1.1641973	on	-0.19629467
-1.0308254	ran	-0.3424227
-1.0308254	and	-0.071355894

\\2-grams:
-0.3996956	the </s>
-0.7759644	to </s>
-0.5672312	on </s>
-0.7154866	<s> the
-0.6842343	the the
-0.6772392	dog the
-0.4858725	mat the
-0.7405753	cat the
-0.19429879	ran the
-0.4858725	and the
-1.1584616	the house
-0.919577	cat house
-1.074626	<s> dog
-0.6785023	house dog
-0.74231195	dog dog
-1.0335228	<s> mat
-0.75888836	to mat
-0.52188516	<s> cat
-1.2031722	the cat
-0.8713582	cat cat
-0.7371171	to cat
-1.0819227	cat to
-0.7759644	to to
-0.74481004	on to
-1.1937523	<s> on
-0.74231195	dog on
-0.95961523	cat on
-1.133073	the ran
-0.99794936	cat and

\\end\\
"""


@pytest.fixture(scope="module")
def kjv_counts():
    return count_sentences((DATA / "kjv400.txt").read_text().splitlines(), 6)


def truncated(counts: NgramCounts, order: int) -> NgramCounts:
    return NgramCounts(counts.vocab, counts.ngrams[:order], counts.counts[:order])


def table(model, n):
    """{words tuple: (log10 prob, log10 backoff or None)} of the n-grams of one order."""
    backoffs = model.backoffs[n - 1] if n < model.order else [None] * len(model.ngrams[n - 1])
    return {
        tuple(model.words[i] for i in row): (p, b)
        for row, p, b in zip(model.ngrams[n - 1].tolist(), model.log10_probs[n - 1], backoffs, strict=True)
    }


def assert_same_ngrams_close(model, reference, tol):
    assert model.order == reference.order
    for n in range(1, model.order + 1):
        ours, theirs = table(model, n), table(reference, n)
        assert ours.keys() == theirs.keys(), f"order {n}: n-gram sets differ"
        probs = np.array([[ours[k][0], theirs[k][0]] for k in ours])
        assert np.max(np.abs(probs[:, 0] - probs[:, 1])) < tol
        if n < model.order:
            backoffs = np.array([[ours[k][1], theirs[k][1]] for k in ours])
            assert np.max(np.abs(backoffs[:, 0] - backoffs[:, 1])) < tol


def sampled_histories(model, rng, per_order=15):
    """Listed n-grams of every order below the top (not ending in </s>), random id sequences
    (lengths 0 to order, some with <s> / </s> / <unk> inside), and the empty history."""
    histories = [[]]
    for n in range(1, model.order):
        rows = model.ngrams[n - 1]
        rows = rows[rows[:, -1] != EOS_ID]
        for i in rng.choice(len(rows), size=min(per_order, len(rows)), replace=False):
            histories.append(rows[i].tolist())
    for _ in range(per_order):
        histories.append(rng.integers(0, len(model.words), size=int(rng.integers(0, model.order + 1))).tolist())
    return histories


def assert_normalized(model, rng, tol, per_order=15):
    for history in sampled_histories(model, rng, per_order):
        p = conditional_distribution(model, history)
        assert p[BOS_ID] == 0 and np.all(p[np.arange(len(p)) != BOS_ID] > 0)
        assert abs(p.sum() - 1) < tol, (history, p.sum())


# --- mkn against lmplz -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "order", "prune"), LMPLZ_CASES, ids=[c[0] for c in LMPLZ_CASES])
def test_mkn_writes_lmplz_file_byte_for_byte(kjv_counts, tmp_path, name, order, prune):
    write_arpa(tmp_path / "ours.arpa", modified_kneser_ney(truncated(kjv_counts, order), prune=prune))
    with gzip.open(DATA / name, "rt", encoding="utf-8") as handle:
        expected = handle.read()
    assert (tmp_path / "ours.arpa").read_text() == expected


@pytest.mark.parametrize("float64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "order", "prune"), LMPLZ_CASES, ids=[c[0] for c in LMPLZ_CASES])
def test_mkn_same_ngrams_and_numbers_within_1e4(kjv_counts, name, order, prune, float64):
    model = modified_kneser_ney(truncated(kjv_counts, order), prune=prune, float64=float64)
    assert_same_ngrams_close(model, read_arpa(DATA / name), 1e-4)


def test_mkn_discount_fallback_as_lmplz_with_warning_naming_order_and_counts(tmp_path):
    counts = count_sentences((DATA / "tiny.txt").read_text().splitlines(), 3)
    with pytest.warns(DiscountFallbackWarning) as caught:
        model = modified_kneser_ney(counts)
    messages = [str(w.message) for w in caught]
    # lmplz: "Substituting fallback discounts for order 1 ..." and "... order 2" (counted from 0).
    assert len(messages) == 2
    assert "order 2" in messages[0] and "no 2-grams with adjusted count 3" in messages[0] and "t3=0" in messages[0]
    # The 14 trigrams of tiny.txt each occur once: t1 = 14, t2 = 0.
    assert "order 3" in messages[1] and "no 3-grams with adjusted count 2" in messages[1]
    assert "t1=14 t2=0" in messages[1]
    assert all("D1=0.5 D2=1 D3+=1.5" in m for m in messages)
    write_arpa(tmp_path / "tiny.arpa", model)
    with gzip.open(DATA / "tiny.o3.fallback.arpa.gz", "rt", encoding="utf-8") as handle:
        assert (tmp_path / "tiny.arpa").read_text() == handle.read()


def test_mkn_custom_fallback_discounts_are_used():
    counts = count_sentences((DATA / "tiny.txt").read_text().splitlines(), 3)
    with pytest.warns(DiscountFallbackWarning, match="D1=0.25 D2=0.75 D3\\+=0.75"):
        discounts = modified_discounts(counts, discount_fallback=(0.25, 0.75))
    np.testing.assert_allclose(discounts[1:], [[0, 0.25, 0.75, 0.75]] * 2)
    assert discounts[0, 1] not in (0.25, 0.5)  # the unigram discounts could be computed


def test_mkn_no_warning_when_discounts_are_computable(kjv_counts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        modified_kneser_ney(truncated(kjv_counts, 4))


def test_mkn_copies_lmplz_count_of_counts_quirk(tmp_path):
    counts = count_sentences(QUIRK_CORPUS.splitlines(), 2)
    write_arpa(tmp_path / "quirk.arpa", modified_kneser_ney(counts))
    assert (tmp_path / "quirk.arpa").read_text() == QUIRK_LMPLZ_ARPA
    np.testing.assert_allclose(modified_discounts(counts)[:, 1:], QUIRK_LMPLZ_DISCOUNTS, rtol=1e-5)
    # By hand: distinct left words of the, house, dog, mat, cat, to, on, ran, and, </s>.
    adjusted = adjusted_counts(counts)[0]
    by_word = {counts.vocab.word(i): int(a) for i, a in enumerate(adjusted) if i != BOS_ID and i != UNK_ID}
    assert by_word == {"the": 7, "house": 2, "dog": 3, "mat": 2, "cat": 4, "to": 3, "on": 3, "ran": 1, "and": 1,
                       "</s>": 3}  # fmt: skip
    # t = (2, 2, 4, 1); lmplz counts "and" as 2: t = (1, 3, 4, 1), Y = 1/7, D = (1/7, 10/7, 20/7).
    np.testing.assert_allclose(modified_discounts(counts)[0, 1:], [1 / 7, 10 / 7, 20 / 7], rtol=1e-6)
    # float64 mode uses the true t: Y = 1/3, D1 = 1 - 2 Y t2 / t1 = 1/3.
    assert modified_discounts(counts, float64=True)[0, 1] == pytest.approx(1 / 3)


def test_adjusted_counts_by_hand():
    counts = count_sentences(["a b", "c b", "a b"], 3)
    uni, bi, tri = adjusted_counts(counts)
    ids = counts.vocab.id
    # Unigrams: distinct left words; <s>, <unk> 0.
    assert uni[ids("b")] == 2 and uni[ids("a")] == 1 and uni[ids("</s>")] == 1
    assert uni[BOS_ID] == 0 and uni[UNK_ID] == 0
    # Bigrams starting with <s> keep raw counts; others count distinct left words.
    rows = {tuple(counts.vocab.word(i) for i in r): v for r, v in zip(counts.ngrams[1].tolist(), bi, strict=True)}
    assert rows[("<s>", "a")] == 2 and rows[("a", "b")] == 1 and rows[("b", "</s>")] == 2
    np.testing.assert_array_equal(tri, counts.counts[2])  # the highest order keeps raw counts


def test_mkn_float64_close_to_float32_and_normalized(kjv_counts):
    rng = np.random.default_rng(0)
    for order in (3, 5):
        f32 = modified_kneser_ney(truncated(kjv_counts, order))
        f64 = modified_kneser_ney(truncated(kjv_counts, order), float64=True)
        diffs = [np.abs(a - b) for a, b in zip(f32.log10_probs + f32.backoffs, f64.log10_probs + f64.backoffs,
                                                strict=True)]  # fmt: skip
        largest = max(d.max() for d in diffs if len(d))
        assert 0 < largest < 1e-3
        assert_normalized(f64, rng, 1e-9)


@pytest.mark.parametrize("prune", [None, [0, 1], [0, 0, 1, 2]])
@pytest.mark.parametrize("order", [2, 4, 6])
def test_mkn_normalized(kjv_counts, order, prune):
    rng = np.random.default_rng(order)
    prune = None if prune is None else prune[:order]
    assert_normalized(modified_kneser_ney(truncated(kjv_counts, order), prune=prune), rng, 1e-6)
    assert_normalized(modified_kneser_ney(truncated(kjv_counts, order), prune=prune, float64=True), rng, 1e-9)


def test_mkn_prune_list_repeats_last_threshold(kjv_counts):
    counts = truncated(kjv_counts, 4)
    short, full = modified_kneser_ney(counts, prune=[0, 1]), modified_kneser_ney(counts, prune=[0, 1, 1, 1])
    for a, b in zip(short.ngrams + short.log10_probs, full.ngrams + full.log10_probs, strict=True):
        np.testing.assert_array_equal(a, b)
    # Every kept bigram and above was seen more than once.
    for n in (2, 3, 4):
        assert all(kjv_counts.count([short.words[i] for i in row]) > 1 for row in short.ngrams[n - 1][:50])


def test_prune_thresholds_unigrams_only_for_methods_that_prune_them():
    assert prune_thresholds([1, 2], 4, unigrams=True).tolist() == [1, 2, 2, 2]
    assert prune_thresholds([0, 2], 3).tolist() == [0, 2, 2]
    with pytest.raises(InvalidArgumentError, match="unigram threshold"):
        prune_thresholds([1, 1], 3)
    with pytest.raises(InvalidArgumentError, match="non-decreasing"):
        prune_thresholds([2, 1], 3, unigrams=True)


def unigram_pruned_normalized(model, rng, tol):
    """Every distribution sums to 1 over the listed unigrams (pruned words have p = 0)."""
    listed = np.zeros(len(model.words), dtype=bool)
    listed[model.ngrams[0][:, 0]] = True
    listed[BOS_ID] = False
    for history in sampled_histories(model, rng):
        p = conditional_distribution(model, history)
        assert np.all(p[listed] > 0) and np.all(p[~listed] == 0)
        assert abs(p.sum() - 1) < tol, (history, p.sum())


@pytest.mark.parametrize("prune", [[1, 1], [1, 2, 3], [2, 2], [3]])
def test_mkn_unigram_pruning_as_lmplz(kjv_counts, prune):
    order = 4 if len(prune) == 3 else 3
    counts = truncated(kjv_counts, order)
    model = modified_kneser_ney(counts, prune=prune)
    raw = dict(zip(counts.ngrams[0][:, 0].tolist(), counts.counts[0].tolist(), strict=True))
    # Unigrams seen more than prune[0] times are kept, and <unk> (never seen), <s>, </s>.
    kept = {w for w, c in raw.items() if c > prune[0]} | {UNK_ID, BOS_ID, EOS_ID}
    assert set(model.ngrams[0][:, 0].tolist()) == kept
    # No kept n-gram contains a pruned word (its count is at most the word's).
    for n in range(2, order + 1):
        assert np.isin(model.ngrams[n - 1], list(kept)).all()
    # The uniform share is 1 / (kept unigrams but <s>), and pruned words' mass is in gamma().
    rng = np.random.default_rng(5)
    unigram_pruned_normalized(modified_kneser_ney(counts, prune=prune, float64=True), rng, 1e-9)
    unigram_pruned_normalized(model, rng, 1e-5)


def test_mkn_unigram_threshold_changes_the_model_not_only_the_unigrams(kjv_counts):
    counts = truncated(kjv_counts, 3)
    both, higher = modified_kneser_ney(counts, prune=[2, 2]), modified_kneser_ney(counts, prune=[0, 2])
    for n in (2, 3):
        np.testing.assert_array_equal(both.ngrams[n - 1], higher.ngrams[n - 1])
    assert len(both.ngrams[0]) < len(higher.ngrams[0])
    assert not np.array_equal(both.log10_probs[1], higher.log10_probs[1])  # through p(w) below


def test_specials_are_never_pruned_and_unseen_words_are():
    from speechdecode.lm.vocab import Vocabulary

    # 3 sentences, "the" seen 3 times: at threshold 3 every word goes but <unk>, <s> and </s>
    # (count 3; lmplz would drop it from the header and the uniform share yet print it, with
    # log10 p 0). "zzextra" (in the vocabulary, never seen) is pruned at threshold >= 1 and
    # kept (a zeroton) at 0.
    lines = ["the cat sat on the mat", "the dog sat", "a cat and a dog"]
    counts = count_sentences(lines, 2, vocab=Vocabulary(["zzextra"]))
    extra = counts.vocab.id("zzextra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        models = [modified_kneser_ney(counts, prune=[3]), modified_kneser_ney(counts, prune=[2])]
        models += [kneser_ney(counts, prune=[3]), kneser_ney(counts, prune=[2], interpolate=False)]
        zeroton = modified_kneser_ney(counts, prune=[0, 3])
    assert models[0].ngrams[0][:, 0].tolist() == [UNK_ID, BOS_ID, EOS_ID]
    assert models[1].ngrams[0][:, 0].tolist() == [UNK_ID, BOS_ID, EOS_ID, counts.vocab.id("the")]
    assert extra in zeroton.ngrams[0][:, 0].tolist()
    for model in models:
        p = conditional_distribution(model, [])
        assert abs(p.sum() - 1) < 1e-6 and p[extra] == 0 and p[EOS_ID] > 0


def test_mkn_tiny_unigram_pruned_file_as_lmplz(tmp_path):
    counts = count_sentences((DATA / "tiny.txt").read_text().splitlines(), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        write_arpa(tmp_path / "ours.arpa", modified_kneser_ney(counts, prune=[2, 2]))
    with gzip.open(DATA / "tiny.o2.prune22.arpa.gz", "rt", encoding="utf-8") as handle:
        assert (tmp_path / "ours.arpa").read_text() == handle.read()


@pytest.mark.parametrize("interpolate", [True, False])
def test_kn_unigram_pruning_normalized(kjv_counts, interpolate):
    model = kneser_ney(truncated(kjv_counts, 3), prune=[1, 1, 2], interpolate=interpolate)
    assert len(model.ngrams[0]) == 654
    unigram_pruned_normalized(model, np.random.default_rng(6), 1e-9)


def test_unk_in_the_data_is_a_word_and_unseen_vocabulary_words_are_zerotons():
    from speechdecode.lm.vocab import Vocabulary

    lines = (DATA / "kjv400.txt").read_text().splitlines()[:150]
    frequent = {w for w, c in Counter(w for line in lines for w in line.split()).items() if c > 2}
    vocab = Vocabulary(["zzextra"])
    counts = count_sentences(lines, 3, vocab=vocab, limit_vocab=frequent)
    rng = np.random.default_rng(3)
    for model in (modified_kneser_ney(counts, float64=True), kneser_ney(counts, interpolate=False)):
        assert_normalized(model, rng, 1e-9)
        unigram = dict(zip(model.ngrams[0][:, 0].tolist(), model.log10_probs[0], strict=True))
        extra = model.words.index("zzextra")
        assert unigram[UNK_ID] > unigram[extra] + 1  # <unk> was seen often; zzextra never


# --- kn: one discount, against a textbook implementation --------------------------------------


def textbook_kn(sentences, order, interpolate):
    """Kneser-Ney with D = t1 / (t1 + 2 t2) per order, written from the definitions with dicts.

    Returns {ngram tuple: (p(w | context), weight of the ngram as a context or None)}.
    """
    raw = Counter()
    for s in sentences:
        padded = ("<s>", *s.split(), "</s>")
        for n in range(1, order + 1):
            raw.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    left = defaultdict(set)
    for g in raw:
        if len(g) > 1:
            left[g[1:]].add(g[0])

    def value(g):
        if g == ("<s>",):
            return 0
        return raw[g] if len(g) == order or g[0] == "<s>" else len(left[g])

    vocab = sorted({g[0] for g in raw if len(g) == 1} | {"<unk>"})
    words = [w for w in vocab if w != "<s>"]
    discount = {}
    for n in range(1, order + 1):
        t = Counter(value(g) for g in raw if len(g) == n)
        discount[n] = t[1] / (t[1] + 2 * t[2])
    successors = defaultdict(dict)
    for g in raw:
        if value(g) > 0:
            successors[g[:-1]][g[-1]] = value(g)

    def gamma(ctx):
        succ = successors[ctx]
        return discount[len(ctx) + 1] * len(succ) / sum(succ.values())

    def u(w, ctx):
        succ = successors[ctx]
        return (succ[w] - discount[len(ctx) + 1]) / sum(succ.values()) if w in succ else 0.0

    def p(w, ctx):
        if not ctx:
            return u(w, ()) + gamma(()) / len(words)
        if ctx not in successors:
            return p(w, ctx[1:])
        if interpolate:
            return u(w, ctx) + gamma(ctx) * p(w, ctx[1:])
        if w in successors[ctx]:
            return u(w, ctx)
        seen = sum(p(x, ctx[1:]) for x in successors[ctx])
        return gamma(ctx) / (1 - seen) * p(w, ctx[1:])

    def weight(ctx):
        if ctx not in successors:
            return None
        if interpolate:
            return gamma(ctx)
        return gamma(ctx) / (1 - sum(p(x, ctx[1:]) for x in successors[ctx]))

    return {g: (p(g[-1], g[:-1]) if g != ("<s>",) else 1.0, weight(g)) for g in raw}


@pytest.mark.parametrize("interpolate", [True, False])
def test_kn_matches_textbook(interpolate):
    lines = (DATA / "kjv400.txt").read_text().splitlines()[:40]
    model = kneser_ney(count_sentences(lines, 3), interpolate=interpolate)
    expected = textbook_kn(lines, 3, interpolate)
    for n in (1, 2, 3):
        ours = table(model, n)
        assert {k for k in ours if k != ("<unk>",)} == {g for g in expected if len(g) == n}
        for g, (logp, logb) in ours.items():
            if g == ("<unk>",):
                continue
            p, b = expected[g]
            assert logp == pytest.approx(np.log10(p), abs=1e-12)
            if n < 3:
                assert logb == pytest.approx(0.0 if b is None else np.log10(b), abs=1e-12)


@pytest.mark.parametrize("prune", [None, [0, 1, 1]])
@pytest.mark.parametrize("interpolate", [True, False])
def test_kn_normalized(kjv_counts, interpolate, prune):
    model = kneser_ney(truncated(kjv_counts, 4), interpolate=interpolate, prune=prune)
    assert_normalized(model, np.random.default_rng(7), 1e-9)


def test_kn_backoff_differs_from_interpolated_only_on_seen_ngrams(kjv_counts):
    counts = truncated(kjv_counts, 3)
    interpolated, backoff = kneser_ney(counts), kneser_ney(counts, interpolate=False)
    np.testing.assert_array_equal(interpolated.ngrams[2], backoff.ngrams[2])
    # Seen trigrams lose the lower-order share in the back-off form.
    assert np.all(backoff.log10_probs[2] < interpolated.log10_probs[2])


def test_kn_fallback_warning():
    counts = count_sentences((DATA / "tiny.txt").read_text().splitlines(), 3)
    with pytest.warns(DiscountFallbackWarning, match=r"kn: .*order 3 \(no 3-grams with adjusted count 2; "
                      r"count-of-counts t1=14 t2=0\); using the fallback discount D=0.3"):  # fmt: skip
        model = kneser_ney(counts, discount_fallback=0.3)
    assert_normalized(model, np.random.default_rng(1), 1e-9)


def test_kn_backoff_context_followed_by_every_word_keeps_relative_frequencies():
    # After "a": a 1, b 1, <unk> 1 (z is outside the vocabulary), </s> 2 -- every word but <s>.
    counts = count_sentences(["a a", "a b", "a", "a z"], 2, limit_vocab={"a", "b"})
    model = kneser_ney(counts, interpolate=False)
    a = counts.vocab.id("a")
    p = conditional_distribution(model, [a])
    np.testing.assert_allclose(p[[UNK_ID, EOS_ID, a, counts.vocab.id("b")]], [0.2, 0.4, 0.2, 0.2], rtol=1e-12)
    assert model.backoffs[0][a] == 0
