"""Orders up to 10 through counting, every estimation method, ARPA, KenLM binaries and query.

The oracles are KenLM's build_binary and query compiled with KENLM_MAX_ORDER=10 (the kenlm module
on PyPI stops at order 6), run on the order-10 ARPA that `speechdecode lm build` makes from the
first 40 lines of tests/data/lmplz/kjv400.txt (tests/data/kenlm/README.md has the commands).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from speechdecode.errors import ArpaFormatError
from speechdecode.lm.kenlm_binary import write_binary
from speechdecode.lm.model import NgramModel

KENLM_DATA = Path(__file__).parent.parent / "data" / "kenlm"
LMPLZ_DATA = Path(__file__).parent.parent / "data" / "lmplz"


def lm(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "speechdecode", "lm", *map(str, args)], capture_output=True, input=stdin, timeout=300
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("o10")
    text = folder / "kjv40.txt"
    text.write_text("\n".join((LMPLZ_DATA / "kjv400.txt").read_text().splitlines()[:40]) + "\n")
    return text


def build(corpus, order, method="mkn"):
    arpa = corpus.parent / f"{method}.o{order}.arpa"
    flags = ["--discount_fallback"] if method in ("mkn", "kn", "absolute") else []
    out = lm("build", "-o", order, "--text", corpus, "--arpa", arpa, "--method", method, *flags)
    assert out.returncode == 0, out.stderr
    return arpa


def test_order_10_binaries_equal_build_binary_and_query_equals_query(corpus, tmp_path):
    arpa = build(corpus, 10)
    for kind, options in (("trie", {}), ("trie-q8b8a22", {"quantize": (8, 8), "pointer_bits": 22})):
        out = tmp_path / f"{kind}.bin"
        write_binary(arpa, out, type="trie", **options)
        assert out.read_bytes() == (KENLM_DATA / f"kjv40.o10.{kind}.bin").read_bytes()
    result = lm("query", KENLM_DATA / "kjv40.o10.trie-q8b8a22.bin", stdin=corpus.read_bytes())
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == (KENLM_DATA / "kjv40.o10.trie-q8b8a22.query.txt").read_text()


@pytest.mark.parametrize("method", ["mkn", "kn", "absolute", "katz", "witten-bell", "add-k", "mle"])
def test_every_method_at_order_10_scores_alike_from_arpa_and_binaries(corpus, tmp_path, method):
    arpa = build(corpus, 10, method)
    reference = NgramModel.load(arpa)
    assert reference.order == 10
    lines = corpus.read_text().splitlines()
    longest = max(s.ngram_length for line in lines for s in reference.full_scores(line))
    assert longest == 10
    for kind in ("probing", "trie"):
        binary = tmp_path / f"{kind}.bin"
        write_binary(arpa, binary, type=kind)
        model = NgramModel.load(binary)
        for line in lines:
            assert model.full_scores(line) == reference.full_scores(line), (kind, line)


def test_order_11_is_refused_with_the_reason(corpus, tmp_path):
    arpa = build(corpus, 11)
    with pytest.raises(ArpaFormatError, match="order 11 is above the supported maximum of 10"):
        NgramModel.load(arpa)
    out = lm("binary", arpa, tmp_path / "x.bin")
    assert out.returncode == 2 and b"above the supported maximum" in out.stderr
    assert not os.path.exists(tmp_path / "x.bin")
