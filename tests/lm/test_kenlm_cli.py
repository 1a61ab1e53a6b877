"""speechdecode lm binary / arpa / query, and lmplz's habits in lm build (-o, -S, -T, -, stdout),
checked against KenLM's own outputs (tests/data/kenlm) and the kenlm module."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import kenlm
import pytest

KENLM_DATA = Path(__file__).parent.parent / "data" / "kenlm"
LMPLZ_DATA = Path(__file__).parent.parent / "data" / "lmplz"


def lm(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "speechdecode", "lm", *map(str, args)],
        capture_output=True,
        input=stdin,
        timeout=300,
    )


@pytest.mark.parametrize(
    "flags, oracle",
    [
        ([], "probing"),
        (["--type", "trie"], "trie"),
        (["--type", "trie", "-q", "8"], "trie-q8b8"),
        (["--type", "trie", "-q", "8", "-b", "8", "-a", "22"], "trie-q8b8a22"),
        (["--type", "trie", "-q", "4", "-b", "3", "-a", "255"], "trie-q4b3a255"),
    ],
)
def test_binary_equals_build_binary(tmp_path, flags, oracle):
    out = lm("binary", LMPLZ_DATA / "kjv400.o3.prune11.arpa.gz", tmp_path / "m.bin", *flags, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["bytes"] == os.path.getsize(tmp_path / "m.bin")
    assert (tmp_path / "m.bin").read_bytes() == (KENLM_DATA / f"kjv400.o3.prune11.{oracle}.bin").read_bytes()


def test_binary_to_stdout_and_bad_flags(tmp_path):
    out = lm("binary", LMPLZ_DATA / "tiny.o3.fallback.arpa.gz", "-", "--type", "trie")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (KENLM_DATA / "tiny.o3.fallback.trie.bin").read_bytes()
    assert b"tiny.o3.fallback" in out.stderr  # the status line
    out = lm("binary", LMPLZ_DATA / "tiny.o3.fallback.arpa.gz", tmp_path / "x.bin", "-b", "4")
    assert out.returncode == 2 and b"-b" in out.stderr
    out = lm("binary", LMPLZ_DATA / "tiny.o3.fallback.arpa.gz", tmp_path / "x.bin", "-q", "8")
    assert out.returncode == 2 and b"trie" in out.stderr
    assert not (tmp_path / "x.bin").exists()


def test_arpa_from_trie_round_trip(tmp_path):
    out = lm("arpa", KENLM_DATA / "kjv400.o4.prune123.trie-a22.bin", tmp_path / "back.arpa")
    assert out.returncode == 0, out.stderr
    back = kenlm.Model(str(tmp_path / "back.arpa"))
    original = kenlm.Model(str(LMPLZ_DATA / "kjv400.o4.prune123.arpa.gz"))
    for line in (LMPLZ_DATA / "kjv400.txt").read_text().splitlines()[:100]:
        assert [tuple(x) for x in back.full_scores(line)] == [tuple(x) for x in original.full_scores(line)]
    out = lm("arpa", KENLM_DATA / "tiny.o3.fallback.probing.bin", tmp_path / "no.arpa")
    assert out.returncode == 2 and b"hashes" in out.stderr and not (tmp_path / "no.arpa").exists()


@pytest.mark.parametrize("model", ["kjv400.o4.prune123.trie-q8b8a22", "kjv400.o3.prune11.probing"])
def test_query_prints_what_kenlm_query_prints(model):
    """tests/data/kenlm/*.query.txt are KenLM's query's output on query.in.txt (see the README)."""
    out = lm("query", KENLM_DATA / f"{model}.bin", stdin=(KENLM_DATA / "query.in.txt").read_bytes())
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == (KENLM_DATA / f"{model}.query.txt").read_text()


def test_query_json_and_arpa_input():
    text = "in the beginning\nzebra the lord\n\n"
    arpa = LMPLZ_DATA / "kjv400.o3.prune11.arpa.gz"
    out = lm("query", arpa, "--json", stdin=text.encode())
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    reference = kenlm.Model(str(arpa))
    assert len(result["sentences"]) == 3
    total, oovs = 0.0, 0
    for sentence, line in zip(result["sentences"], text.splitlines(), strict=True):
        expect = [tuple(x) for x in reference.full_scores(line)]
        got = [(w["log10_prob"], w["ngram_length"], w["oov"]) for w in sentence["words"]]
        assert got == expect
        assert [w["word"] for w in sentence["words"]] == [*line.split(), "</s>"]
        assert sentence["total"] == pytest.approx(reference.score(line), abs=1e-5)
        total += sentence["total"]
        oovs += sum(x[2] for x in expect[:-1])
    assert result["tokens"] == (3 + 1) + (3 + 1) + 1
    assert result["oovs"] == oovs == 2
    assert result["perplexity_including_oovs"] == pytest.approx(10 ** (-total / 9))


def test_build_reads_stdin_and_writes_stdout_like_lmplz(tmp_path):
    text = (LMPLZ_DATA / "tiny.txt").read_bytes()
    out = lm("build", "-o", "3", "--text", "-", "--arpa", "-", "--discount_fallback", "-S", "5%", "-T", tmp_path,
             stdin=text)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == gzip.decompress((LMPLZ_DATA / "tiny.o3.fallback.arpa.gz").read_bytes())
    assert b"order 3 mkn" in out.stderr and b"warning:" in out.stderr
    assert os.listdir(tmp_path) == []  # the spooled standard input is gone


def test_build_limit_vocab_file_alias(tmp_path):
    (tmp_path / "vocab.txt").write_text("the\ncat\n")
    args = ["build", "-o", "2", "--text", LMPLZ_DATA / "tiny.txt", "--discount_fallback", "--json"]
    a = lm(*args, "--arpa", tmp_path / "a.arpa", "--limit_vocab_file", tmp_path / "vocab.txt")
    b = lm(*args, "--arpa", tmp_path / "b.arpa", "--limit-vocab", tmp_path / "vocab.txt")
    assert a.returncode == 0 and b.returncode == 0, a.stderr
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()
    assert (
        json.loads(a.stdout)["vocabulary"] < json.loads(lm(*args, "--arpa", tmp_path / "c.arpa").stdout)["vocabulary"]
    )


def test_status_goes_to_stderr_as_in_lmplz(tmp_path):
    out = lm("build", "-o", "2", "--text", LMPLZ_DATA / "kjv400.txt", "--arpa", tmp_path / "m.arpa")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"" and b"order 2 mkn" in out.stderr
    out = lm("binary", tmp_path / "m.arpa", tmp_path / "m.bin")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"" and b"KenLM probing binary" in out.stderr


def test_info_names_the_binary_type():
    out = lm("info", "--arpa", KENLM_DATA / "kjv400.o3.prune11.trie-q8b8a22.bin", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["kenlm_type"] == "quant_array_trie" and summary["order"] == 3
    assert summary["memory_bytes"] == os.path.getsize(KENLM_DATA / "kjv400.o3.prune11.trie-q8b8a22.bin")


def test_query_without_sentence_context():
    text = "in the beginning\nthe lord\n"
    model = KENLM_DATA / "kjv400.o4.prune123.trie.bin"
    out = lm("query", model, "-n", "--json", stdin=text.encode())
    assert out.returncode == 0, out.stderr
    reference = kenlm.Model(str(model))
    result = json.loads(out.stdout)
    for sentence, line in zip(result["sentences"], text.splitlines(), strict=True):
        expect = [tuple(x) for x in reference.full_scores(line, bos=False, eos=False)]
        assert [(w["log10_prob"], w["ngram_length"], w["oov"]) for w in sentence["words"]] == expect
    assert result["tokens"] == 5
