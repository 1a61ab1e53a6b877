"""The FST builders: flat arrays <-> OpenFst, symbol tables, T (both topologies), L."""

import importlib.util
import itertools
import math

import numpy as np
import pytest
import pywrapfst as fst
from graph_refs import all_paths, linear_fst

import speechdecode.graphs.fst_io as fst_io
from speechdecode.errors import BackendUnavailableError, InputFileError, InvalidArgumentError
from speechdecode.graphs import Lexicon, acoustic_units, piece_lexicon, read_lexicon, token_table, word_table
from speechdecode.graphs.fst_io import fst_from_arrays, fst_to_arrays, read_vector_arrays
from speechdecode.graphs.lexicon_fst import disambiguate, lexicon_fst
from speechdecode.graphs.topology import ctc_topology


def random_arrays(rng, num_states, num_arcs):
    finals = np.where(rng.random(num_states) < 0.3, rng.random(num_states) * 5, np.inf).astype(np.float32)
    src = rng.integers(0, num_states, num_arcs)
    return (
        int(rng.integers(0, num_states)),
        finals,
        src,
        rng.integers(0, 50, num_arcs),
        rng.integers(0, 50, num_arcs),
        (rng.random(num_arcs) * 10 - 2).astype(np.float32),
        rng.integers(0, num_states, num_arcs),
    )


def built_arc_by_arc(start, finals, src, ilab, olab, weights, dst):
    f = fst.VectorFst()
    f.add_states(len(finals))
    f.set_start(start)
    for s, w in enumerate(finals):
        if np.isfinite(w):
            f.set_final(s, fst.Weight("tropical", float(w)))
    for s, i, o, w, d in zip(src, ilab, olab, weights, dst, strict=True):  # in order: stable per state
        f.add_arc(int(s), fst.Arc(int(i), int(o), fst.Weight("tropical", float(w)), int(d)))
    return f


@pytest.mark.parametrize(("num_states", "num_arcs"), [(1, 0), (1, 1), (2, 7), (13, 1), (31, 257), (97, 1000)])
def test_fst_from_arrays_equals_pywrapfst_built(num_states, num_arcs):
    rng = np.random.default_rng(num_states * 1000 + num_arcs)
    arrays = random_arrays(rng, num_states, num_arcs)
    ours = fst_from_arrays(*arrays)
    assert fst.equal(ours, built_arc_by_arc(*arrays))
    back = fst_to_arrays(ours)
    order = np.argsort(arrays[2], kind="stable")
    assert back.start == arrays[0]
    np.testing.assert_array_equal(back.final_weights, arrays[1])
    np.testing.assert_array_equal(
        back.arc_offsets, np.concatenate([[0], np.cumsum(np.bincount(arrays[2], minlength=num_states))])
    )
    np.testing.assert_array_equal(back.ilabels, arrays[3][order])
    np.testing.assert_array_equal(back.olabels, arrays[4][order])
    np.testing.assert_array_equal(back.weights, arrays[5][order])
    np.testing.assert_array_equal(back.nextstates, arrays[6][order])


@pytest.mark.parametrize("chunk_words", [1, 7, 64, 1 << 20])
def test_vector_file_read_in_chunks_with_symbol_tables_and_other_types(tmp_path, monkeypatch, chunk_words):
    # Chunks of every size (one state, part of a state's arcs, many states); symbol tables
    # before the states; a const FST (converted); the arrays equal pywrapfst's own view.
    monkeypatch.setattr(fst_io, "_CHUNK_WORDS", chunk_words)
    rng = np.random.default_rng(chunk_words)
    f = fst_from_arrays(*random_arrays(rng, 23, 300))
    symbols = fst.SymbolTable()
    for i in range(60):
        symbols.add_symbol(f"s{i}", i)
    f.set_input_symbols(symbols)
    f.set_output_symbols(symbols)
    f.add_states(2)  # two states without arcs at the end
    path = str(tmp_path / "f.fst")
    f.write(path)
    with open(path, "rb") as handle:
        arrays = read_vector_arrays(handle, f)
    for got in (arrays, fst_to_arrays(fst.convert(f, "const"))):
        assert got.start == f.start() and got.num_states == f.num_states() == 25
        arcs = [a for s in f.states() for a in f.arcs(s)]
        expected = [(a.ilabel, a.olabel, float(np.float32(float(a.weight))), a.nextstate) for a in arcs]
        columns = (got.ilabels, got.olabels, got.weights, got.nextstates)
        assert list(zip(*(c.tolist() for c in columns), strict=True)) == expected
        assert got.arc_offsets.tolist() == [0, *itertools.accumulate(f.num_arcs(s) for s in f.states())]
        finals = [float(f.final(s)) for s in f.states()]
        np.testing.assert_array_equal(got.final_weights, np.array(finals, np.float32))
    with pytest.raises(InvalidArgumentError, match="vector format"), open(path, "rb") as handle:
        read_vector_arrays(handle, fst_from_arrays(0, [0.0], [], [], [], [], []))  # another FST


def test_fst_from_arrays_rejects_bad_arrays():
    with pytest.raises(InvalidArgumentError, match="start"):
        fst_from_arrays(2, [0.0, 0.0], [], [], [], [], [])
    with pytest.raises(InvalidArgumentError, match="nextstates"):
        fst_from_arrays(0, [0.0], [0], [1], [1], [0.0], [1])
    with pytest.raises(InvalidArgumentError, match="olabels"):
        fst_from_arrays(0, [0.0], [0, 0], [1, 1], [1], [0.0, 0.0], [0, 0])
    with pytest.raises(InvalidArgumentError, match="ilabels"):
        fst_from_arrays(0, [0.0], [0], [-1], [1], [0.0], [0])
    with pytest.raises(InvalidArgumentError, match=r"standard \(tropical\) or log float32 arcs, got log64"):
        fst_to_arrays(fst.arcmap(linear_fst([1]), map_type="to_log64"))


def test_fst_to_arrays_reads_log_arcs_as_their_tropical_map():
    log = fst.arcmap(fst_from_arrays(*random_arrays(np.random.default_rng(5), 17, 120)), map_type="to_log")
    ours, theirs = fst_to_arrays(log), fst_to_arrays(fst.arcmap(log, map_type="to_std"))
    assert ours.start == theirs.start
    for name in ("final_weights", "arc_offsets", "ilabels", "olabels", "weights", "nextstates"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))


def test_acoustic_units_and_tables(tmp_path):
    assert acoustic_units(["a", "<blk>", "b"][1:], blank="<blk>") == ["<blk>", "b"]
    pairs = tmp_path / "tokens.txt"
    pairs.write_text("a 1\n<b> 0\nc 2\n")
    assert acoustic_units(pairs, blank="<b>") == ["<b>", "a", "c"]
    assert acoustic_units(["x", "y"], blank_last=True) == ["x", "y", "<blk>"]
    with pytest.raises(InvalidArgumentError, match="blank '<blk>' last"):
        acoustic_units(["<blk>", "x"], blank_last=True)
    with pytest.raises(InvalidArgumentError, match=r"units\[1\]"):
        acoustic_units(["a", "#0"])
    with pytest.raises(InvalidArgumentError, match="besides the blank"):
        acoustic_units(["<blk>"])
    tokens = token_table(["<blk>", "a"], 3)
    assert tokens.symbols == ["<eps>", "<blk>", "a", "#0", "#1", "#2"]
    assert word_table(["x"]).symbols == ["<eps>", "x", "#0", "<s>", "</s>"]
    with pytest.raises(InvalidArgumentError, match=r"words\[0\]"):
        word_table(["<s>"])


def test_piece_lexicon_with_a_callable():
    lex = piece_lexicon(["hello", "hell", "hello"], lambda w: ["\u2581" + w[:3], *w[3:]])
    assert list(lex) == ["hello", "hell"]
    assert lex["hello"][0].tokens == ("\u2581hel", "l", "o")
    with pytest.raises(InvalidArgumentError, match="pieces"):
        piece_lexicon(["x"], lambda w: [])
    if importlib.util.find_spec("sentencepiece") is None:
        with pytest.raises(BackendUnavailableError, match="pip install sentencepiece"):
            piece_lexicon(["x"], "bpe.model")


def ctc_collapse(frames, blank):
    out, previous = [], None
    for f in frames:
        if f != blank and f != previous:
            out.append(f)
        previous = f
    return tuple(out)


def compact_readings(frames, blank):
    """Token sequences the compact topology allows: a run of one unit may be read as 1..len units."""
    runs = [(u, len(list(g))) for u, g in itertools.groupby(frames)]
    choices = [[(u,) * k for k in range(1, n + 1)] if u != blank else [()] for u, n in runs]
    return {sum(c, ()) for c in itertools.product(*choices)}


@pytest.mark.parametrize("topology", ["standard", "compact"])
@pytest.mark.parametrize(("num_tokens", "blank"), [(2, 0), (5, 0), (5, 4), (7, 3)])
def test_ctc_topology_output_language(topology, num_tokens, blank):
    rng = np.random.default_rng(num_tokens * 10 + blank)
    plain = ctc_topology(num_tokens, blank, num_disambig=0, topology=topology).arcsort("ilabel")
    for _ in range(25):
        frames = [int(x) for x in rng.integers(0, num_tokens, rng.integers(1, 7))]
        composed = fst.compose(linear_fst([f + 1 for f in frames]), plain)
        outputs = {tuple(o - 1 for o in out) for _, out, _ in all_paths(composed)}
        if topology == "standard":
            assert outputs == {ctc_collapse(frames, blank)}
        else:
            assert outputs == compact_readings(frames, blank)
    T = ctc_topology(num_tokens, blank, num_disambig=2, topology=topology).arcsort("ilabel")
    # The #k self-loops read nothing and write #k (ids V+1, V+2) anywhere between units.
    u1, u2 = [u + 1 for u in range(num_tokens) if u != blank][:2] if num_tokens > 2 else (None, None)
    for k in (1, 2):
        disambig = num_tokens + k
        if u1 is not None:
            assert accepts(T, [u1, u2], [u1, disambig, u2])
        unit = next(u + 1 for u in range(num_tokens) if u != blank)
        assert accepts(T, [unit, blank + 1, unit], [unit, disambig, unit])
        assert accepts(T, [unit, unit], [unit, disambig, unit]) == (topology == "compact")


def accepts(T, frames, outputs):
    composed = fst.compose(fst.compose(linear_fst(frames), T), linear_fst(outputs).arcsort("ilabel"))
    return len(all_paths(composed)) > 0


def test_ctc_topology_sizes_and_errors():
    standard = ctc_topology(6, 0, 1, "standard")
    compact = ctc_topology(6, 5, 1, "compact")
    assert sum(map(standard.num_arcs, standard.states())) == 6 * (1 + 5 + 1)  # 6 states: blank, 5 units, #0
    assert sum(map(compact.num_arcs, compact.states())) == 1 + 3 * 5 + 1
    with pytest.raises(InvalidArgumentError, match="topology"):
        ctc_topology(3, 0, 1, "ring")
    with pytest.raises(InvalidArgumentError, match="blank"):
        ctc_topology(3, 3)
    with pytest.raises(InvalidArgumentError, match="num_tokens"):
        ctc_topology(1)


def test_disambiguate_as_kaldi_add_lex_disambig():
    lex = Lexicon(
        {
            "red": [("r", "eh", "d")],
            "read": [("r", "iy", "d"), ("r", "eh", "d")],
            "re": [("r", "eh")],
            "a": [("ah",)],
            "ah": [("ah",)],
            "uh": [("ah",)],
            "x": [("eh", "k", "s")],
        }
    )
    entries, max_k = disambiguate(lex)
    # "r eh d" twice (#1, #2); "r eh" is a prefix (#1); "ah" three times (#1..#3); the rest none.
    assert [(e.word, e.disambig) for e in entries] == [
        ("red", 1),
        ("read", 0),
        ("read", 2),
        ("re", 1),
        ("a", 1),
        ("ah", 2),
        ("uh", 3),
        ("x", 0),
    ]
    assert max_k == 3


@pytest.mark.parametrize("silence", [None, "sil"])
def test_lexicon_fst_reads_each_pronunciation(silence):
    lex = Lexicon({"red": [("r", "eh", "d")], "read": [("r", "eh", "d"), ("r", "iy", "d")], "re": [("r", "eh")]})
    units = ["<blk>", "r", "eh", "d", "iy", "sil"]
    tokens, words = token_table(units, 3), word_table(lex)
    L = lexicon_fst(lex, tokens, words, blank="<blk>", silence=silence, silence_prob=0.25).arcsort("ilabel")
    entries, _ = disambiguate(lex)
    for entry in entries:
        symbols = list(entry.tokens) + ([f"#{entry.disambig}"] if entry.disambig else [])
        for sil_before, sil_after in itertools.product([False, True] if silence else [False], repeat=2):
            sequence = ["sil"] * sil_before + symbols + ["sil"] * sil_after
            composed = fst.compose(linear_fst(tokens.encode(sequence)), L)
            found = [(words.decode(o), cost) for _, o, cost in all_paths(composed)]
            expected_cost = 0.0
            if silence:
                expected_cost = sum(-math.log(0.25) if s else -math.log(0.75) for s in (sil_before, sil_after))
            assert len(found) == 1
            assert found[0][0] == [entry.word]
            assert found[0][1] == pytest.approx(expected_cost, abs=1e-5)
    # Without its #1, "r eh d" is ambiguous: L then reads it as red and as read.
    plain = lexicon_fst(lex, tokens, words, disambig=False).arcsort("ilabel")
    readings = {
        tuple(words.decode(o)) for _, o, _ in all_paths(fst.compose(linear_fst(tokens.encode(["r", "eh", "d"])), plain))
    }
    assert readings == {("red",), ("read",)}


def test_lexicon_fst_probabilities_and_the_back_off_loop():
    lex = Lexicon({"a": [("x",)], "b": [("y", "x")]})
    lex2 = Lexicon()
    lex2.add("a", ("x",), 0.5)
    lex2.add("a", ("y",), 1.0)
    tokens, words = token_table(["<blk>", "x", "y"], 1), word_table(["a", "b"])
    L = lexicon_fst(lex2, tokens, words).arcsort("ilabel")
    costs = sorted(c for _, _, c in all_paths(fst.compose(linear_fst([2]), L)))
    assert costs == [pytest.approx(math.log(2.0))]
    L = lexicon_fst(lex, tokens, words).arcsort("ilabel")
    # #0 passes through on the loop state: "x #0 y x" -> a #0 b.
    path = tokens.encode(["x", "#0", "y", "x"])
    outs = [o for _, o, _ in all_paths(fst.compose(linear_fst(path), L))]
    assert outs == [(words.id("a"), words.id("#0"), words.id("b"))]


def test_lexicon_fst_errors(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text("a x\nb y z\n")
    lex = read_lexicon(path)
    tokens, words = token_table(["<blk>", "x", "y"], 1), word_table(lex)
    with pytest.raises(InputFileError, match="token 'z' of word 'b' is not in the token table") as info:
        lexicon_fst(lex, tokens, words)
    assert str(info.value).startswith(f"{path}:2: ")
    in_code = Lexicon({"a": [("x", "<blk>")]})
    with pytest.raises(InvalidArgumentError, match="is the blank"):
        lexicon_fst(in_code, tokens, word_table(["a"]), blank="<blk>")
    with pytest.raises(InvalidArgumentError, match="at least one word"):
        lexicon_fst(Lexicon(), tokens, words)
    homophones = Lexicon({"a": [("x",)], "b": [("x",)]})
    with pytest.raises(InvalidArgumentError, match="#1"):
        lexicon_fst(homophones, tokens, word_table(["a", "b"]))
    with pytest.raises(InvalidArgumentError, match="silence"):
        lexicon_fst(Lexicon({"a": [("x",)]}), tokens, word_table(["a"]), silence="nope")
