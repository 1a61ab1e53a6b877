"""The method registry, option checking, and conditional_distribution's back-off semantics."""

import math
from pathlib import Path

import numpy as np
import pytest

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.lm.arpa import ArpaModel
from speechdecode.lm.counts import NgramCounts, count_sentences
from speechdecode.lm.estimate import METHODS, estimate, method_options
from speechdecode.lm.methods._common import conditional_distribution
from speechdecode.lm.methods.kneser_ney import modified_kneser_ney
from speechdecode.lm.vocab import BOS_ID

DATA = Path(__file__).parent.parent / "data" / "lmplz"


@pytest.fixture(scope="module")
def counts():
    return count_sentences((DATA / "kjv400.txt").read_text().splitlines()[:150], 3)


def test_default_method_is_mkn(counts):
    ours, direct = estimate(counts), modified_kneser_ney(counts)
    tables = zip(
        ours.ngrams + ours.log10_probs + ours.backoffs,
        direct.ngrams + direct.log10_probs + direct.backoffs,
        strict=True,
    )
    for a, b in tables:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_keeps_the_contract(counts, method):
    assert "prune" in method_options(method)
    # jelinek-mercer fits its lambdas on held-out text: verses after the training ones
    heldout = (DATA / "kjv400.txt").read_text().splitlines()[150:200]
    model = estimate(counts, method, **({"heldout": heldout} if method == "jelinek-mercer" else {}))
    assert isinstance(model, ArpaModel) and model.order == counts.order
    assert model.words == counts.vocab.words
    assert model.log10_probs[0][BOS_ID] == 0  # <s>: log10 1, as lmplz writes it
    for n in range(2, model.order + 1):
        assert not np.any(model.ngrams[n - 1][:, 1:] == BOS_ID)  # no <s> padding inside n-grams
    for history in ([], [3], [3, 4], [4, 3, 5, 6]):
        assert abs(conditional_distribution(model, history).sum() - 1) < 1e-6


def test_unknown_method_lists_the_known_ones(counts):
    with pytest.raises(
        InvalidArgumentError,
        match="method: expected one of absolute, add-k, jelinek-mercer, katz, kn, mkn, mle, witten-bell",
    ) as info:
        estimate(counts, "good-turing")
    assert "'good-turing'" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="method"):
        estimate(counts, ["mkn"])


def test_option_the_method_does_not_take_lists_those_it_takes(counts):
    with pytest.raises(InvalidArgumentError, match=r"options of method 'mkn': discount_fallback, float64, prune, "
                       r"got interpolate"):  # fmt: skip
        estimate(counts, "mkn", interpolate=False)
    with pytest.raises(InvalidArgumentError, match=r"options of method 'kn': .*got float64, order"):
        estimate(counts, "kn", order=2, float64=True)


@pytest.mark.parametrize(
    ("method", "options", "argument"),
    [
        ("mkn", {"prune": [0, 2, 1]}, "non-decreasing"),
        ("absolute", {"prune": [1, 1]}, "unigram threshold"),
        ("mkn", {"prune": [0, 1, 1, 1]}, "at most 3"),
        ("mkn", {"prune": [0, -1]}, "integer thresholds >= 0"),
        ("kn", {"prune": [0, 1.5]}, "integer thresholds >= 0"),
        ("kn", {"prune": [0, True]}, "integer thresholds >= 0"),
        ("absolute", {"prune": "0 1"}, "count thresholds"),
        ("absolute", {"prune": []}, "count thresholds"),
        ("mkn", {"discount_fallback": (0.5, 2.5)}, r"D2 in \[0, 2\]"),
        ("mkn", {"discount_fallback": (0.5, 1, 1.5, 2)}, "1 to 3 discounts"),
        ("mkn", {"discount_fallback": -0.1}, r"D1 in \[0, 1\]"),
        ("mkn", {"discount_fallback": "0.5"}, "1 to 3 discounts"),
        ("mkn", {"float64": 1}, "float64: expected True or False"),
        ("kn", {"interpolate": "no"}, "interpolate: expected True or False"),
        ("absolute", {"interpolate": 1}, "interpolate: expected True or False"),
        ("witten-bell", {"interpolate": None}, "interpolate: expected True or False"),
        ("kn", {"discount_fallback": 0}, r"discount_fallback: expected a discount in \(0, 1\]"),
        ("kn", {"discount_fallback": (0.5,)}, r"discount_fallback: expected a discount in \(0, 1\]"),
    ],
)
def test_bad_option_values_are_named(counts, method, options, argument):
    with pytest.raises(InvalidArgumentError, match=argument):
        estimate(counts, method, **options)


def test_bad_counts(counts):
    with pytest.raises(InvalidArgumentError, match="counts: expected an NgramCounts"):
        estimate({"a b": 1})
    with pytest.raises(InvalidArgumentError, match="at least one sentence"):
        estimate(count_sentences([], 2), "kn")
    unsorted = NgramCounts(counts.vocab, counts.ngrams[:2], [counts.counts[0], counts.counts[1]])
    unsorted.ngrams = [counts.ngrams[0], counts.ngrams[1][::-1].copy()]
    with pytest.raises(InvalidArgumentError, match="sorted"):
        estimate(unsorted, "absolute")
    missing = NgramCounts(
        counts.vocab, [counts.ngrams[0], counts.ngrams[1][1:]], [counts.counts[0], counts.counts[1][1:]]
    )
    missing.ngrams.append(counts.ngrams[2])
    missing.counts.append(counts.counts[2])
    with pytest.raises(InvalidArgumentError, match="3-grams whose first and last 2 words are 2-grams"):
        estimate(missing, "mkn", backend="reference")
    with pytest.raises(
        InvalidArgumentError, match=r"ngrams\[2\]: expected every 3-gram's first 2 words to be a 2-gram"
    ):
        estimate(missing, "mkn", backend="native")


def hand_model() -> ArpaModel:
    """Words <unk> <s> </s> a b; bigrams "<s> a", "a b", "a </s>", "b a"."""
    words = ["<unk>", "<s>", "</s>", "a", "b"]
    unigrams = np.arange(5, dtype=np.int32)[:, None]
    uni_p = np.log10([0.1, 1.0, 0.3, 0.4, 0.2])
    uni_b = np.array([0.0, math.log10(2 / 3), 0.0, math.log10(0.25), math.log10(0.8)])
    bigrams = np.array([[1, 3], [3, 4], [3, 2], [4, 3]], dtype=np.int32)
    bi_p = np.log10([0.6, 0.5, 0.375, 0.52])
    return ArpaModel(words, [unigrams, bigrams], [uni_p, bi_p], [uni_b, np.zeros(0)])


def test_conditional_distribution_follows_backoff_by_hand():
    model = hand_model()
    np.testing.assert_allclose(conditional_distribution(model, []), [0.1, 0, 0.3, 0.4, 0.2])
    # After "a": "a b" and "a </s>" listed; <unk> and "a" back off with weight 0.25.
    np.testing.assert_allclose(conditional_distribution(model, [3]), [0.025, 0, 0.375, 0.1, 0.5])
    # After "b": "b a" listed, the rest backs off with 0.8; after "<s>": "<s> a", then 2/3.
    np.testing.assert_allclose(conditional_distribution(model, [4]), [0.08, 0, 0.24, 0.52, 0.16])
    np.testing.assert_allclose(conditional_distribution(model, [1]), [1 / 15, 0, 0.2, 0.6, 2 / 15])
    # Only the last order-1 words matter; an unlisted context (</s>) backs off with weight 1.
    np.testing.assert_allclose(conditional_distribution(model, [4, 4, 3]), conditional_distribution(model, [3]))
    np.testing.assert_allclose(conditional_distribution(model, [2]), conditional_distribution(model, []))


def test_conditional_distribution_checks_history():
    model = hand_model()
    with pytest.raises(TensorError, match=r"word ids in \[0, 5\)"):
        conditional_distribution(model, [5])
    with pytest.raises(TensorError, match="integer word ids"):
        conditional_distribution(model, [0.5])
    with pytest.raises(TensorError, match="1-D"):
        conditional_distribution(model, [[3]])


@pytest.mark.parametrize("options", [{}, {"prune": [0, 1, 1]}, {"float64": True}])
def test_native_and_reference_mkn_agree(counts, options):
    native = estimate(counts, "mkn", backend="native", **options)
    reference = estimate(counts, "mkn", backend="reference", **options)
    for a, b in zip(native.ngrams, reference.ngrams, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(native.log10_probs + native.backoffs, reference.log10_probs + reference.backoffs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 if options.get("float64") else 0)


def test_backend_choice(counts, monkeypatch):
    import importlib

    module = importlib.import_module("speechdecode.lm.estimate")

    calls = []
    monkeypatch.setitem(module.NATIVE, "mkn", lambda c, **o: calls.append("native") or module.METHODS["mkn"](c, **o))
    estimate(counts)
    assert calls == ["native"]  # the default when the extension is built
    monkeypatch.setenv("SPEECHDECODE_BACKEND", "reference")
    estimate(counts)
    assert calls == ["native"]
    with pytest.raises(InvalidArgumentError, match="backend: expected one of"):
        estimate(counts, backend="gpu")
