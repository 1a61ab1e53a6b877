"""Batched scoring (score_batch, score_words) against the one-word-at-a-time walk, on a real model.

score_batch prefetches the table slots of words several positions ahead, through sentence
boundaries; on KenLM probing and trie binaries it runs the words through a pipeline
(lm/ngram_pipeline.h) where each word's chain of lookups advances one order every few words;
score_words prefetches the slots of rows ahead. Scores must equal the unbatched walk bit for
bit (and kenlm's), whatever the sentence lengths (empty, one word, longer than the pipeline),
flags, unknown and non-ASCII words, batch sizes and thread counts.
"""

import subprocess
import sys

import numpy as np
import pytest

from speechdecode.lm.kenlm_binary import write_binary
from speechdecode.lm.model import NgramModel
from speechdecode.testing.corpora import kjv_sentences


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    verses = kjv_sentences()  # Debian's bible-kjv, installed by `make test` (DEBS)
    work = tmp_path_factory.mktemp("batch")
    text, arpa = work / "train.txt", work / "o5.arpa"
    text.write_text("\n".join(verses[:3000]) + "\n")
    command = [sys.executable, "-m", "speechdecode", "lm", "build", "--text", str(text), "--order", "5"]
    subprocess.run([*command, "--arpa", str(arpa)], check=True, capture_output=True)
    held = verses[3000:3400]
    return NgramModel.from_arpa(str(arpa)), str(arpa), held


def sentences_of(held, rng):
    """Held-out verses cut to awkward lengths (0, 1, 2, ..., long) with unknown words (some not
    ASCII) mixed in, runs of several spaces and tabs, and a few sentences of hundreds of words."""
    out = []
    for i, verse in enumerate(held):
        words = verse.split()
        cut = words[: int(rng.integers(0, 4))] if i % 5 == 0 else words
        if i % 7 == 0:
            cut = [*cut, "qzxv-unknown", *cut]
        if i % 11 == 0:
            cut = [*cut, "Ångström", "ünknown", "日本語", *cut]
        if i % 37 == 0:
            cut = [w for v in held[i : i + 12] for w in v.split()]
        out.append(("  \t " if i % 3 == 0 else " ").join(cut))
    return out


@pytest.fixture(scope="module")
def binaries(model, tmp_path_factory):
    """KenLM binaries of the model: probing, trie, quantized trie with compressed pointers."""
    _, arpa, _ = model
    work = tmp_path_factory.mktemp("binaries")
    out = {}
    for kind, options in [
        ("probing", {"type": "probing"}),
        ("trie", {"type": "trie"}),
        ("trie-q8b8a22", {"type": "trie", "quantize": (8, 8), "pointer_bits": 22}),
    ]:
        path = work / f"o5.{kind}.bin"
        write_binary(arpa, path, **options)
        out[kind] = str(path)
    return out


@pytest.mark.parametrize("bos,eos", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("threads", [1, 2])
def test_score_batch_equals_walk(model, bos, eos, threads):
    lm, _, held = model
    rng = np.random.default_rng(3)
    sentences = sentences_of(held, rng)
    want = np.array([lm.score(s, bos=bos, eos=eos) for s in sentences])
    for count in (1, 5, 63, 64, 65, len(sentences)):
        got = lm.score_batch(sentences[:count], bos=bos, eos=eos, num_threads=threads)
        assert np.array_equal(got, want[:count]), count
        ids = [np.array([lm.word_id(w) for w in s.split()], dtype=np.int64) for s in sentences[:count]]
        assert np.array_equal(lm.score_batch(ids, bos=bos, eos=eos, num_threads=threads), want[:count])


def test_score_batch_equals_kenlm(model):
    kenlm = pytest.importorskip("kenlm")
    lm, arpa, held = model
    sentences = sentences_of(held, np.random.default_rng(4))
    theirs = kenlm.Model(arpa)
    assert np.array_equal(lm.score_batch(sentences, num_threads=1), [theirs.score(s) for s in sentences])


@pytest.mark.parametrize("kind", ["probing", "trie", "trie-q8b8a22"])
@pytest.mark.parametrize("threads", [1, 2])
def test_binary_score_batch_equals_walk_and_kenlm(model, binaries, kind, threads):
    """The pipeline over a KenLM binary: the binary's own walk and kenlm's scores on the file."""
    import kenlm

    _, _, held = model
    lm, theirs = NgramModel.load(binaries[kind]), kenlm.Model(binaries[kind])
    sentences = sentences_of(held, np.random.default_rng(6))
    for bos, eos in [(True, True), (True, False), (False, True), (False, False)]:
        want = np.array([lm.score(s, bos=bos, eos=eos) for s in sentences])
        assert np.array_equal(want, [theirs.score(s, bos=bos, eos=eos) for s in sentences])
        for count in (1, 2, 63, 65, len(sentences)):
            got = lm.score_batch(sentences[:count], bos=bos, eos=eos, num_threads=threads)
            assert np.array_equal(got, want[:count]), (bos, eos, count)
        ids = [np.array([lm.word_id(w) for w in s.split()], dtype=np.int64) for s in sentences]
        assert np.array_equal(lm.score_batch(ids, bos=bos, eos=eos, num_threads=threads), want)


def test_score_batch_of_empty_sentences(model, binaries):
    """A batch of only empty sentences (no words at all without eos) scores 0 each; with eos, </s>."""
    arpa_lm, _, _ = model
    for lm in [arpa_lm, *(NgramModel.load(p) for p in binaries.values())]:
        for eos in (True, False):
            want = [lm.score("", eos=eos)] * 5
            assert np.array_equal(lm.score_batch(["", " ", "\t", "", "  "], eos=eos), want)
            assert want[0] == (np.float32(lm.score_word(lm.begin_state(), 2)[0]) if eos else 0.0)


def test_score_words_equals_score_word(model):
    lm, _, held = model
    rng = np.random.default_rng(5)
    words = [lm.word_id(w) for s in held for w in s.split()]
    # States reached along the text, then shuffled: neighbouring rows share nothing.
    rows, states, state = [], [], lm.begin_state()
    for w in words:
        states.append(state)
        rows.append(w)
        state = lm.score_word(state, w)[1]
    order = rng.permutation(len(rows))
    table = np.full((len(rows), lm.order - 1), -1, dtype=np.int32)
    for r, i in enumerate(order):
        table[r, : len(states[i])] = states[i]
    ids = np.array(rows, dtype=np.int32)[order]
    for count in (1, 3, 5, 1023, 1025, len(ids)):
        probs, nexts = lm.score_words(table[:count], ids[:count], num_threads=2)
        for r in range(count):
            i = order[r]
            score, after = lm.score_word(states[i], rows[i])
            assert probs[r] == np.float32(score)
            assert tuple(int(v) for v in nexts[r] if v >= 0) == after
