"""``speechdecode graph compile|info|draw``."""

import json
import math
import os

import pytest
import pywrapfst as fst
from graph_refs import TropicalLm, best_path, linear_fst, write_corpus_lm

from speechdecode.cli import main
from speechdecode.graphs import load_graph

WORDS = ["hi", "ho", "oh", "hoot"]


@pytest.fixture
def inputs(tmp_path):
    arpa, model = write_corpus_lm(tmp_path, WORDS, 40, 2, seed=2)
    (tmp_path / "tokens.txt").write_text("<blk> 0\nh 1\ni 2\no 3\nt 4\nspn 5\n")
    (tmp_path / "lexicon.txt").write_text("hi h i\nho h o\noh o h\nhoot h o o t\n<unk> spn\n")
    (tmp_path / "words.txt").write_text("\n".join([*WORDS, "<unk>"]) + "\n")
    return tmp_path, arpa, model


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compile_writes_a_graph_that_decodes(capsys, inputs):
    tmp, arpa, model = inputs
    out = tmp / "graph"
    code, stdout, _ = run(
        capsys, "graph", "compile", "--tokens", str(tmp / "tokens.txt"), "--lexicon", str(tmp / "lexicon.txt"),
        "--arpa", str(arpa), "--topology", "standard", "--out", str(out), "--keep-lg", "--json",
    )  # fmt: skip
    assert code == 0
    stats = json.loads(stdout)
    assert sorted(os.listdir(out)) == ["LG.fst", "TLG.fst", "TLG.npz", "tokens.txt", "words.txt"]
    assert stats["files"] == sorted(os.listdir(out))
    assert [s["name"] for s in stats["steps"]][-3:] == ["determinize_log", "minimize_encoded", "compose(T,LG)"]
    graph = load_graph(out)
    tlg = fst.Fst.read(str(out / "TLG.fst"))
    assert stats["tlg_arcs"] == graph.num_arcs and stats["tlg_states"] == tlg.num_states()
    # h o o t needs a blank between the two o frames under the standard topology.
    frames = [2, 4, 4, 1, 4, 5, 5]
    _, outputs, cost = best_path(fst.compose(linear_fst(frames), tlg))
    words = (out / "words.txt").read_text().split()[::2]
    assert [words[o] for o in outputs] == ["hoot"]
    assert cost == pytest.approx(TropicalLm(model).cost(["hoot"]), abs=1e-3)

    code, stdout, _ = run(capsys, "graph", "info", str(out / "TLG.fst"), "--json")
    info = json.loads(stdout)
    assert code == 0 and info["states"] == graph.num_states and "I_LABEL_SORTED" in info["properties"]
    code, stdout, _ = run(capsys, "graph", "info", str(out))
    assert code == 0 and f"arcs           {graph.num_arcs}" in stdout and "standard" in stdout


def test_compile_char_units_and_text_report(capsys, inputs):
    tmp, arpa, _ = inputs
    (tmp / "chars.txt").write_text("|\nh\ni\no\nt\n<\n>\nu\nn\nk\n")
    code, stdout, _ = run(
        capsys, "graph", "compile", "--tokens", str(tmp / "chars.txt"), "--lexicon", str(tmp / "words.txt"),
        "--arpa", str(arpa), "--units", "char", "--blank-last", "--out", str(tmp / "chars"),
    )  # fmt: skip
    assert code == 0, stdout
    assert "TLG" in stdout and "compose(T,LG)" in stdout and "wrote TLG.fst, TLG.npz, tokens.txt, words.txt" in stdout
    graph = load_graph(tmp / "chars" / "TLG.npz")
    assert (graph.num_tokens, graph.blank, graph.topology) == (11, 10, "compact")


def test_errors_print_one_line_and_write_nothing(capsys, inputs):
    tmp, arpa, _ = inputs
    (tmp / "bad_lexicon.txt").write_text("hi h i\nho h x\n")
    out = tmp / "never"
    code, _, err = run(
        capsys, "graph", "compile", "--tokens", str(tmp / "tokens.txt"), "--lexicon", str(tmp / "bad_lexicon.txt"),
        "--arpa", str(arpa), "--out", str(out),
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "bad_lexicon.txt:2: token 'x' of word 'ho' is not in the token table" in err
    code, _, err = run(
        capsys, "graph", "compile", "--tokens", str(tmp / "tokens.txt"), "--lexicon", str(tmp / "lexicon.txt"),
        "--arpa", str(arpa), "--out", str(out), "--max-arcs", "5",
    )  # fmt: skip
    assert code == 2 and "more than max_arcs=5" in err
    assert not out.exists()
    code, _, err = run(capsys, "graph", "info", str(tmp / "lexicon.txt"))
    assert code == 2 and "an OpenFst binary FST" in err


def test_draw(capsys, inputs):
    tmp, arpa, _ = inputs
    assert main(["graph", "compile", "--tokens", str(tmp / "tokens.txt"), "--lexicon", str(tmp / "lexicon.txt"),
                 "--arpa", str(arpa), "--out", str(tmp / "g"), "--keep-lg"]) == 0  # fmt: skip
    capsys.readouterr()
    png = tmp / "lg.png"
    tables = ["--tokens", str(tmp / "g" / "tokens.txt"), "--words", str(tmp / "g" / "words.txt")]
    code, stdout, _ = run(capsys, "graph", "draw", str(tmp / "g" / "LG.fst"), "-o", str(png), *tables)
    assert code == 0 and f"wrote {png}" in stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(name.endswith(".dot") for name in os.listdir(tmp))
    code, _, err = run(
        capsys, "graph", "draw", str(tmp / "g" / "TLG.fst"), "-o", str(tmp / "x.png"), "--max-states", "2"
    )
    assert code == 2 and "at most --max-states=2" in err and not (tmp / "x.png").exists()
    assert math.isfinite(load_graph(tmp / "g").weights.max())
