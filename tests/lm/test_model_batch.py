"""Batched scoring (score_batch, score_words) against the one-word-at-a-time walk, on a real model.

score_batch prefetches the table slots of words several positions ahead, through sentence
boundaries, and score_words those of rows ahead; the keys of every order are computed before
the first probe. Scores must equal the unbatched walk bit for bit (and kenlm's), whatever the
sentence lengths (empty, one word, long), flags, OOV words, batch sizes and thread counts.
"""

import subprocess
import sys

import numpy as np
import pytest

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
    """Held-out verses cut to awkward lengths (0, 1, 2, ..., long) with unknown words mixed in."""
    out = []
    for i, verse in enumerate(held):
        words = verse.split()
        cut = words[: int(rng.integers(0, 4))] if i % 5 == 0 else words
        if i % 7 == 0:
            cut = [*cut, "qzxv-unknown", *cut]
        out.append(" ".join(cut))
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
