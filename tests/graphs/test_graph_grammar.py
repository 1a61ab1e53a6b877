"""G from ARPA: costs against an independent tropical-LM oracle and kaldilm's arpa2fst; OOV handling."""

import math
import random

import kaldilm
import numpy as np
import pytest
import pywrapfst as fst
from graph_refs import TropicalLm, best_path, linear_fst, write_corpus_lm

from speechdecode.errors import ArpaFormatError, InvalidArgumentError
from speechdecode.graphs import word_table
from speechdecode.graphs.grammar import grammar_fst
from speechdecode.lm.arpa import ArpaModel, read_arpa, write_arpa
from speechdecode.lm.model import NgramModel

VOCAB = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "and", "it"]


def sentence_cost(G, words, sentence):
    """Cost of the best path of G reading ``sentence`` (back-off arcs read as epsilon)."""
    plain = G.copy().relabel_pairs(ipairs=[(words.id("#0"), 0)]).arcsort("ilabel")
    composed = fst.compose(linear_fst(words.encode(sentence)), plain)
    if composed.start() < 0 or composed.num_states() == 0:
        return math.inf
    distance = fst.shortestdistance(composed, reverse=True)
    return float(distance[composed.start()]) if composed.start() < len(distance) else math.inf


def random_sentences(rng, count, vocab=VOCAB):
    return [rng.choices(vocab, k=rng.randint(0, 6)) for _ in range(count)]


def with_random_back_offs(path, model, seed):
    """The model pruned as pruning tools leave it: half its top-order n-grams gone, and a back-off
    weight on every lower n-gram, also on those that no longer have an extension (such histories
    are not G states, but their weights still count on the way to a shorter one)."""
    rng = np.random.default_rng(seed)
    if model.order > 1:
        keep = rng.random(len(model.ngrams[-1])) < 0.5
        model.ngrams[-1], model.log10_probs[-1] = model.ngrams[-1][keep], model.log10_probs[-1][keep]
    for n in range(model.order - 1):
        model.backoffs[n] = -rng.random(len(model.ngrams[n])) * 0.5
    write_arpa(path, model)
    return model


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("back_offs", ["estimated", "random"])
def test_costs_are_the_minimum_over_back_off_paths(tmp_path, order, back_offs):
    path, model = write_corpus_lm(tmp_path, VOCAB, 60, order, seed=order)
    if back_offs == "random":
        model = with_random_back_offs(path, model, order)
    words = word_table([*VOCAB, "<unk>"])
    G = grammar_fst(path, words).fst
    oracle = TropicalLm(model)
    rng = random.Random(order)
    for sentence in random_sentences(rng, 40):
        cost = sentence_cost(G, words, sentence)
        assert cost == pytest.approx(oracle.cost(sentence), abs=1e-4)
        assert cost <= oracle.kenlm_cost(sentence) + 1e-4
    # The ARPA's own cost agrees with KenLM's scoring of the same file.
    lm = NgramModel.from_arpa(path)
    for sentence in random_sentences(rng, 10):
        assert oracle.kenlm_cost(sentence) == pytest.approx(-math.log(10) * lm.score(" ".join(sentence)), abs=1e-3)


@pytest.mark.parametrize("order", [2, 3])
def test_same_costs_as_kaldilm_arpa2fst(tmp_path, order):
    path, model = write_corpus_lm(tmp_path, VOCAB, 80, order, seed=10 + order)
    with_random_back_offs(path, model, order)
    words = word_table([*VOCAB, "<unk>"])
    words.write(tmp_path / "words.txt")
    ours = grammar_fst(path, words).fst
    kaldilm.arpa2fst(
        str(path), str(tmp_path / "G.fst"), disambig_symbol="#0", read_symbol_table=str(tmp_path / "words.txt")
    )
    theirs = fst.Fst.read(str(tmp_path / "G.fst"))
    rng = random.Random(order)
    for sentence in random_sentences(rng, 40):
        assert sentence_cost(ours, words, sentence) == pytest.approx(sentence_cost(theirs, words, sentence), abs=1e-4)
    # Kaldi keeps history states that only back off; ours skips them, so ours is no larger.
    assert ours.num_states() <= theirs.num_states()
    assert fst.randequivalent(
        ours.copy().relabel_pairs(ipairs=[(words.id("#0"), 0)]),
        theirs.copy().relabel_pairs(ipairs=[(words.id("#0"), 0)]),
        npath=200,
        delta=1e-3,
        seed=order,
        max_length=12,
    )


def test_model_kinds_give_the_same_fst(tmp_path):
    path, model = write_corpus_lm(tmp_path, VOCAB, 40, 3, seed=3)
    words = word_table([*VOCAB, "<unk>"])
    from_path = grammar_fst(path, words).fst
    assert fst.equal(from_path, grammar_fst(model, words).fst)
    assert fst.equal(from_path, grammar_fst(NgramModel.from_arpa(path), words).fst)
    assert from_path.start() != -1 and fst.equal(from_path, grammar_fst(read_arpa(path), words).fst)


def test_words_the_lexicon_lacks(tmp_path):
    path, model = write_corpus_lm(tmp_path, VOCAB, 60, 3, seed=5)
    words = word_table([w for w in VOCAB if w not in ("cat", "mat")])
    with pytest.raises(InvalidArgumentError, match=r"2 words the lexicon lacks: 'cat', 'mat'") as info:
        grammar_fst(path, words)  # <unk> is not among them: its n-grams are dropped anyway
    assert str(path) in str(info.value) and "allow_oov" in str(info.value)
    grammar = grammar_fst(path, words, allow_oov=True)
    assert grammar.oov_words == ["<unk>", "cat", "mat"]
    missing = {model.words.index(w) for w in ("<unk>", "cat", "mat")}
    expected = tuple(int(sum(any(w in missing for w in row) for row in table)) for table in model.ngrams)
    assert grammar.dropped_ngrams == expected and all(d > 0 for d in expected)
    # What is left is the same model without those words: sentences avoiding them keep their cost.
    oracle = TropicalLm(model)
    rng = random.Random(5)
    kept = [w for w in VOCAB if w not in ("cat", "mat")]
    for sentence in random_sentences(rng, 15, kept):
        assert sentence_cost(grammar.fst, words, sentence) == pytest.approx(oracle.cost(sentence), abs=1e-4)


def test_bad_arpa_and_bad_models(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\n-0.5\n\n\\end\\\n")
    with pytest.raises(ArpaFormatError, match=r"bad.arpa:6: "):
        grammar_fst(bad, word_table(["a"]))
    no_eos = tmp_path / "noeos.arpa"
    no_eos.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\n-0.5\ta\n\n\\end\\\n")
    with pytest.raises(ArpaFormatError, match=r"noeos.arpa:\d+: the 1-grams have no '</s>'"):
        grammar_fst(no_eos, word_table(["a"]))  # the reader refuses it, as NgramModel does
    model = ArpaModel(["<s>", "a"], [np.array([[0], [1]], dtype=np.int32)], [np.array([-1.0, -0.5])], [np.zeros(0)])
    with pytest.raises(InvalidArgumentError, match="without </s>"):
        grammar_fst(model, word_table(["a"]))
    with pytest.raises(InvalidArgumentError, match="lm"):
        grammar_fst(42, word_table(["a"]))


def test_unigram_and_sentence_end_weights(tmp_path):
    arpa = tmp_path / "u.arpa"
    arpa.write_text("\\data\\\nngram 1=4\n\n\\1-grams:\n-99\t<s>\n-0.5\t</s>\n-0.25\ta\n-0.75\tb\n\n\\end\\\n")
    words = word_table(["a", "b"])
    G = grammar_fst(arpa, words).fst
    ln10 = math.log(10)
    assert best_path(fst.compose(linear_fst(words.encode(["a", "b"])), G))[2] == pytest.approx(ln10 * 1.5, abs=1e-5)
    assert sentence_cost(G, words, []) == pytest.approx(ln10 * 0.5, abs=1e-5)
    assert G.num_states() == 1 and np.isclose(float(G.final(G.start())), ln10 * 0.5)


def test_unk_ngrams_are_dropped_without_allow_oov(tmp_path):
    # Every lmplz model has <unk>; a lexicon has no pronunciation for it, so L o G could never use
    # its n-grams: they are dropped and counted, and the rest of G is the model's.
    path, model = write_corpus_lm(tmp_path, VOCAB, 60, 3, seed=6)
    words = word_table(VOCAB)
    grammar = grammar_fst(path, words)
    assert grammar.oov_words == ["<unk>"]
    unk = model.words.index("<unk>")
    expected = tuple(int((table == unk).any(axis=1).sum()) for table in model.ngrams)
    assert grammar.dropped_ngrams == expected and expected[0] == 1
    assert fst.equal(grammar.fst, grammar_fst(path, words, allow_oov=True).fst)
    oracle = TropicalLm(model)
    for sentence in random_sentences(random.Random(6), 10, VOCAB):
        assert sentence_cost(grammar.fst, words, sentence) == pytest.approx(oracle.cost(sentence), abs=1e-4)
