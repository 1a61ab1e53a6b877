"""Writing KenLM binaries (speechdecode.lm.kenlm_binary.write_binary) and a trie back to ARPA.

Oracles: the files KenLM's build_binary wrote from the same ARPA files (tests/data/kenlm, byte for
byte), and the ``kenlm`` module, which must score our files as it scores the ARPA file itself.
"""

import glob
import gzip
import os
import random

import kenlm
import numpy as np
import pytest

from speechdecode.errors import ArpaFormatError, InputFileError, InvalidArgumentError
from speechdecode.lm.arpa import read_arpa
from speechdecode.lm.kenlm_binary import binary_to_arpa, write_binary
from speechdecode.lm.model import NgramModel

HERE = os.path.dirname(__file__)
KENLM_DATA = os.path.join(HERE, "..", "data", "kenlm")
LMPLZ_DATA = os.path.join(HERE, "..", "data", "lmplz")
OPTIONS = {
    "probing": {"type": "probing"},
    "trie": {"type": "trie"},
    "trie-q8b8": {"type": "trie", "quantize": (8, 8)},
    "trie-a22": {"type": "trie", "pointer_bits": 22},
    "trie-q8b8a22": {"type": "trie", "quantize": (8, 8), "pointer_bits": 22},
    "trie-q4b3a255": {"type": "trie", "quantize": (4, 3), "pointer_bits": 255},
}
NOT_WRITTEN = ("novocab", "rest", ".o10.")  # no -v, no rest costs; order 10 is in test_kenlm_orders.py
ORACLES = [p for p in sorted(glob.glob(os.path.join(KENLM_DATA, "*.bin"))) if not any(k in p for k in NOT_WRITTEN)]


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("oracle", ORACLES, ids=[os.path.basename(p) for p in ORACLES])
def test_same_bytes_as_build_binary(oracle, tmp_path):
    model, kind, _ = os.path.basename(oracle).rsplit(".", 2)
    out = tmp_path / "ours.bin"
    write_binary(os.path.join(LMPLZ_DATA, model + ".arpa.gz"), out, **OPTIONS[kind])
    assert read(out) == read(oracle)


def holes_arpa(path) -> None:
    """kjv400.o4 with 30% of the 3-grams and then 2-grams removed where no longer n-gram needs them
    as a context: suffixes go missing, which every writer must fill in as KenLM does."""
    sections: dict[int, list[str]] = {}
    current = None
    with gzip.open(os.path.join(LMPLZ_DATA, "kjv400.o4.arpa.gz"), "rt") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.endswith("-grams:"):
                current = int(line[1])
                sections[current] = []
            elif current and line and not line.startswith("\\"):
                sections[current].append(line)
    rng = random.Random(0)
    for n in (3, 2):
        contexts = {tuple(line.split("\t")[1].split()[:n]) for line in sections[n + 1]}
        sections[n] = [
            line for line in sections[n] if tuple(line.split("\t")[1].split()) in contexts or rng.random() >= 0.3
        ]
    lines = ["\\data\\", *(f"ngram {n}={len(sections[n])}" for n in range(1, 5))]
    for n in range(1, 5):
        lines += ["", f"\\{n}-grams:", *sections[n]]
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines))


def test_missing_suffixes_score_as_kenlm_scores_the_arpa(tmp_path):
    arpa = tmp_path / "holes.arpa"
    holes_arpa(arpa)
    reference = kenlm.Model(str(arpa))
    vocab = [line.split("\t")[1] for line in arpa.read_text().split("\\2-grams:")[0].splitlines() if "\t" in line]
    rng = random.Random(2)
    sentences = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 12))) for _ in range(300)]
    for kind in ("probing", "trie", "trie-a22"):
        out = tmp_path / f"{kind}.bin"
        write_binary(arpa, out, **OPTIONS[kind])
        theirs, ours = kenlm.Model(str(out)), NgramModel.load(out)
        for s in sentences:
            expect = [tuple(x) for x in reference.full_scores(s)]
            assert [tuple(x) for x in theirs.full_scores(s)] == expect, (kind, s)
            assert [tuple(x) for x in ours.full_scores(s)] == expect, (kind, s)


def test_quantized_files_score_alike_in_kenlm_and_here(tmp_path):
    arpa = os.path.join(LMPLZ_DATA, "kjv400.o5.arpa.gz")
    out = tmp_path / "q.bin"
    write_binary(arpa, out, type="trie", quantize=(9, 7), pointer_bits=8)
    theirs, ours = kenlm.Model(str(out)), NgramModel.load(out)
    with open(os.path.join(LMPLZ_DATA, "kjv400.txt")) as f:
        lines = f.read().splitlines()[:200]
    for s in lines:
        assert ours.score(s) == theirs.score(s)
        assert [tuple(x) for x in ours.full_scores(s)] == [tuple(x) for x in theirs.full_scores(s)]


def arpa_dict(model) -> dict:
    out = {}
    for n in range(model.order):
        for k, row in enumerate(model.ngrams[n].tolist()):
            key = tuple(model.words[i] for i in row)
            backoff = float(model.backoffs[n][k]) if n + 1 < model.order else 0.0
            out[key] = (np.float32(model.log10_probs[n][k]), np.float32(backoff))
    return out


@pytest.mark.parametrize("model", ["tiny.o3.fallback", "kjv400.o4.prune123", "kjv400.o5"])
def test_trie_back_to_arpa_is_exact(model, tmp_path):
    arpa = os.path.join(LMPLZ_DATA, model + ".arpa.gz")
    for options in (OPTIONS["trie"], OPTIONS["trie-a22"]):
        binary = tmp_path / "m.bin"
        write_binary(arpa, binary, **options)
        back = tmp_path / "back.arpa.gz"
        binary_to_arpa(binary, back)
        assert arpa_dict(read_arpa(back)) == arpa_dict(read_arpa(arpa))


def test_quantized_trie_back_to_arpa_has_the_bins(tmp_path):
    binary = os.path.join(KENLM_DATA, "kjv400.o3.prune11.trie-q8b8.bin")
    back = tmp_path / "back.arpa"
    binary_to_arpa(binary, back)
    original = arpa_dict(read_arpa(os.path.join(LMPLZ_DATA, "kjv400.o3.prune11.arpa.gz")))
    restored = arpa_dict(read_arpa(back))
    assert restored.keys() == original.keys()
    # Unigrams are not quantized; higher orders take at most 2^8 distinct probabilities.
    assert all(restored[k] == original[k] for k in original if len(k) == 1)
    assert len({v[0] for k, v in restored.items() if len(k) == 3}) <= 256
    # The restored ARPA scores as KenLM scores the quantized binary.
    sentence = "and god said unto him"
    assert kenlm.Model(str(back)).score(sentence) == kenlm.Model(binary).score(sentence)


def test_probing_cannot_go_back_to_arpa(tmp_path):
    with pytest.raises(InputFileError, match="hashes"):
        binary_to_arpa(os.path.join(KENLM_DATA, "tiny.o3.fallback.probing.bin"), tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()


def test_bad_options_and_files(tmp_path):
    arpa = os.path.join(LMPLZ_DATA, "tiny.o3.fallback.arpa.gz")
    with pytest.raises(InvalidArgumentError, match="type"):
        write_binary(arpa, tmp_path / "x.bin", type="hash")
    with pytest.raises(InvalidArgumentError, match="trie"):
        write_binary(arpa, tmp_path / "x.bin", quantize=(8, 8))
    with pytest.raises(InvalidArgumentError, match=r"1\.\.25"):
        write_binary(arpa, tmp_path / "x.bin", type="trie", quantize=(26, 8))
    with pytest.raises(InvalidArgumentError, match=r"0\.\.255"):
        write_binary(arpa, tmp_path / "x.bin", type="trie", pointer_bits=256)
    broken = tmp_path / "broken.arpa"
    broken.write_text("\\data\\\nngram 1=3\nngram 2=2\nngram 3=1\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-1\ta\n\n"
                      "\\2-grams:\n-1\t<s> a\n-1\ta </s>\n\n\\3-grams:\n-1\ta a </s>\n\n\\end\\\n")  # fmt: skip
    for kind in ("probing", "trie"):
        with pytest.raises(ArpaFormatError, match="context 'a a'"):
            write_binary(broken, tmp_path / "x.bin", type=kind)
    assert not (tmp_path / "x.bin").exists()


def test_missing_unk_is_added_as_kenlm_adds_it(tmp_path):
    """An ARPA file without <unk>: KenLM adds it with log10 probability -100; our binaries of the
    file score in kenlm as kenlm scores the ARPA file itself."""
    with gzip.open(os.path.join(LMPLZ_DATA, "kjv400.o3.prune11.arpa.gz"), "rt") as f:
        lines = f.read().splitlines()
    unigrams = int(lines[1].split("=")[1])
    lines = [line for line in lines if "\t<unk>" not in line]
    lines[1] = f"ngram 1={unigrams - 1}"
    arpa = tmp_path / "nounk.arpa"
    arpa.write_text("\n".join(lines) + "\n")
    reference = kenlm.Model(str(arpa))
    with open(os.path.join(LMPLZ_DATA, "kjv400.txt")) as f:
        sentences = [*f.read().splitlines()[:50], "zebra quux the", "<unk> and"]
    for kind in ("probing", "trie", "trie-q8b8a22"):
        out = tmp_path / f"{kind}.bin"
        write_binary(arpa, out, **OPTIONS[kind])
        theirs, ours = kenlm.Model(str(out)), NgramModel.load(out)
        for s in sentences:
            got = [tuple(x) for x in theirs.full_scores(s)]
            assert [tuple(x) for x in ours.full_scores(s)] == got, (kind, s)
            if kind != "trie-q8b8a22":
                assert got == [tuple(x) for x in reference.full_scores(s)], (kind, s)


def test_unigram_models_have_no_kenlm_binary(tmp_path):
    arpa = tmp_path / "o1.arpa"
    arpa.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<unk>\n-1\t<s>\n-1\t</s>\n\n\\end\\\n")
    with pytest.raises(ArpaFormatError, match="order >= 2"):
        write_binary(arpa, tmp_path / "x.bin", type="trie")
    assert not (tmp_path / "x.bin").exists()
