"""The native steps of TLG compilation (csrc/graphs/fst_ops.h) against OpenFst's algorithms: the
encoded minimization and T∘LG give isomorphic FSTs on random lexicons and n-gram LMs of awkward
shapes (homophones, shared prefixes, words that are prefixes of others, several pronunciations,
back-off-only states) and on random deterministic transducers with cycles."""

import random
import re

import numpy as np
import pytest
import pywrapfst as fst
from graph_refs import openfst_lg, write_corpus_lm

from speechdecode.errors import TensorError
from speechdecode.graphs import Lexicon
from speechdecode.graphs.compile import compile_graph, compose_ctc, compose_lg, compose_tlg, minimize_encoded
from speechdecode.graphs.fst_io import fst_from_arrays, fst_from_csr, fst_to_arrays
from speechdecode.graphs.grammar import grammar_fst
from speechdecode.graphs.lexicon_fst import disambiguate, lexicon_fst
from speechdecode.graphs.symbols import token_table, word_table
from speechdecode.graphs.topology import ctc_topology
from speechdecode.testing.corpora import kjv_sentences


def random_lexicon(rng: random.Random, num_words: int, units: list[str]) -> Lexicon:
    """Words with homophones, pronunciations extending or cut from others, and second readings."""
    lexicon, prons = Lexicon(), []
    for i in range(num_words):
        word = f"w{i}"
        for _ in range(rng.choice([1, 1, 1, 2])):
            r = rng.random()
            if prons and r < 0.2:
                pron = rng.choice(prons)  # a homophone
            elif prons and r < 0.4:
                pron = rng.choice(prons) + tuple(rng.choices(units, k=rng.randint(1, 2)))  # extends another
            elif prons and r < 0.5:
                other = rng.choice(prons)
                pron = other[: max(1, len(other) - 1)]  # a prefix of another
            else:
                pron = tuple(rng.choices(units, k=rng.randint(1, 4)))
            if pron not in {p.tokens for p in lexicon.get(word, ())}:
                lexicon.add(word, pron)
                prons.append(pron)
    return lexicon


def random_graphs(tmp_path, seed: int, blank_last: bool = False):
    """(acoustic units with the blank, blank index, #k count, L, G) for a random lexicon and LM; the
    LM also has a word the lexicon lacks, so dropping its n-grams leaves back-off-only states."""
    rng = random.Random(seed)
    phones = [f"p{i}" for i in range(rng.randint(2, 6))]
    lexicon = random_lexicon(rng, rng.randint(3, 14), phones)
    arpa, _ = write_corpus_lm(tmp_path, [*lexicon, "oov"], rng.randint(5, 60), 2 + seed % 3, seed)
    units = [*phones, "<blk>"] if blank_last else ["<blk>", *phones]
    num_disambig = disambiguate(lexicon)[1] + 1
    tokens, words = token_table(units, num_disambig), word_table(lexicon)
    L = lexicon_fst(lexicon, tokens, words, blank="<blk>")
    G = grammar_fst(arpa, words, allow_oov=True).fst
    return units, units.index("<blk>"), num_disambig, L, G


@pytest.mark.parametrize("seed", range(16))
def test_lg_is_isomorphic_to_openfsts(tmp_path, seed):
    _, _, _, L, G = random_graphs(tmp_path, seed)
    ours, theirs = compose_lg(L, G), openfst_lg(L, G)
    assert ours.num_states() == theirs.num_states() > 1
    assert fst.isomorphic(ours, theirs, delta=0.0)


@pytest.mark.parametrize("topology", ["compact", "standard"])
@pytest.mark.parametrize("seed", range(10))
def test_tlg_is_isomorphic_to_openfsts(tmp_path, seed, topology):
    units, blank, num_disambig, L, G = random_graphs(tmp_path, 100 + seed, blank_last=seed % 2 == 1)
    LG = openfst_lg(L, G)
    # One #k loop fewer than LG's labels need (seeds 0, 3, ...): the arcs T cannot write are dropped,
    # and the states they alone kept alive with them.
    loops = num_disambig - (seed % 3 == 0 and num_disambig > 1)
    theirs = compose_tlg(ctc_topology(len(units), blank, loops, topology), LG)
    ours = fst_from_csr(compose_ctc(fst_to_arrays(LG), len(units), blank, loops, topology))
    assert ours.num_states() == theirs.num_states() > 1
    assert fst.isomorphic(ours, theirs, delta=0.0)


def random_deterministic(rng: np.random.Generator):
    """A deterministic transducer with cycles, few distinct labels, weights and final weights (so
    that many states are equivalent), and some states off every successful path."""
    n = int(rng.integers(1, 40))
    triples = [(i, o, w) for i in (1, 2, 3) for o in (0, 5) for w in (0.0, 0.5)]
    src, ilab, olab, wt, dst = [], [], [], [], []
    for s in range(n):
        for k in rng.choice(len(triples), size=int(rng.integers(0, 4)), replace=False):
            i, o, w = triples[k]
            src.append(s), ilab.append(i), olab.append(o), wt.append(w), dst.append(int(rng.integers(0, n)))
    finals = rng.choice([np.inf, np.inf, 0.0, 1.25], size=n)
    return fst_from_arrays(0, finals, src, ilab, olab, np.asarray(wt, np.float32), dst)


@pytest.mark.parametrize("seed", range(40))
def test_minimize_random_deterministic_transducers(seed):
    f = random_deterministic(np.random.default_rng(seed))
    theirs = f.copy()
    mapper = fst.EncodeMapper(theirs.arc_type(), encode_labels=True, encode_weights=True)
    theirs.encode(mapper)
    theirs.minimize()
    theirs.decode(mapper)
    ours = fst_from_csr(minimize_encoded(fst_to_arrays(f)))
    assert ours.num_states() == theirs.num_states()
    assert fst.isomorphic(ours, theirs, delta=0.0)


def test_minimize_refuses_a_nondeterministic_fst():
    f = fst_from_arrays(0, [np.inf, 0.0, 0.0], [0, 0], [1, 1], [2, 2], [0.5, 0.5], [1, 2])
    with pytest.raises(TensorError, match=r"fst: expected a deterministic FST.*state 0 with two arcs 1:2/0\.5"):
        minimize_encoded(fst_to_arrays(f))


def test_compose_ctc_refuses_input_epsilons_and_bad_arguments():
    lg = fst_to_arrays(fst_from_arrays(0, [np.inf, 0.0], [0], [0], [1], [0.0], [1]))
    with pytest.raises(TensorError, match="lg: expected an FST without input epsilons"):
        compose_ctc(lg, 3, 0, 1, "compact")
    lg.ilabels[:] = 2
    with pytest.raises(TensorError, match=r"blank: expected an output index in \[0, 3\), got 3"):
        compose_ctc(lg, 3, 3, 1, "compact")
    with pytest.raises(TensorError, match="topology: expected one of compact, standard, got 'dense'"):
        compose_ctc(lg, 3, 0, 1, "dense")
    lg.nextstates[:] = 2
    with pytest.raises(TensorError, match=r"lg\.nextstates: expected states in \[0, 2\), got 2 at \[0\]"):
        compose_ctc(lg, 3, 0, 1, "compact")


def test_silence_lg_falls_back_to_openfsts_composition(tmp_path):
    """Optional silence gives LG input epsilons; compile_graph then composes with OpenFst."""
    phones = ["p0", "p1", "p2"]
    lexicon = random_lexicon(random.Random(7), 6, phones)
    arpa, _ = write_corpus_lm(tmp_path, list(lexicon), 30, 3, 7)
    units = ["<blk>", *phones, "sil"]
    graph = compile_graph(units, lexicon, arpa, silence="sil", keep_lg=True)
    assert np.any(fst_to_arrays(graph.lg).ilabels == 0)
    assert [s.name for s in graph.steps][-2:] == ["compose(T,LG)", "arcsort(TLG)"]
    T = ctc_topology(len(units), 0, len(graph.tokens) - len(units) - 1, "compact")
    assert fst.isomorphic(graph.tlg, compose_tlg(T, graph.lg), delta=0.0)


CMUDICT = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"  # Debian's pocketsphinx-en-us (make system-deps)


@pytest.mark.parametrize("topology", ["compact", "standard"])
def test_cmu_lexicon_and_kjv_lm_give_openfsts_graphs(tmp_path, topology):
    """The real case, bounded: the CMU dictionary on the vocabulary of 400 KJV verses, a 3-gram of them."""
    verses = kjv_sentences()[:400]
    vocab = {w for v in verses for w in v.split()}
    lexicon = Lexicon()
    with open(CMUDICT, encoding="utf-8") as handle:
        for line in handle:
            word, *pron = line.split() or [""]
            word = re.sub(r"\(\d+\)$", "", word)
            if word in vocab and tuple(pron) not in {p.tokens for p in lexicon.get(word, ())}:
                lexicon.add(word, pron)
    units = ["<blk>", *sorted({t for _, pron in lexicon.entries() for t in pron.tokens})]
    arpa, _ = write_corpus_lm(tmp_path, [], 0, 3, 0, lines=verses)
    graph = compile_graph(units, lexicon, arpa, topology=topology, allow_oov=True, keep_lg=True)
    L = lexicon_fst(lexicon, graph.tokens, graph.words, blank="<blk>")
    LG = openfst_lg(L, grammar_fst(arpa, graph.words, allow_oov=True).fst)
    assert graph.lg.num_states() == LG.num_states() > 1000
    assert fst.isomorphic(graph.lg, LG, delta=0.0)
    T = ctc_topology(len(units), 0, len(graph.tokens) - len(units) - 1, topology)
    assert fst.isomorphic(graph.tlg, compose_tlg(T, LG), delta=0.0)
