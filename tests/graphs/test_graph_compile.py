"""TLG compilation: equivalence with the classic recipe, the path check, size guards, bad input, outputs."""

import math
import os
import random
import subprocess

import kaldifst
import kaldilm
import numpy as np
import pytest
import pywrapfst as fst
from graph_refs import TropicalLm, all_paths, best_path, linear_fst, openfst_lg, write_corpus_lm

from speechdecode.errors import ArpaFormatError, InputFileError, InvalidArgumentError
from speechdecode.graphs import Lexicon, char_lexicon, char_tokens, load_graph
from speechdecode.graphs.compile import (
    GraphCompileError,
    _estimate_lg_arcs,
    _estimate_tlg_arcs,
    compile_graph,
    compose_lg,
    compose_tlg,
    num_arcs,
)
from speechdecode.graphs.export import export_npz
from speechdecode.graphs.lexicon_fst import lexicon_fst
from speechdecode.graphs.topology import ctc_topology
from speechdecode.lm.generate import generate
from speechdecode.lm.model import NgramModel

VOCAB = ["the", "a", "cat", "cap", "at", "sat", "ran", "on", "mat", "and", "tan", "t"]
# A phone lexicon with homophones (mat / sat, t / tea, cat / kat), a prefix (on / and) and words with
# two pronunciations, so disambiguation symbols #1.. are needed; "kat" and "tea" are not in the LM.
PHONES = {
    "the": [("dh", "ah")],
    "a": [("ah",), ("ey",)],
    "cat": [("k", "ae", "t")],
    "kat": [("k", "ae", "t")],
    "cap": [("k", "ae", "p")],
    "at": [("ae", "t")],
    "sat": [("s", "ae", "t")],
    "ran": [("r", "ae", "n")],
    "on": [("aa", "n")],
    "mat": [("m", "ae", "t"), ("s", "ae", "t")],
    "and": [("aa", "n", "d")],
    "tan": [("t", "ae", "n")],
    "t": [("t", "iy")],
    "tea": [("t", "iy")],
    "<unk>": [("spn",)],
}
PHONE_UNITS = sorted({p for prons in PHONES.values() for pron in prons for p in pron} | {"sil"})


def phone_lexicon(with_probs=False):
    lex = Lexicon()
    for word, prons in PHONES.items():
        for i, pron in enumerate(prons):
            lex.add(word, pron, (1.0 if i == 0 else 0.5) if with_probs else None)
    return lex


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    return write_corpus_lm(tmp, VOCAB, 150, 3, seed=7)


def classic_tlg(tmp_path, lexicon, units, arpa, topology, blank, graph):
    """The classic recipe: kaldilm's arpa2fst for G, then the same steps, all OpenFst's."""
    graph.words.write(tmp_path / "words.txt")
    kaldilm.arpa2fst(
        str(arpa), str(tmp_path / "G.fst"), disambig_symbol="#0", read_symbol_table=str(tmp_path / "words.txt")
    )
    G = fst.Fst.read(str(tmp_path / "G.fst"))
    L = lexicon_fst(lexicon, graph.tokens, graph.words, blank=units[blank])
    LG = openfst_lg(L, G)
    num_disambig = len(graph.tokens) - len(units) - 1
    return LG, compose_tlg(ctc_topology(len(units), blank, num_disambig, topology), LG)


@pytest.mark.parametrize("topology", ["standard", "compact"])
def test_equivalent_to_the_classic_recipe_small(tmp_path, small_lm, topology):
    arpa, _ = small_lm
    lexicon = phone_lexicon()
    units = ["<blk>", *PHONE_UNITS]
    graph = compile_graph(units, lexicon, arpa, topology=topology, keep_lg=True)
    LG, TLG = classic_tlg(tmp_path, lexicon, units, arpa, topology, 0, graph)
    assert graph.stats()["tlg_arcs"] == num_arcs(graph.tlg) <= num_arcs(TLG)
    assert fst.randequivalent(graph.tlg, TLG, npath=300, delta=1e-3, seed=1, max_length=30)
    back_off = [(graph.tokens.id("#0"), 0)]
    ours_lg = graph.lg.copy().relabel_pairs(ipairs=back_off)
    theirs_lg = LG.copy().relabel_pairs(ipairs=back_off)
    assert fst.randequivalent(ours_lg, theirs_lg, npath=300, delta=1e-3, seed=2, max_length=30)


def test_equivalent_to_the_classic_recipe_medium(tmp_path):
    from speechdecode.testing.corpora import kjv_sentences

    verses = kjv_sentences()[:300]
    vocab = sorted({w for v in verses for w in v.split()})
    arpa, _ = write_corpus_lm(tmp_path, vocab, len(verses), 3, seed=11, name="medium.arpa", lines=verses)
    lexicon = char_lexicon(vocab)
    units = char_tokens(vocab).symbols
    graph = compile_graph(units, lexicon, arpa, topology="compact", allow_oov=True)
    assert graph.oov_words == ["<unk>"]
    _, TLG = classic_tlg(tmp_path, lexicon, units, arpa, "compact", 0, graph)
    assert num_arcs(graph.tlg) <= num_arcs(TLG)
    assert fst.randequivalent(graph.tlg, TLG, npath=200, delta=1e-3, seed=3, max_length=60)


def frames_for(tokens_ids, blank, rng, repeats):
    """A CTC frame sequence for ``tokens_ids``: random blanks, a blank between equal neighbours,
    and (with ``repeats``) each token held for 1-2 frames."""
    frames, previous = [], None
    for t in tokens_ids:
        gap = rng.randint(0, 2)
        if t == previous:
            gap = max(gap, 1)
        frames += [blank] * gap + [t] * (rng.randint(1, 2) if repeats else 1)
        previous = t
    return frames + [blank] * rng.randint(0, 1)


def segmentations(token_seq, prons):
    """Every (word, pronunciation cost) sequence whose pronunciations spell ``token_seq``."""
    if not token_seq:
        return [[]]
    out = []
    for pron, readings in prons.items():
        if tuple(token_seq[: len(pron)]) == pron:
            for rest in segmentations(token_seq[len(pron) :], prons):
                out += [[reading, *rest] for reading in readings]
    return out


@pytest.mark.parametrize("topology", ["standard", "compact"])
@pytest.mark.parametrize("blank_last", [False, True])
@pytest.mark.parametrize("units", ["phone", "char"])
def test_best_path_is_the_sentence_at_its_lm_cost(tmp_path, small_lm, topology, blank_last, units):
    arpa, model = small_lm
    if units == "phone":
        lexicon = phone_lexicon(with_probs=True)
        symbols = PHONE_UNITS
    else:
        lexicon = char_lexicon([*VOCAB, "<unk>"])
        symbols = char_tokens([*VOCAB, "<unk>"]).symbols[1:]
    graph = compile_graph(symbols, lexicon, arpa, topology=topology, blank_last=blank_last)
    units_list = graph.tokens.symbols[1 : graph.num_tokens + 1]
    assert units_list[graph.blank] == "<blk>" and graph.blank == (graph.num_tokens - 1 if blank_last else 0)
    prons: dict[tuple[str, ...], list[tuple[str, float]]] = {}
    for word, pron in lexicon.entries():
        prons.setdefault(pron.tokens, []).append((word, -math.log(pron.prob) if pron.prob else 0.0))
    oracle = TropicalLm(model)
    lm = NgramModel.from_arpa(arpa)
    rng = random.Random(hash((topology, blank_last, units)) % 1000)
    tlg = graph.tlg
    for sample in generate(lm, num=12, max_words=6, seed=rng.randint(0, 99)):
        sentence = sample.words
        token_seq = [t for w in sentence for t in lexicon[w][0].tokens]
        frames = frames_for([graph.tokens.id(t) for t in token_seq], graph.blank + 1, rng, topology == "standard")
        inputs, outputs, cost = best_path(fst.compose(linear_fst(frames), tlg))
        decoded = graph.words.decode(outputs)
        readings = segmentations(token_seq, prons)
        expected = min(oracle.cost([w for w, _ in r]) + sum(c for _, c in r) for r in readings)
        assert cost == pytest.approx(expected, abs=2e-3)
        if units == "char":  # spelling with a word boundary is unambiguous
            assert decoded == sentence
        else:
            assert any(decoded == [w for w, _ in r] for r in readings)
        assert inputs == tuple(f for f in frames if f)


def test_optional_silence_costs(tmp_path, small_lm):
    arpa, model = small_lm
    graph = compile_graph(PHONE_UNITS, phone_lexicon(), arpa, topology="compact", silence="sil", silence_prob=0.2)
    oracle = TropicalLm(model)
    sil = graph.tokens.id("sil")
    for sentence, silences in [(["the", "cat", "ran"], [True, False, True, True]), (["tan"], [False, False])]:
        tokens = []
        for i, word in enumerate(sentence):
            tokens += [sil] * silences[i] + graph.tokens.encode(PHONES[word][0])
        tokens += [sil] * silences[-1]
        frames = [t for tok in tokens for t in (tok, 1)]
        _, outputs, cost = best_path(fst.compose(linear_fst(frames), graph.tlg))
        extra = sum(-math.log(0.2) if s else -math.log(0.8) for s in silences)
        assert graph.words.decode(outputs) == sentence
        assert cost == pytest.approx(oracle.cost(sentence) + extra, abs=2e-3)


def test_size_estimates_match_the_compositions(small_lm):
    arpa, _ = small_lm
    lexicon = phone_lexicon()
    graph = compile_graph(PHONE_UNITS, lexicon, arpa, topology="compact", keep_lg=True)
    steps = {s.name: s for s in graph.steps}
    G = compile_graph.__globals__["grammar_fst"](arpa, graph.words).fst
    assert _estimate_lg_arcs(lexicon, graph.words, G, silence=False) == steps["compose(L,G)"].arcs
    assert _estimate_tlg_arcs(graph.lg, graph.num_tokens, "compact") == steps["compose(T,LG)"].arcs
    standard = compile_graph(PHONE_UNITS, lexicon, arpa, topology="standard")
    estimate = _estimate_tlg_arcs(graph.lg, graph.num_tokens, "standard")
    assert 0.8 * num_arcs(standard.tlg) <= estimate <= num_arcs(standard.tlg)
    with pytest.raises(GraphCompileError, match=r"L∘G would have about [\d,]+ arcs, more than max_arcs=100"):
        compile_graph(PHONE_UNITS, lexicon, arpa, max_arcs=100)
    limit = max(steps[name].arcs for name in ("compose(L,G)", "determinize_log", "minimize_encoded"))
    assert limit < steps["compose(T,LG)"].arcs
    with pytest.raises(GraphCompileError, match=f"TLG would have about [\\d,]+ arcs, more than max_arcs={limit:,}"):
        compile_graph(PHONE_UNITS, lexicon, arpa, max_arcs=limit)


def test_non_determinizable_lg_is_explained(small_lm):
    arpa, _ = small_lm
    lexicon = phone_lexicon()
    graph = compile_graph(PHONE_UNITS, lexicon, arpa)
    G = compile_graph.__globals__["grammar_fst"](arpa, graph.words).fst
    L = lexicon_fst(lexicon, graph.tokens, graph.words, disambig=False)
    with pytest.raises(GraphCompileError, match=r"not determinizable.*disambiguation symbols"):
        compose_lg(L, G)


def test_bad_inputs_name_the_problem(tmp_path, small_lm):
    arpa, _ = small_lm
    lexicon_path = tmp_path / "lexicon.txt"
    lexicon_path.write_text("the dh ah\ncat k ae t\nsat s ae zz\n")
    with pytest.raises(InputFileError, match="token 'zz' of word 'sat' is not in the token table") as info:
        compile_graph(PHONE_UNITS, lexicon_path, arpa)
    assert str(info.value).startswith(f"{lexicon_path}:3: ")
    lexicon_path.write_text("the dh ah\ncat\n")
    with pytest.raises(InputFileError, match=r"lexicon.txt:2: empty pronunciation for word 'cat'"):
        compile_graph(PHONE_UNITS, lexicon_path, arpa)
    lexicon_path.write_text("the dh ah\ncat k ae t\nthe dh ah\n")
    with pytest.raises(InputFileError, match=r"lexicon.txt:3: word 'the' repeats the pronunciation of line 1"):
        compile_graph(PHONE_UNITS, lexicon_path, arpa)
    lexicon_path.write_text("the dh ah\ncat k ae t\n")
    with pytest.raises(InvalidArgumentError, match="words the lexicon lacks: 'a', 'and'"):  # <unk>: dropped
        compile_graph(PHONE_UNITS, lexicon_path, arpa)
    graph = compile_graph(PHONE_UNITS, lexicon_path, arpa, allow_oov=True)
    assert "sat" in graph.oov_words and sum(graph.dropped_ngrams) > 0
    broken = tmp_path / "broken.arpa"
    broken.write_text("\\data\\\nngram 1=x\n")
    with pytest.raises(ArpaFormatError, match=r"broken\.arpa:2: "):
        compile_graph(PHONE_UNITS, lexicon_path, broken)
    with pytest.raises(InvalidArgumentError, match="topology"):
        compile_graph(PHONE_UNITS, lexicon_path, arpa, topology="ring")
    with pytest.raises(InvalidArgumentError, match="max_arcs"):
        compile_graph(PHONE_UNITS, lexicon_path, arpa, max_arcs=0)


def test_outputs_and_atomic_writes(tmp_path, small_lm, monkeypatch):
    arpa, _ = small_lm
    graph = compile_graph(PHONE_UNITS, phone_lexicon(), arpa, topology="standard", blank_last=True, keep_lg=True)
    out = tmp_path / "graph"
    written = graph.write(out)
    assert sorted(os.path.basename(p) for p in written) == ["LG.fst", "TLG.fst", "TLG.npz", "tokens.txt", "words.txt"]
    assert sorted(os.listdir(tmp_path)) == ["graph"]  # no staging directory left behind
    info = subprocess.run(["fstinfo", str(out / "TLG.fst")], capture_output=True, text=True, check=True).stdout
    fields = dict(line.rsplit(None, 1) for line in info.splitlines() if line.strip())
    assert int(fields["# of states"]) == graph.tlg.num_states()
    assert int(fields["# of arcs"]) == num_arcs(graph.tlg)
    k = kaldifst.StdVectorFst.read(str(out / "TLG.fst"))
    assert k.num_states == graph.tlg.num_states()
    assert (out / "tokens.txt").read_text().splitlines()[0] == "<eps> 0"
    assert (out / "tokens.txt").read_text().splitlines()[graph.num_tokens] == f"<blk> {graph.num_tokens}"
    # npz: the FST's arcs, state by state, stably sorted by input label.
    loaded = load_graph(out)
    assert (loaded.num_tokens, loaded.blank, loaded.topology) == (graph.num_tokens, graph.num_tokens - 1, "standard")
    assert loaded.start == graph.tlg.start()
    for s in graph.tlg.states():
        arcs = [(a.ilabel, a.olabel, float(a.weight), a.nextstate) for a in graph.tlg.arcs(s)]
        arcs.sort(key=lambda a: a[0])
        lo, hi = loaded.arc_offsets[s], loaded.arc_offsets[s + 1]
        got = list(
            zip(
                loaded.ilabels[lo:hi].tolist(),
                loaded.olabels[lo:hi].tolist(),
                loaded.weights[lo:hi].tolist(),
                loaded.nextstates[lo:hi].tolist(),
                strict=True,
            )
        )
        assert got == [(i, o, pytest.approx(w), n) for i, o, w, n in arcs]
        assert loaded.final_weights[s] == pytest.approx(float(graph.tlg.final(s)))
    assert loaded.ilabels.max() <= graph.num_tokens and loaded.ilabels.dtype == np.int32
    # A failure while writing leaves the directory as it was.
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("speechdecode.graphs.export.export_npz", fail)
    other = compile_graph(PHONE_UNITS, phone_lexicon(), arpa, topology="compact")
    with pytest.raises(OSError, match="disk full"):
        other.write(out)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["graph"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidArgumentError, match="out_dir: expected a directory"):
        other.write(blocker)
    with pytest.raises(InvalidArgumentError, match=r"out_dir: expected a folder in an existing dir.*is not a dir"):
        other.write(blocker / "sub")
    with pytest.raises(InvalidArgumentError, match=r"out_dir: .*'[^']*absent' does not exist"):
        other.write(tmp_path / "absent" / "graph")  # parents are never created
    assert sorted(os.listdir(tmp_path)) == ["file", "graph"]


def test_export_rejects_disambiguation_inputs_and_bad_files(tmp_path, small_lm):
    arpa, _ = small_lm
    graph = compile_graph(PHONE_UNITS, phone_lexicon(), arpa, keep_lg=True)
    with pytest.raises(InvalidArgumentError, match=f"input labels in 0..{graph.num_tokens}"):
        export_npz(graph.lg, tmp_path / "LG.npz", graph.num_tokens, graph.blank, "compact")
    assert not (tmp_path / "LG.npz").exists()
    path = tmp_path / "TLG.npz"
    export_npz(graph.tlg, path, graph.num_tokens, graph.blank, "compact")
    with np.load(path) as data:
        arrays = dict(data)
    np.savez(tmp_path / "missing.npz", **{k: v for k, v in arrays.items() if k != "weights"})
    with pytest.raises(InputFileError, match=r"missing key.*weights"):
        load_graph(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", **{**arrays, "nextstates": arrays["nextstates"] + 10**6})
    with pytest.raises(InputFileError, match="nextstates: expected states"):
        load_graph(tmp_path / "bad.npz")
    np.savez(tmp_path / "dtype.npz", **{**arrays, "ilabels": arrays["ilabels"].astype(np.int64)})
    with pytest.raises(InputFileError, match="ilabels: expected 1-D int32"):
        load_graph(tmp_path / "dtype.npz")


def test_all_paths_helper_sees_every_reading():
    # The oracle's enumeration is itself checked: a two-path FST yields both paths with their costs.
    f = fst.VectorFst()
    f.add_states(2)
    f.set_start(0)
    f.set_final(1)
    for label, cost in ((1, 0.5), (2, 1.5)):
        f.add_arc(0, fst.Arc(label, label, fst.Weight("tropical", cost), 1))
    assert sorted(all_paths(f)) == [((1,), (1,), 0.5), ((2,), (2,), 1.5)]
    assert segmentations(("a", "b"), {("a",): [("x", 0.0)], ("a", "b"): [("y", 0.0)], ("b",): [("z", 1.0)]}) == [
        [("x", 0.0), ("z", 1.0)],
        [("y", 0.0)],
    ]
    for seed in range(5):
        frames = [f for f in frames_for([3, 3], 0, random.Random(seed), True)]
        first, last = frames.index(3), len(frames) - 1 - frames[::-1].index(3)
        assert 0 in frames[first:last] and ctc_collapse(frames) == [3, 3]


def ctc_collapse(frames):
    return [f for i, f in enumerate(frames) if f and (i == 0 or frames[i - 1] != f)]
