"""The native ``mkn`` estimator and ARPA writer (csrc/lm/kneser_ney, csrc/lm/arpa_writer):
against KenLM lmplz's own ARPA files digit for digit, against the Python reference, for
normalization in float64 mode, and the writer byte for byte against ``write_arpa``."""

import errno
import gzip
import resource
import signal
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from speechdecode import _backend
from speechdecode.errors import TensorError
from speechdecode.lm.arpa import ArpaModel, format_float, read_arpa, write_arpa
from speechdecode.lm.counts import NgramCounts, count_sentences
from speechdecode.lm.methods._common import conditional_distribution
from speechdecode.lm.methods.kneser_ney import modified_kneser_ney
from speechdecode.lm.native_estimate import DiscountFallbackWarning, estimate_mkn, write_arpa_native

DATA = Path(__file__).parent.parent / "data" / "lmplz"
# (lmplz ARPA, text, order, --prune) as tests/data/lmplz/README.md says each file was made.
LMPLZ_CASES = [(f"kjv400.o{n}.arpa.gz", "kjv400.txt", n, None) for n in range(2, 7)] + [
    ("kjv400.o4.prune011.arpa.gz", "kjv400.txt", 4, [0, 1, 1]),
    ("kjv400.o3.prune002.arpa.gz", "kjv400.txt", 3, [0, 0, 2]),
    ("tiny.o3.fallback.arpa.gz", "tiny.txt", 3, None),
    # Unigram pruning.
    ("kjv400.o3.prune11.arpa.gz", "kjv400.txt", 3, [1, 1]),
    ("kjv400.o4.prune123.arpa.gz", "kjv400.txt", 4, [1, 2, 3]),
    ("kjv400.o3.prune22.arpa.gz", "kjv400.txt", 3, [2, 2]),
    ("tiny.o2.prune22.arpa.gz", "tiny.txt", 2, [2, 2]),
]

# kjv400.txt plus three lines "and zzword": "zzword" has the highest id, so the last 3-gram of
# lmplz's suffix-sorted stream is "<s> and zzword", and lmplz tallies its suffixes "zzword" and
# "and zzword" (raw count 3, adjusted count 1) with their raw count (kenlm issue 427). These are
# lines of what `lmplz -o 3 -S 100M --text kjv400+zz.txt --arpa out.arpa` (KenLM built from source)
# wrote; without the quirk every number of the model moves (by up to 2.6e-3 in log10).
QUIRK_EXTRA = ["and zzword"] * 3
QUIRK_LMPLZ_LINES = {
    "<unk>": ("-3.718084", "0"),
    "the": ("-1.6106579", "-0.27789223"),
    "zzword": ("-3.5805726", "-0.12067427"),
    "of the": ("-0.7109251", "-0.19889814"),
    "the lord": ("-1.7097576", "-0.1982396"),
    "and zzword": ("-3.2966151", "-0.15825304"),
    "zzword </s>": ("-0.5615316", "0"),
    "and zzword </s>": ("-0.30449986", None),
    "said unto him": ("-0.8481511", None),
    "<s> and zzword": ("-2.504534", None),
}


def corpus(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def arpa_sections(text: str) -> dict[int, list[tuple[str, str, str | None]]]:
    """Per order, the (words, prob, backoff) fields of each line as printed, in file order."""
    sections: dict[int, list] = {}
    order = None
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1 : line.index("-")])
            sections[order] = []
        elif order is not None and line and line != "\\end\\":
            fields = line.split("\t")
            sections[order].append((fields[1], fields[0], fields[2] if len(fields) == 3 else None))
    return sections


def model_sections(model: ArpaModel) -> dict[int, list[tuple[str, str, str | None]]]:
    sections = {}
    for n in range(1, model.order + 1):
        backoffs = model.backoffs[n - 1] if n < model.order else [None] * len(model.ngrams[n - 1])
        sections[n] = [
            (" ".join(model.words[i] for i in row), format_float(p), None if b is None else format_float(b))
            for row, p, b in zip(model.ngrams[n - 1].tolist(), model.log10_probs[n - 1], backoffs, strict=True)
        ]
    return sections


def estimate_quietly(counts, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        return estimate_mkn(counts, **options)


@pytest.mark.parametrize(("arpa", "text", "order", "prune"), LMPLZ_CASES)
def test_lmplz_files_digit_for_digit(arpa, text, order, prune, tmp_path):
    counts = count_sentences(corpus(text), order)
    model = estimate_quietly(counts, prune=prune)
    expected_text = gzip.decompress((DATA / arpa).read_bytes()).decode()
    expected = arpa_sections(expected_text)
    got = model_sections(model)
    for n in range(1, order + 1):
        # Same n-grams in the same (suffix) order ...
        assert [g[0] for g in got[n]] == [e[0] for e in expected[n]], f"{n}-grams"
        # ... within 1e-4 ...
        for (words, p, b), (_, ep, eb) in zip(got[n], expected[n], strict=True):
            assert abs(float(p) - float(ep)) <= 1e-4 and (b is None) == (eb is None), words
            assert b is None or abs(float(b) - float(eb)) <= 1e-4, words
        # ... and printed alike: no line differs in any digit.
        differing = [g for g, e in zip(got[n], expected[n], strict=True) if g != e]
        assert differing == [], f"{len(differing)} {n}-gram lines differ in printed digits, e.g. {differing[:3]}"
    # The whole file as lmplz wrote it, byte for byte.
    write_arpa_native(tmp_path / "model.arpa", model)
    assert (tmp_path / "model.arpa").read_text() == expected_text


def test_count_of_counts_quirk_as_lmplz():
    counts = count_sentences(corpus("kjv400.txt") + QUIRK_EXTRA, 3)
    got = {words: (p, b) for n, lines in model_sections(estimate_mkn(counts)).items() for words, p, b in lines}
    assert {words: got[words] for words in QUIRK_LMPLZ_LINES} == QUIRK_LMPLZ_LINES
    # The quirk is what makes these numbers: float64 mode (no quirk) tallies other count-of-counts.
    native = _backend.native()
    args = (counts.ngrams, counts.counts, len(counts.vocab), [0, 0, 0], (0.5, 1.0, 1.5))
    lmplz_tallies = native.estimate_mkn(*args, float64=False)["count_of_counts"]
    plain_tallies = native.estimate_mkn(*args, float64=True)["count_of_counts"]
    # "zzword" and "and zzword": adjusted count 1, raw count 3.
    assert (lmplz_tallies - plain_tallies).tolist() == [[-1, 0, 1, 0], [-1, 0, 1, 0], [0, 0, 0, 0]]


def test_fallback_warns_naming_the_order():
    counts = count_sentences(corpus("tiny.txt"), 3)
    with pytest.warns(DiscountFallbackWarning) as record:
        estimate_mkn(counts)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert "order 2 (no 2-grams with adjusted count 3;" in messages[0]
    assert "order 3 (no 3-grams with adjusted count 2;" in messages[1]
    assert all("D1=0.5 D2=1 D3+=1.5" in m for m in messages)
    # A discount out of range: bigram counts t1, t2, t3 = 12, 3, 12 give D2 = 2 - 3 Y t3 / t2 < 0.
    sentences = [f"a{i} b{i}" for i in range(4)] + ["c d"] * 2 + [f"e{i} f{i}" for i in range(4) for _ in range(3)]
    with pytest.warns(DiscountFallbackWarning) as record:
        model = estimate_mkn(count_sentences(sentences, 2), discount_fallback=(0.25, 0.75))
    messages = [str(w.message) for w in record]
    assert "order 1 (no 1-grams with adjusted count 2;" in messages[0]
    assert "order 2 (D2=-6 is outside [0, 2];" in messages[1] and "D1=0.25 D2=0.75 D3+=0.75" in messages[1]
    # D = 0.25 for count 1: p(b0 | a0) = (1 - 0.25) / 1 + gamma p(b0), gamma = 0.25.
    words = model.words
    row = np.flatnonzero((model.ngrams[1] == [words.index("a0"), words.index("b0")]).all(axis=1))[0]
    unigram = 10.0 ** model.log10_probs[0][words.index("b0")]
    assert 10.0 ** model.log10_probs[1][row] == pytest.approx(0.75 + 0.25 * unigram, rel=1e-6)


def _histories(model: ArpaModel, rng: np.random.Generator, count: int) -> list[list[int]]:
    histories = [[], [1]]  # empty, <s>
    for n in range(1, model.order):
        rows = model.ngrams[n - 1]
        histories += [rows[i].tolist() for i in rng.choice(len(rows), size=min(count, len(rows)), replace=False)]
    return histories


@pytest.mark.parametrize("prune", [None, [0, 1, 2]])
def test_float64_mode_is_normalized(prune):
    model = estimate_mkn(count_sentences(corpus("kjv400.txt"), 3), prune=prune, float64=True)
    rng = np.random.default_rng(7)
    for history in _histories(model, rng, 15):
        total = conditional_distribution(model, history).sum()
        assert abs(total - 1.0) <= 1e-9, (history, total)


@pytest.mark.parametrize(("order", "prune"), [(1, None), (1, [1]), (4, [0, 1, 1]), (4, [1, 2, 3]), (5, None)])
@pytest.mark.parametrize("float64", [False, True])
def test_matches_the_python_reference(order, prune, float64):
    # <unk> in the text (limit_vocab) and vocabulary words that never occur: beyond lmplz, the
    # two implementations agree on these too (with unigram pruning: <unk> kept, unseen words
    # dropped).
    kept = set(corpus("kjv400.txt")[0].split()) | {"the", "and", "of", "he", "his", "unto", "said", "lord"}
    counts = count_sentences(corpus("kjv400.txt")[:200], order, limit_vocab=kept)
    assert counts.count("<unk>") > 0
    counts.vocab.add("never-seen")
    with warnings.catch_warnings(record=True) as reference_warnings:
        warnings.simplefilter("always")
        reference = modified_kneser_ney(counts, prune=prune, float64=float64)
    with warnings.catch_warnings(record=True) as native_warnings:
        warnings.simplefilter("always")
        native = estimate_mkn(counts, prune=prune, float64=float64)
    assert [str(w.message) for w in native_warnings] == [str(w.message) for w in reference_warnings]
    assert native.words == reference.words
    for n in range(order):
        np.testing.assert_array_equal(native.ngrams[n], reference.ngrams[n])
        tolerance = 1e-12 if float64 else 0.0
        np.testing.assert_allclose(native.log10_probs[n], reference.log10_probs[n], rtol=0, atol=tolerance)
        np.testing.assert_allclose(native.backoffs[n], reference.backoffs[n], rtol=0, atol=tolerance)


def test_parallel_paths_match_one_thread():
    native = _backend.native()
    counts = count_sentences(corpus("kjv400.txt"), 5)
    args = (counts.ngrams, counts.counts, len(counts.vocab), [0, 0, 1, 1, 2], (0.5, 1.0, 1.5))
    serial = native.estimate_mkn(*args, num_threads=1)
    # grain: work items of a few rows, so every pass is cut into many chunks and threads.
    for threads, grain in [(4, 1), (3, 7), (2, 1000)]:
        parallel = native.estimate_mkn(*args, num_threads=threads, grain=grain)
        for key in ("ngrams", "log10_probs", "backoffs"):
            for a, b in zip(serial[key], parallel[key], strict=True):
                np.testing.assert_array_equal(a, b)
    # The GIL is released: two Python threads estimating at once get the serial result.
    results = [None, None]

    def run(i):
        results[i] = native.estimate_mkn(*args, num_threads=2, grain=64)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for result in results:
        for a, b in zip(serial["log10_probs"], result["log10_probs"], strict=True):
            np.testing.assert_array_equal(a, b)


def _edge_model() -> ArpaModel:
    values = np.array([0.0, -0.0, -1e-45, -1.5e-7, -3.4e38, -99.0, -np.inf, 1e20, -0.30103, -1 / 3])
    words = ["<unk>", "<s>", "</s>", "a", "b", "ça", "x_y", "z"]
    unigrams = np.arange(8, dtype=np.int32)[:, None]
    bigrams = np.array([[1, 3], [3, 4], [4, 5], [5, 6], [6, 7], [7, 2]], dtype=np.int32)
    return ArpaModel(words, [unigrams, bigrams], [values[:8], values[4:]], [values[2:], np.zeros(0)])


def test_writer_matches_write_arpa_byte_for_byte(tmp_path):
    models = [
        estimate_mkn(count_sentences(corpus("kjv400.txt"), 3)),
        read_arpa(DATA / "kjv400.o4.prune011.arpa.gz"),
        _edge_model(),
    ]
    for i, model in enumerate(models):
        write_arpa(tmp_path / f"python{i}.arpa", model)
        write_arpa_native(tmp_path / f"native{i}.arpa", model)
        expected = (tmp_path / f"python{i}.arpa").read_bytes()
        assert (tmp_path / f"native{i}.arpa").read_bytes() == expected
        write_arpa_native(tmp_path / f"native{i}.arpa.gz", model)
        assert gzip.decompress((tmp_path / f"native{i}.arpa.gz").read_bytes()) == expected
    reread = read_arpa(tmp_path / "native0.arpa.gz")
    for a, b in zip(reread.log10_probs, models[0].log10_probs, strict=True):
        np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32))


def test_number_format_is_format_float():
    rng = np.random.default_rng(3)
    special = [0.0, -0.0, 1e-45, -1.4e-45, 1.1754942e-38, 3.4028235e38, -3.5e38, 1e20, 16777217.0]
    special += [np.inf, -np.inf, np.nan]
    bits = rng.integers(0, 2**32, 40000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([special, bits[np.isfinite(bits)].astype(np.float64), -rng.random(10000) * 10])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # format_float's float32 overflow to inf
        expected = [format_float(v) for v in values]
    assert _backend.native().format_arpa_floats(values) == expected


def test_failed_write_leaves_no_file(tmp_path):
    model = estimate_mkn(count_sentences(corpus("kjv400.txt"), 3))
    target = tmp_path / "model.arpa"
    target.write_text("old contents\n")
    # A file size limit makes a write fail mid-file with EFBIG (SIGXFSZ ignored).
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, hard))
    try:
        with pytest.raises(OSError) as info:
            write_arpa_native(target, model)
        with pytest.raises(OSError):
            write_arpa_native(tmp_path / "new.arpa.gz", model)  # about 120 kB compressed
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert info.value.errno == errno.EFBIG and str(target) in str(info.value)
    assert target.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.arpa"]  # no temporary file left
    # Bad word ids are found before anything is written.
    bad = ArpaModel(["<unk>", "<s>"], [np.array([[0], [5]], dtype=np.int32)], [np.zeros(2)], [np.zeros(0)])
    with pytest.raises(TensorError) as error:
        write_arpa_native(tmp_path / "bad.arpa", bad)
    assert error.value.argument == "ngrams[0]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.arpa"]


def _replace(counts: NgramCounts, n: int, ngrams=None, values=None) -> NgramCounts:
    grams, tallies = list(counts.ngrams), list(counts.counts)
    if ngrams is not None:
        grams[n - 1] = ngrams
    if values is not None:
        tallies[n - 1] = values
    return NgramCounts(counts.vocab, grams, tallies)


def test_bad_inputs_name_the_array():
    counts = count_sentences(["the cat sat", "the dog sat", "a cat ran"], 3)
    bigrams = counts.ngrams[1]
    twice = np.r_[0:2, 1 : len(bigrams)]  # row 1 repeated
    cases = [
        (_replace(counts, 2, ngrams=bigrams[::-1].copy()), "ngrams[1]", "sorted"),
        (_replace(counts, 2, bigrams[twice], counts.counts[1][twice]), "ngrams[1]", "without duplicates"),
        (_replace(counts, 1, ngrams=counts.ngrams[0].astype(np.int64)), "ngrams[0]", "int32"),
        (_replace(counts, 3, values=counts.counts[2].astype(np.int32)), "counts[2]", "int64"),
        (_replace(counts, 2, ngrams=np.asfortranarray(bigrams)), "ngrams[1]", "C-contiguous"),
        (_replace(counts, 2, values=counts.counts[1][:-1]), "counts[1]", "shape"),
        (_replace(counts, 2, values=-counts.counts[1]), "counts[1]", "positive"),
        (_replace(counts, 2, ngrams=np.where(bigrams == 4, 99, bigrams).astype(np.int32)), "ngrams[1]", "word ids"),
        (_replace(counts, 3, counts.ngrams[2][1:], counts.counts[2][1:]), "ngrams[2]", "3-gram (v, g)"),
        (_replace(counts, 2, bigrams[1:], counts.counts[1][1:]), "ngrams[2]", "first 2 words"),
    ]
    for bad, argument, expected in cases:
        with pytest.raises(TensorError) as error:
            estimate_mkn(bad)
        assert error.value.argument == argument, (argument, str(error.value))
        assert expected in error.value.expected or expected in str(error.value), str(error.value)
