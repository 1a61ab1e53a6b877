"""WfstDecoder and `decode --graph` on an OpenFst TLG built with pywrapfst directly (not our compiler)."""

import json

import pytest

from speechdecode.cli import main
from speechdecode.decoding import WfstDecoder
from speechdecode.decoding.posteriors import save_posteriors
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.testing import CtcPosteriorSimulator

pywrapfst = pytest.importorskip("pywrapfst")

TOKENS = ["<eps>", "<blank>", "|", "a", "b", "c"]  # acoustic outputs 0..4 = ids 1..5
WORDS = ["<eps>", "ab", "ba", "cab", "a"]
SENTENCES = ["ab ba", "cab a ab", "a", "ba cab cab"]


def ctc_word_loop(word_cost: float = 0.5) -> str:
    """A CTC TLG as OpenFst text: each word spelled with its tokens plus '|' (the word's label on its
    first token), a token repeated over frames, blanks between tokens, back to the start after '|'."""
    blank = TOKENS.index("<blank>")
    lines, state = [f"0 0 {blank} 0 0"], 1
    for word_id, word in enumerate(WORDS[1:], start=1):
        spelled = [TOKENS.index(c) for c in word + "|"]
        emitted = [state + 2 * i for i in range(len(spelled))]  # E_i: just emitted token i
        blanked = [e + 1 for e in emitted]  # B_i: a blank after token i
        state += 2 * len(spelled)
        lines.append(f"0 {emitted[0]} {spelled[0]} {word_id} {word_cost}")
        for i, token in enumerate(spelled):
            lines += [f"{emitted[i]} {emitted[i]} {token} 0 0", f"{emitted[i]} {blanked[i]} {blank} 0 0"]
            lines.append(f"{blanked[i]} {blanked[i]} {blank} 0 0")
            if i + 1 < len(spelled):
                lines.append(f"{blanked[i]} {emitted[i + 1]} {spelled[i + 1]} 0 0")
                if spelled[i + 1] != token:
                    lines.append(f"{emitted[i]} {emitted[i + 1]} {spelled[i + 1]} 0 0")
            else:
                lines += [f"{emitted[i]} 0 0 0 0", f"{blanked[i]} 0 0 0 0"]
    lines.append("0")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openfst")
    compiler = pywrapfst.Compiler()
    compiler.write(ctc_word_loop())
    fst = compiler.compile()
    fst.arcsort("ilabel")
    fst.write(str(tmp / "TLG.fst"))
    (tmp / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(TOKENS)))
    (tmp / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(WORDS)))
    labels = [[TOKENS.index(c) - 1 for w in s.split() for c in w + "|"] for s in SENTENCES]
    log_probs, lengths = CtcPosteriorSimulator(len(TOKENS) - 1, blank=0, seed=3, confusion=0.0).simulate(labels)
    save_posteriors(tmp / "p.npz", log_probs, lengths, [f"u{i}" for i in range(len(SENTENCES))])
    return tmp, log_probs, lengths


def test_an_openfst_tlg_decodes_from_file_directory_and_cli(graph_dir, capsys):
    tmp, log_probs, lengths = graph_dir
    from_file = WfstDecoder(tmp / "TLG.fst")
    assert (from_file.num_tokens, from_file.blank) == (5, 0)
    got = from_file(log_probs, lengths)
    assert [n[0].text for n in got] == SENTENCES
    from_dir = WfstDecoder(tmp)(log_probs, lengths)
    assert [[(h.tokens, h.score) for h in n] for n in from_dir] == [[(h.tokens, h.score) for h in n] for n in got]
    code = main(["decode", "--log-probs", str(tmp / "p.npz"), "--graph", str(tmp / "TLG.fst"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["text"] for r in out["results"]] == SENTENCES
    # `graph import` writes the .npz once; it decodes exactly as the FST
    code = main(["graph", "import", str(tmp / "TLG.fst"), "--out", str(tmp / "imported"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["files"] == ["TLG.npz", "tokens.txt", "words.txt"]
    imported = WfstDecoder(tmp / "imported")(log_probs, lengths)
    assert [[(h.tokens, h.words, h.score) for h in n] for n in imported] == [
        [(h.tokens, h.words, h.score) for h in n] for n in got
    ]


def test_the_label_convention_is_checked(graph_dir, tmp_path):
    tmp, _, _ = graph_dir
    fst = pywrapfst.Fst.read(str(tmp / "TLG.fst"))
    fst.write(str(tmp_path / "TLG.fst"))
    (tmp_path / "words.txt").write_text((tmp / "words.txt").read_text())
    # k2 / icefall tables put the blank at id 0
    (tmp_path / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(TOKENS[1:])))
    with pytest.raises(InputFileError, match=r"tokens.txt: id 0 is '<blank>', expected <eps>: input label 0"):
        WfstDecoder(tmp_path / "TLG.fst")
    # a token table shorter than the graph's labels
    (tmp_path / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(TOKENS[:4])))
    with pytest.raises(InputFileError, match=r"TLG.fst: input label 5 \(not in the table\) exceeds the 3 acoustic"):
        WfstDecoder(tmp_path / "TLG.fst")
    (tmp_path / "tokens.txt").write_text(
        "".join(f"{t} {i}\n" for i, t in enumerate(["<eps>", "<nothing>", *TOKENS[2:]]))
    )
    with pytest.raises(InvalidArgumentError, match=r"blank: expected a blank named one of"):
        WfstDecoder(tmp_path / "TLG.fst")
    assert WfstDecoder(tmp_path / "TLG.fst", blank="<nothing>").blank == 0
    (tmp_path / "words.txt").write_text("<eps> 0\nab 1\n")
    with pytest.raises(InputFileError, match=r"output label 4 exceeds the 2 words of words.txt"):
        WfstDecoder(tmp_path / "TLG.fst", blank=0)
    (tmp_path / "notfst").write_bytes(b"hello")
    with pytest.raises(InputFileError, match="notfst"):
        WfstDecoder(tmp_path / "notfst")
