"""speechdecode lm: the commands end to end, checked against the library and lmplz's output."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent.parent / "data" / "lmplz"


def lm(*args, cwd=None):
    out = subprocess.run(
        [sys.executable, "-m", "speechdecode", "lm", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    return out


def test_build_reproduces_lmplz_byte_for_byte(tmp_path):
    out = lm("build", "--text", str(DATA / "kjv400.txt"), "--order", "4", "--arpa", str(tmp_path / "o4.arpa"), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["method"] == "mkn" and summary["order"] == 4 and summary["warnings"] == []
    expected = gzip.decompress((DATA / "kjv400.o4.arpa.gz").read_bytes())
    assert (tmp_path / "o4.arpa").read_bytes() == expected
    assert summary["written_ngrams"] == [int(line.split(b"=")[1]) for line in expected.splitlines()[1:5]]


def test_build_with_prune_and_from_count_shards(tmp_path):
    lines = (DATA / "kjv400.txt").read_text().splitlines()
    (tmp_path / "a.txt").write_text("\n".join(lines[:150]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(lines[150:]) + "\n")
    for part in ("a", "b"):
        out = lm(
            "count", "--text", str(tmp_path / f"{part}.txt"), "--order", "4", "--out", str(tmp_path / f"{part}.npz")
        )
        assert out.returncode == 0, out.stderr
    out = lm(
        "build",
        "--counts",
        str(tmp_path / "a.npz"),
        str(tmp_path / "b.npz"),
        "--order",
        "4",
        "--prune",
        "0",
        "1",
        "1",
        "--arpa",
        str(tmp_path / "p.arpa"),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "p.arpa").read_bytes() == gzip.decompress((DATA / "kjv400.o4.prune011.arpa.gz").read_bytes())


def test_fallback_discounts_only_with_the_flag_as_lmplz(tmp_path):
    out = lm("build", "--text", str(DATA / "tiny.txt"), "--order", "3", "--arpa", str(tmp_path / "t.arpa"))
    assert out.returncode == 2
    assert "--discount_fallback" in out.stderr and "cannot compute the discounts of order 2" in out.stderr
    assert not (tmp_path / "t.arpa").exists()
    out = lm(
        "build", "--text", str(DATA / "tiny.txt"), "-o", "3", "--arpa", str(tmp_path / "t.arpa"), "--discount_fallback"
    )
    assert out.returncode == 0, out.stderr
    assert "warning: mkn: cannot compute the discounts of order" in out.stderr
    assert (tmp_path / "t.arpa").read_bytes() == gzip.decompress((DATA / "tiny.o3.fallback.arpa.gz").read_bytes())


@pytest.mark.parametrize("method", ["kn", "absolute", "katz", "witten-bell", "add-k", "mle"])
def test_other_methods_build_and_score(tmp_path, method):
    arpa = tmp_path / f"{method}.arpa"
    out = lm("build", "--text", str(DATA / "kjv400.txt"), "--order", "3", "--method", method, "--arpa", str(arpa))
    assert out.returncode == 0, out.stderr
    ppl = json.loads(lm("ppl", "--arpa", str(arpa), "--text", str(DATA / "tiny.txt"), "--json").stdout)
    assert ppl["sentences"] == 3 and ppl["words"] == 14 and ppl["perplexity"] > 1


def test_ppl_matches_kenlm(tmp_path):
    import kenlm

    arpa = str(DATA / "kjv400.o3.arpa.gz")
    ppl = json.loads(lm("ppl", "--arpa", arpa, "--text", str(DATA / "tiny.txt"), "--json").stdout)
    model = kenlm.Model(arpa)
    sentences = (DATA / "tiny.txt").read_text().splitlines()
    total = sum(model.score(s) for s in sentences)
    assert ppl["log10_prob"] == pytest.approx(total, abs=1e-4)
    assert ppl["perplexity"] == pytest.approx(10 ** (-total / (14 + 3)), rel=1e-5)
    assert ppl["oov"] == sum(w not in model for s in sentences for w in s.split())


def test_prune_generate_info(tmp_path):
    arpa = str(DATA / "kjv400.o3.arpa.gz")
    out = json.loads(
        lm("prune", "--arpa", arpa, "--threshold", "1e-5", "--out", str(tmp_path / "p.arpa"), "--json").stdout
    )
    assert out["before"][0] == out["after"][0] and sum(out["after"]) < sum(out["before"])
    info = json.loads(lm("info", "--arpa", str(tmp_path / "p.arpa"), "--json").stdout)
    assert info["ngrams"] == out["after"] and info["order"] == 3
    gen = json.loads(lm("generate", "--arpa", arpa, "--prefix", "and the", "--strategy", "greedy", "--json").stdout)
    assert gen["results"][0]["text"] and gen["results"][0]["log10_prob"] < 0
    methods = json.loads(lm("info", "--methods", "--json").stdout)["methods"]
    assert "mkn" in methods and "prune" in methods["katz"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "--order", "3", "--arpa", "x.arpa"], "--text/--counts: expected exactly one of them, got neither"),
        (["build", "--text", "missing.txt", "--order", "3", "--arpa", "x.arpa"], "missing.txt"),
        (["build", "--text", "bad.arpa", "--order", "0", "--arpa", "x.arpa"], "order"),
        (
            ["build", "--text", "bad.arpa", "--order", "3", "--method", "nope", "--arpa", "x.arpa"],
            "method: expected one of",
        ),
        (["ppl", "--arpa", "bad.arpa", "--text", "bad.arpa"], "bad.arpa:1:"),
    ],
)
def test_errors_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "bad.arpa").write_text("not an arpa\n")
    out = lm(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
    assert not (tmp_path / "x.arpa").exists()


def test_build_says_when_the_run_outgrew_the_counting_budget(tmp_path):
    # The budget bounds counting (sorted runs spill to disk); estimation holds the counts. A run
    # whose peak passes it says so on stderr, and --json reports the peak.
    small = lm("build", "--text", str(DATA / "kjv400.txt"), "-o", "2", "--arpa", str(tmp_path / "a.arpa"),
               "-S", "64k", "--json")  # fmt: skip
    assert small.returncode == 0, small.stderr
    assert "above --memory 64k: the budget bounds counting;" in small.stderr
    peak = json.loads(small.stdout)["peak_rss_mb"]
    assert 10 < peak < 4096  # a Python process's resident peak, in MiB
    roomy = lm("build", "--text", str(DATA / "kjv400.txt"), "-o", "2", "--arpa", str(tmp_path / "b.arpa"), "-S", "8G")
    assert roomy.returncode == 0 and "peak memory" not in roomy.stderr
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()  # spilling changes nothing
