"""Reading KenLM binary files: NgramModel.load on files KenLM's build_binary wrote, scored against
the ``kenlm`` module on the same files (tests/data/kenlm/README.md says how they were made).

Every type is covered (probing; trie; trie with -q/-b quantization; with -a pointer compression;
both), on a bigram model, a tiny trigram model, and lmplz models of orders 3 and 4 with pruned
unigrams. Damaged files (every truncation of a small file, patched headers, flipped bytes) must
raise an error naming the file, never crash or read past the mapping.
"""

import glob
import gzip
import os
import random
import shutil

import kenlm
import numpy as np
import pytest

from speechdecode.errors import InputFileError
from speechdecode.lm.model import NgramModel

HERE = os.path.dirname(__file__)
KENLM_DATA = os.path.join(HERE, "..", "data", "kenlm")
LMPLZ_DATA = os.path.join(HERE, "..", "data", "lmplz")
# Order 10 files (kjv40.o10.*) are beyond the kenlm module's order 6: test_kenlm_orders.py has them.
BINARIES = sorted(p for p in glob.glob(os.path.join(KENLM_DATA, "*.bin")) if ".o10." not in p)
NAMES = [os.path.basename(p) for p in BINARIES]
TYPES = {
    "probing": "probing",
    "rest-probing": "rest_probing",
    "trie": "trie",
    "trie-q8b8": "quant_trie",
    "trie-q4b3a255": "quant_array_trie",
    "trie-a22": "array_trie",
    "trie-q8b8a22": "quant_array_trie",
    "trie-novocab": "trie",
}


def arpa_of(path: str) -> str:
    """The lmplz ARPA file a binary was built from."""
    model = os.path.basename(path).rsplit(".", 2)[0]
    return os.path.join(LMPLZ_DATA, model + ".arpa.gz")


def arpa_unigrams(path: str) -> list[str]:
    words, section = [], False
    with gzip.open(path, "rt") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                section = True
            elif line.startswith("\\"):
                section = False
            elif section and line:
                words.append(line.split("\t")[1])
    return words


def sentences(vocab: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = [w for w in vocab if w not in ("<s>", "</s>")] + ["zebra", "quux", "<unk>", "<UNK>"]
    return [" ".join(rng.choice(pool) for _ in range(rng.choice([0, 1, 2, 3, 7, 13, 31]))) for _ in range(count)]


@pytest.fixture(scope="module", params=BINARIES, ids=NAMES)
def pair(request):
    path = request.param
    return path, NgramModel.load(path), kenlm.Model(path)


def test_oracle_files_present():
    assert len(BINARIES) == 23
    for path in BINARIES:
        with open(path, "rb") as f:
            assert f.read(33) == b"mmap lm http://kheafield.com/code"


def test_header_facts(pair):
    path, ours, theirs = pair
    assert ours.order == theirs.order
    kind = os.path.basename(path).rsplit(".", 2)[1]
    assert ours.kenlm_type == TYPES[kind]
    assert ours.memory_bytes == os.path.getsize(path)
    words = arpa_unigrams(arpa_of(path))
    assert ours.vocab_size == len(words)
    assert ours.counts[0] == len(words)


def test_vocabulary(pair):
    path, ours, theirs = pair
    words = arpa_unigrams(arpa_of(path))
    for w in [*words, "zebra", ""]:
        if w not in ("<unk>", "<UNK>"):  # kenlm says no (id 0); our ARPA loader says yes
            assert (w in ours) == (w in theirs), w
    arpa = NgramModel.load(arpa_of(path))
    assert ("<unk>" in ours, "<UNK>" in ours) == ("<unk>" in arpa, "<UNK>" in arpa)
    assert ours.word_id("<unk>") == 0 and ours.word_id("zebra") == 0
    assert ours.word_id("<s>") == 1 and ours.word_id("</s>") == 2
    if "novocab" in path:
        with pytest.raises(InputFileError, match="no vocabulary strings"):
            ours.vocab  # noqa: B018
        return
    vocab = ours.vocab
    assert sorted(vocab) == sorted(words)
    assert vocab[:3] == ["<unk>", "<s>", "</s>"]
    assert [ours.word_id(w) for w in vocab] == list(range(len(vocab)))


def test_scores_equal_kenlm(pair):
    path, ours, theirs = pair
    for s in sentences(arpa_unigrams(arpa_of(path)), 150, seed=len(path)):
        for bos in (True, False):
            for eos in (True, False):
                assert ours.score(s, bos=bos, eos=eos) == theirs.score(s, bos=bos, eos=eos), (s, bos, eos)
                mine = [tuple(x) for x in ours.full_scores(s, bos=bos, eos=eos)]
                assert mine == [tuple(x) for x in theirs.full_scores(s, bos=bos, eos=eos)], (s, bos, eos)


def test_batch_scores_equal_single(pair):
    path, ours, _ = pair
    batch = sentences(arpa_unigrams(arpa_of(path)), 97, seed=3)
    expect = np.array([ours.score(s) for s in batch])
    np.testing.assert_array_equal(ours.score_batch(batch, num_threads=2), expect)
    ids = [[ours.word_id(w) for w in s.split()] for s in batch]
    np.testing.assert_array_equal(ours.score_batch(ids, num_threads=2), expect)


def test_states_follow_kenlm(pair):
    """score_word along random word sequences: the kenlm module's BaseFullScore, and states equal
    exactly when KenLM's states are equal."""
    path, ours, theirs = pair
    words = [w for w in arpa_unigrams(arpa_of(path)) if w != "<s>"] + ["zebra"]
    rng = random.Random(7)
    seen_ours, seen_theirs = {}, {}
    for trial in range(60):
        state, kstate = ours.begin_state(), kenlm.State()
        if trial % 3 == 0:
            state = ours.null_state()
            theirs.NullContextWrite(kstate)
        else:
            theirs.BeginSentenceWrite(kstate)
        for _ in range(rng.choice([1, 2, 5, 9])):
            w = rng.choice(words)
            out = kenlm.State()
            expect = theirs.BaseFullScore(kstate, w, out)
            prob, state = ours.score_word(state, w)
            assert prob == expect.log_prob
            kstate = out
            assert seen_ours.setdefault(state, kstate) == kstate
            seen_theirs.setdefault(kstate, set()).add(state)
    assert len(seen_ours) > (0 if "tiny" in path else 20)
    for group in seen_theirs.values():
        assert len(group) == 1


def test_score_words_equal_score_word(pair):
    """The array API with unminimised contexts of every length equals score_word chains."""
    _, ours, _ = pair
    rng = np.random.default_rng(11)
    n, width = 389, ours.order - 1
    lengths = rng.integers(0, width + 1, n)
    states = np.full((n, width), -1, dtype=np.int32)
    for r, length in enumerate(lengths):
        states[r, :length] = rng.integers(0, ours.vocab_size, length)
    words = rng.integers(0, ours.vocab_size, n).astype(np.int32)
    probs, nexts = ours.score_words(states, words, num_threads=2)
    for r in range(n):
        context = [int(x) for x in states[r] if x >= 0]
        p, nxt = ours.score_word(tuple(context), int(words[r]))
        assert probs[r] == np.float32(p)
        assert tuple(int(x) for x in nexts[r] if x >= 0) == nxt


def test_unquantized_binaries_equal_the_arpa_model():
    """The same model read from its ARPA file and from KenLM's unquantized binaries: equal scores
    and equal states for arbitrary contexts (ids through words: the id orders differ)."""
    for model in ("kjv400.o4.prune123", "kjv400.o3.prune11", "tiny.o3.fallback"):
        arpa = NgramModel.load(os.path.join(LMPLZ_DATA, model + ".arpa.gz"))
        rng = np.random.default_rng(5)
        for kind in ("probing", "trie", "trie-a22"):
            binary = NgramModel.load(os.path.join(KENLM_DATA, f"{model}.{kind}.bin"))
            to_binary = np.array([binary.word_id(w) for w in arpa.vocab], dtype=np.int32)
            n, width = 500, arpa.order - 1
            states = np.full((n, width), -1, dtype=np.int32)
            for r in range(n):
                length = rng.integers(0, width + 1)
                states[r, :length] = rng.integers(0, arpa.vocab_size, length)
            words = rng.integers(0, arpa.vocab_size, n).astype(np.int32)
            p_arpa, s_arpa = arpa.score_words(states, words)
            mapped = np.where(states >= 0, to_binary[np.maximum(states, 0)], -1).astype(np.int32)
            p_bin, s_bin = binary.score_words(mapped, to_binary[words])
            np.testing.assert_array_equal(p_bin, p_arpa)
            np.testing.assert_array_equal(s_bin, np.where(s_arpa >= 0, to_binary[np.maximum(s_arpa, 0)], -1))


def test_load_decides_by_content(tmp_path):
    source = os.path.join(KENLM_DATA, "tiny.o3.fallback.trie.bin")
    renamed = tmp_path / "model.arpa.gz"  # a misleading name
    shutil.copy(source, renamed)
    assert NgramModel.load(renamed).kenlm_type == "trie"
    assert NgramModel.from_arpa(renamed).kenlm_type == "trie"
    plain = tmp_path / "model.bin"
    with gzip.open(os.path.join(LMPLZ_DATA, "tiny.o3.fallback.arpa.gz"), "rb") as f:
        plain.write_bytes(f.read())
    arpa = NgramModel.load(plain)
    assert arpa.kenlm_type is None
    assert arpa.score("the cat") == NgramModel.load(source).score("the cat")


# ------------------------------------------------------------------------------------------------
# Damaged files


def read_bytes(name: str) -> bytes:
    with open(os.path.join(KENLM_DATA, name), "rb") as f:
        return f.read()


def test_every_truncation_is_an_error(tmp_path):
    for name in ("tiny.o3.fallback.probing.bin", "tiny.o3.fallback.trie-q8b8a22.bin", "tiny.o2.prune22.trie.bin"):
        data = read_bytes(name)
        path = tmp_path / name
        for cut in range(len(data)):
            path.write_bytes(data[:cut])
            with pytest.raises(InputFileError) as info:
                NgramModel.load(path)
            assert str(path) in str(info.value), cut
            if cut >= 88:
                assert "truncated" in str(info.value), (cut, str(info.value))


def test_truncation_at_larger_section_boundaries(tmp_path):
    """Cuts at 8-byte boundaries and just after them in a larger trie with pointer compression."""
    data = read_bytes("kjv400.o3.prune11.trie-q8b8a22.bin")
    path = tmp_path / "cut.bin"
    for cut in [*range(0, len(data), 4093), *range(len(data) - 64, len(data))]:
        path.write_bytes(data[:cut])
        with pytest.raises(InputFileError, match=r"cut\.bin"):
            NgramModel.load(path)


def patched(tmp_path, name: str, offset: int, value: bytes):
    data = bytearray(read_bytes(name))
    data[offset : offset + len(value)] = value
    path = tmp_path / "patched.bin"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "offset, value, message",
    [
        (0, b"mmap lm http://kheafield.com/code incomplete\n", "did not finish building"),
        (49, b"4", "version 4"),
        (68, (1).to_bytes(4, "big"), "big-endian"),
        (56, b"\x01", "sanity block"),
        (88, bytes([11]), "above the supported maximum 10"),
        (88, bytes([1]), "order 1"),
        (96, (9).to_bytes(4, "little"), "unknown KenLM model type 9"),
        (104, (7).to_bytes(4, "little"), "search version 7"),
        (92, np.float32(0.5).tobytes(), "probing multiplier"),
        (108, (10**9).to_bytes(8, "little"), "more than a file"),
    ],
)
def test_bad_headers(tmp_path, offset, value, message):
    path = patched(tmp_path, "tiny.o3.fallback.trie.bin", offset, value)
    with pytest.raises(InputFileError, match=message) as info:
        NgramModel.load(path)
    assert str(path) in str(info.value)


def test_flipped_bytes_never_crash(tmp_path):
    """Random damage after the header: loading and scoring either work or raise InputFileError."""
    rng = random.Random(1)
    outcomes = set()
    for name in ("tiny.o3.fallback.trie-a22.bin", "tiny.o3.fallback.trie-q8b8.bin", "tiny.o3.fallback.probing.bin"):
        data = read_bytes(name)
        for trial in range(150):
            damaged = bytearray(data)
            for _ in range(rng.choice([1, 4, 16])):
                damaged[rng.randrange(136, len(data))] = rng.randrange(256)
            path = tmp_path / f"{trial}.bin"
            path.write_bytes(bytes(damaged))
            try:
                model = NgramModel.load(path)
                for s in ("the cat sat", "a b c d e", "", "the the the"):
                    model.score(s)
                model.score_words(np.zeros((3, model.order - 1), np.int32), np.array([0, 1, 2], np.int32))
                outcomes.add("ok")
            except InputFileError as e:
                assert str(path) in str(e)
                outcomes.add("error")
    assert outcomes == {"ok", "error"}


def test_a_decoder_with_a_binary_lm_decodes_as_with_the_arpa():
    """CtcPrefixBeamSearch takes an LM path; KenLM's unquantized binaries of an ARPA file give the
    same hypotheses and scores as the ARPA file itself (the decoder goes through the state API)."""
    from speechdecode.decoding import CtcPrefixBeamSearch

    chars = ["-", "|", *"abcdefghijklmnopqrstuvwxyz'"]
    rng = np.random.default_rng(3)
    with open(os.path.join(LMPLZ_DATA, "kjv400.txt")) as f:
        lines = f.read().splitlines()[:4]
    batch = []
    for line in lines:
        frames = []
        for c in line[:60].replace(" ", "|"):
            for index in (chars.index(c), 0):
                p = rng.dirichlet(np.ones(len(chars)) * 0.3)
                p = 0.4 * p + 0.6 * np.eye(len(chars))[index]
                frames.append(np.log(p))
        batch.append(np.array(frames[:100], dtype=np.float32))
    log_probs = np.stack([f[: min(len(f) for f in batch)] for f in batch])
    decoded = {}
    for name in ("kjv400.o3.prune11.arpa.gz", "kjv400.o3.prune11.probing.bin", "kjv400.o3.prune11.trie-a22.bin"):
        folder = LMPLZ_DATA if name.endswith(".gz") else KENLM_DATA
        search = CtcPrefixBeamSearch(chars, lm=os.path.join(folder, name), beam=16, nbest=3, alpha=0.8, beta=1.0)
        decoded[name] = search(log_probs)
    first, *others = decoded.values()
    assert any(h.words for hyps in first for h in hyps)
    assert CtcPrefixBeamSearch(chars, beam=16, nbest=3)(log_probs) != first  # the LM matters here
    for other in others:
        assert other == first
