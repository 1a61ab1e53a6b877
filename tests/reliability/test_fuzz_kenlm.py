"""Fuzzing NgramModel.load on KenLM binaries (tests/data/kenlm, written by KenLM's build_binary).

The loader memory-maps the file and follows offsets read from it, so these probes are where a
read past the mapping would be. Each damaged file is loaded, and when it loads every word is
scored from <s> and a few sentences are scored (following the trie's pointers), in the worker.

* known-invalid damage: the file cut short, the magic or the sanity block changed, an order,
  model type or search version that is not the file's, an n-gram count off by some: rejected
  with an error naming the file;
* arbitrary damage (bytes flipped, words overwritten with extreme values) anywhere: no crash, no
  hang, errors name the file.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probing import DATA, FUZZ, check_outcome, examples

from speechdecode import _backend

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")

KENLM = DATA / "kenlm"
# Every binary type of the tiny models, and the larger trigram's probing and compressed trie.
FILES = [*sorted(p.name for p in KENLM.glob("tiny.*.bin")), "kjv400.o3.prune11.probing.bin"]
FILES.append("kjv400.o3.prune11.trie-q8b8a22.bin")
SENTENCES = ["the cat sat on the mat", "a dog and a cat </s>", "and the lord said unto moses", "zebra <unk> the"]

# The header (csrc/lm/kenlm_binary.h): magic [0, 52), sanity block [56, 88), order (uint8) 88,
# probing multiplier (float) 92, model type (int32) 96, has-vocabulary (bool) 100, search version
# (uint32) 104, then one uint64 count per order from 108.
MAGIC_END, SANITY, ORDER, MODEL_TYPE, SEARCH_VERSION, COUNTS = 50, (56, 88), 88, 96, 104, 108


@pytest.fixture(scope="module")
def originals() -> dict[str, bytes]:
    return {name: (KENLM / name).read_bytes() for name in FILES}


def test_originals_load(prober, originals):
    """The probes start from files that load, and score as their ARPA source scores."""
    for name in originals:
        outcome = prober("ngram_load", str(KENLM / name), SENTENCES)
        assert outcome[0] == "ok", outcome
        source = DATA / "lmplz" / (".".join(name.split(".")[:3]) + ".arpa.gz")
        arpa = prober("ngram_load", str(source), SENTENCES)
        assert outcome[1][:3] == arpa[1][:3]  # order, counts, vocabulary size
        tolerance = 0.05 if "-q" in name else 1e-4  # quantized values
        assert outcome[1][3] == pytest.approx(arpa[1][3], abs=tolerance * 8)


def _header_damage(data, raw: bytearray) -> str:
    order = raw[ORDER]
    kind = data.draw(st.sampled_from(["cut", "magic", "sanity", "order", "model_type", "search_version", "count"]))
    if kind == "cut":
        del raw[data.draw(st.integers(0, len(raw) - 1)) :]
    elif kind == "magic":
        at = data.draw(st.integers(0, MAGIC_END - 1))
        raw[at] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]))
    elif kind == "sanity":
        raw[data.draw(st.integers(*SANITY).filter(lambda i: i not in range(76, 80)))] ^= 1 << data.draw(
            st.integers(0, 7)
        )
    elif kind == "order":
        raw[ORDER] = data.draw(st.sampled_from([0, 1, 11, 255, order - 1, order + 1]).filter(lambda v: v != order))
    elif kind == "model_type":
        current = struct.unpack_from("<i", raw, MODEL_TYPE)[0]
        struct.pack_into("<i", raw, MODEL_TYPE, data.draw(st.sampled_from([-1, 6, 7, 2**31 - 1, *range(6)]).filter(
            lambda t: t != current and {t, current} not in ({2, 4}, {3, 5}))))  # fmt: skip
    elif kind == "search_version":
        current = struct.unpack_from("<I", raw, SEARCH_VERSION)[0]
        struct.pack_into("<I", raw, SEARCH_VERSION, data.draw(st.integers(0, 2**32 - 1).filter(lambda v: v != current)))
    else:
        at = COUNTS + 8 * data.draw(st.integers(0, order - 1))
        count = struct.unpack_from("<Q", raw, at)[0]
        change = data.draw(
            st.sampled_from([-2, -1, 1, 2, 1000, 2**32, 2**63 - count - 1]).filter(lambda d: count + d >= 0)
        )
        struct.pack_into("<Q", raw, at, count + change)
    return kind


@settings(FUZZ, max_examples=examples(500))
@given(data=st.data())
def test_damaged_header_is_rejected(prober, originals, tmp_path, data):
    name = data.draw(st.sampled_from(FILES))
    raw = bytearray(originals[name])
    kind = _header_damage(data, raw)
    path = tmp_path / f"header-{name}"
    path.write_bytes(bytes(raw))
    outcome = prober("ngram_load", str(path), SENTENCES)
    check_outcome(f"kenlm {kind}", outcome, path, must_fail=True)


@settings(FUZZ, max_examples=examples(900))
@given(data=st.data())
def test_damaged_body_fails_cleanly(prober, originals, tmp_path, data):
    name = data.draw(st.sampled_from(FILES))
    raw = bytearray(originals[name])
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):  # one bit
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        else:  # an aligned word with an extreme value (counts, offsets, pointers, hashes, floats)
            width = data.draw(st.sampled_from([4, 8]))
            at = data.draw(st.integers(0, len(raw) // width - 1)) * width
            value = data.draw(st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1, 0x7FC00000]))
            raw[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
    path = tmp_path / f"body-{name}"
    path.write_bytes(bytes(raw))
    outcome = prober("ngram_load", str(path), SENTENCES)
    check_outcome("kenlm body damage", outcome, path)
    if outcome[0] == "error":
        assert outcome[1] in ("InputFileError", "ArpaFormatError"), outcome
