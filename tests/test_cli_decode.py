"""``speechdecode decode`` with each decoder: greedy, prefix beam search (+ LM, hotwords), WFST."""

import json

import numpy as np
import pytest

from speechdecode.cli import main
from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder
from speechdecode.decoding.posteriors import save_posteriors
from speechdecode.graphs import char_lexicon, char_tokens, compile_graph, write_lexicon
from speechdecode.lm import NgramModel, count_files, estimate, write_arpa
from speechdecode.testing import CtcPosteriorSimulator, write_corpus

WORDS = ["hi", "ho", "oh", "hoot", "tot", "it"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A char token table, an LM and a compiled TLG for WORDS; posteriors of 6 sentences."""
    tmp = tmp_path_factory.mktemp("decode")
    rng = np.random.default_rng(3)
    corpus = [" ".join(rng.choice(WORDS, size=rng.integers(1, 5))) for _ in range(300)]
    write_corpus(tmp / "train.txt", corpus)
    write_arpa(tmp / "lm.arpa", estimate(count_files([tmp / "train.txt"], 2), "witten-bell"))
    tokens, lexicon = char_tokens(WORDS), char_lexicon(WORDS)
    tokens.write(tmp / "tokens.txt")
    write_lexicon(tmp / "lexicon.txt", lexicon)
    compile_graph(tmp / "tokens.txt", tmp / "lexicon.txt", tmp / "lm.arpa", allow_oov=True).write(tmp / "graph")
    test = corpus[:6]
    labels = [tokens.encode([t for w in s.split() for t in lexicon[w][0].tokens]) for s in test]
    log_probs, lengths = CtcPosteriorSimulator(len(tokens), blank=0, seed=5, confusion=0.0).simulate(labels)
    utt_ids = [f"u{i}" for i in range(len(test))]
    save_posteriors(tmp / "p.npz", log_probs, lengths, utt_ids)
    return tmp, test, tokens, log_probs, lengths


def decode(capsys, *argv):
    code = main(["decode", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_each_decoder_recovers_clean_sentences(capsys, data):
    tmp, test, *_ = data
    common = ["--log-probs", str(tmp / "p.npz")]
    greedy = decode(capsys, *common, "--tokens", str(tmp / "tokens.txt"))
    prefix = decode(capsys, *common, "--tokens", str(tmp / "tokens.txt"), "--arpa", str(tmp / "lm.arpa"))
    wfst = decode(capsys, *common, "--graph", str(tmp / "graph"), "--nbest", "2")
    assert (greedy["decoder"], prefix["decoder"], wfst["decoder"]) == ("greedy", "prefix", "wfst")
    for out in (greedy, prefix, wfst):
        assert [r["utt_id"] for r in out["results"]] == [f"u{i}" for i in range(6)]
        assert [r["text"] for r in out["results"]] == test
    assert all(len(r["nbest"]) <= 2 and r["nbest"][0]["text"] == r["text"] for r in wfst["results"])


def test_cli_scores_equal_the_api(capsys, data):
    tmp, _, tokens, log_probs, lengths = data
    out = decode(
        capsys, "--log-probs", str(tmp / "p.npz"), "--tokens", str(tmp / "tokens.txt"), "--arpa", str(tmp / "lm.arpa"),
        "--alpha", "0.7", "--beta", "0.5", "--beam", "8", "--hotword", "hoot:2.5",
    )  # fmt: skip
    search = CtcPrefixBeamSearch(
        list(tokens), blank=0, lm=NgramModel.from_arpa(tmp / "lm.arpa"), alpha=0.7, beta=0.5, beam=8,
        hotwords=[("hoot", 2.5)],
    )  # fmt: skip
    api = [n[0] for n in search(log_probs, lengths)]
    assert [r["score"] for r in out["results"]] == pytest.approx([h.score for h in api], abs=1e-9)
    assert [r["word_frames"] for r in out["results"]] == [[list(f) for f in h.word_frames] for h in api]
    # Every search option reaches the search (none of them is the default here).
    flags = ["--no-partial-word-lm", "--unk-score-offset", "-3", "--no-recombine", "--viterbi", "--token-topk", "4",
             "--beam-threshold", "8", "--token-min-logp", "-6", "--lm", str(tmp / "lm.arpa")]  # fmt: skip
    out = decode(capsys, "--log-probs", str(tmp / "p.npz"), "--tokens", str(tmp / "tokens.txt"), *flags)
    search = CtcPrefixBeamSearch(
        list(tokens), lm=NgramModel.from_arpa(tmp / "lm.arpa"), partial_word_lm=False, unk_score_offset=-3.0,
        recombine=False, viterbi=True, token_topk=4, beam_threshold=8.0, token_min_logp=-6.0,
    )  # fmt: skip
    api = [n[0] for n in search(log_probs, lengths)]
    assert [r["score"] for r in out["results"]] == pytest.approx([h.score for h in api], abs=1e-9)
    out = decode(capsys, "--log-probs", str(tmp / "p.npz"), "--tokens", str(tmp / "tokens.txt"), *flags,
                 "--lexicon", str(tmp / "lexicon.txt"))  # fmt: skip
    lexicon = CtcPrefixBeamSearch(
        list(tokens), lm=NgramModel.from_arpa(tmp / "lm.arpa"), partial_word_lm=False, unk_score_offset=-3.0,
        recombine=False, viterbi=True, token_topk=4, beam_threshold=8.0, token_min_logp=-6.0,
        lexicon=tmp / "lexicon.txt",
    )  # fmt: skip
    with_lexicon = [n[0] for n in lexicon(log_probs, lengths)]
    assert [r["score"] for r in out["results"]] == pytest.approx([h.score for h in with_lexicon], abs=1e-9)
    default = [n[0] for n in CtcPrefixBeamSearch(list(tokens), lm=tmp / "lm.arpa")(log_probs, lengths)]
    assert [h.score for h in api] != pytest.approx([h.score for h in default], abs=1e-6)
    out = decode(capsys, "--log-probs", str(tmp / "p.npz"), "--graph", str(tmp / "graph"), "--beam", "9")
    api = [n[0] for n in WfstDecoder(tmp / "graph", beam=9, word_boundary="|")(log_probs, lengths)]
    assert [r["score"] for r in out["results"]] == pytest.approx([h.score for h in api], abs=1e-9)


def test_search_options_without_an_lm_run_the_prefix_search(capsys, data):
    """--beam / --nbest without --lm: the prefix search, never greedy; n-best texts are distinct."""
    tmp, test, *_ = data
    out = decode(
        capsys, "--log-probs", str(tmp / "p.npz"), "--tokens", str(tmp / "tokens.txt"), "--beam", "16", "--nbest", "3"
    )  # fmt: skip
    assert out["decoder"] == "prefix" and [r["text"] for r in out["results"]] == test
    for r in out["results"]:
        texts = [h["text"] for h in r["nbest"]]
        assert len(texts) == 3 and len(set(texts)) == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--decoder", "wfst"], "--graph: expected a graph directory for --decoder wfst"),
        (["--decoder", "prefix"], "--tokens: expected a token table for --decoder prefix"),
        (["--tokens", "tokens.txt", "--hotword", "hoot"], "--hotword: expected PHRASE:WEIGHT"),
        (["--tokens", "tokens.txt", "--hotword", "hoot:x"], "--hotword: expected PHRASE:WEIGHT"),
        (["--decoder", "greedy", "--arpa", "lm.arpa"], "--decoder: expected options that greedy decoding takes"),
        (["--graph", "graph", "--alpha", "1"], "the wfst decoder takes (--decoder auto chose wfst), got --alpha"),
        (["--tokens", "tokens.txt", "--max-active", "9"], "greedy decoding takes (--decoder auto chose greedy)"),
        (["--tokens", "tokens.txt", "--beam", "4", "--max-active", "9"], "prefix decoder takes (--decoder auto"),
        (["--beam", "16", "--nbest", "3"], "--tokens: expected a token table for the prefix search (--beam, --nbest)"),
        (["--tokens", "tokens.txt", "--beam", "2.5"], "--beam: expected an integer number of prefixes"),
        (["--tokens", "tokens.txt", "--word-boundary", "@"], "word_boundary: expected a token"),
        (
            ["--graph", "graph", "--lexicon", "lexicon.txt"],
            "wfst decoder takes (--decoder auto chose wfst), got --lexicon",
        ),
        (["--graph", "nowhere"], "nowhere"),
    ],
)
def test_bad_arguments_name_the_option(capsys, data, monkeypatch, args, message):
    tmp = data[0]
    monkeypatch.chdir(tmp)
    code = main(["decode", "--log-probs", "p.npz", *args])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
