"""``estimate_arpa``: estimation written straight to the ARPA file (native ``mkn`` streams one
order at a time through csrc/lm/kneser_ney's sink into csrc/lm/arpa_writer's stream writer).
The file must be byte for byte what lmplz wrote and what the two-step ``estimate`` +
``write_arpa`` writes, for every order and pruning setting, and a needed fallback without
fallback discounts must fail before anything is written."""

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest

from speechdecode import _backend
from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.arpa import write_arpa
from speechdecode.lm.counts import count_sentences
from speechdecode.lm.estimate import estimate, estimate_arpa
from speechdecode.lm.native_estimate import DiscountFallbackWarning

DATA = Path(__file__).parent.parent / "data" / "lmplz"
native = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="native extension not built")

# (lmplz ARPA, text, order, --prune) as tests/data/lmplz/README.md says each file was made.
LMPLZ_CASES = [(f"kjv400.o{n}.arpa.gz", "kjv400.txt", n, None) for n in range(2, 7)] + [
    ("kjv400.o4.prune011.arpa.gz", "kjv400.txt", 4, [0, 1, 1]),
    ("kjv400.o3.prune002.arpa.gz", "kjv400.txt", 3, [0, 0, 2]),
    ("kjv400.o3.prune11.arpa.gz", "kjv400.txt", 3, [1, 1]),
    ("kjv400.o4.prune123.arpa.gz", "kjv400.txt", 4, [1, 2, 3]),
    ("kjv400.o3.prune22.arpa.gz", "kjv400.txt", 3, [2, 2]),
    ("tiny.o2.prune22.arpa.gz", "tiny.txt", 2, [2, 2]),
]


def counts_of(name: str, order: int):
    return count_sentences((DATA / name).read_text().splitlines(), order)


@native
@pytest.mark.parametrize("oracle, text, order, prune", LMPLZ_CASES, ids=[c[0] for c in LMPLZ_CASES])
def test_streamed_file_is_lmplz_s_file(tmp_path, oracle, text, order, prune):
    counts = counts_of(text, order)
    options = {} if prune is None else {"prune": prune}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)  # tiny.txt: lmplz --discount_fallback
        written = estimate_arpa(tmp_path / "lm.arpa", counts, **options)
    expected = gzip.decompress((DATA / oracle).read_bytes())
    assert (tmp_path / "lm.arpa").read_bytes() == expected
    header = [line for line in expected.decode().splitlines() if line.startswith("ngram ")]
    assert written == [int(line.split("=")[1]) for line in header]


@native
@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("prune", [None, [0, 1, 1, 2], [1, 2, 2, 2]])
def test_same_bytes_as_two_steps_and_gzip(tmp_path, backend, prune):
    counts = counts_of("kjv400.txt", 4)
    options = {} if prune is None else {"prune": prune}
    write_arpa(tmp_path / "two-step.arpa", estimate(counts, "mkn", backend="native", **options))
    written = estimate_arpa(tmp_path / "one.arpa.gz", counts, backend=backend, **options)
    text = gzip.decompress((tmp_path / "one.arpa.gz").read_bytes())
    assert text == (tmp_path / "two-step.arpa").read_bytes()
    # \data\, N counts, per order an empty line and its header, the rows, an empty line, \end\
    assert text.count(b"\n") == 1 + len(written) + 2 * len(written) + sum(written) + 2


def test_other_methods_write_their_model(tmp_path):
    counts = counts_of("kjv400.txt", 3)
    model = estimate(counts, "witten-bell")
    write_arpa(tmp_path / "a.arpa", model)
    assert estimate_arpa(tmp_path / "b.arpa", counts, "witten-bell") == [len(g) for g in model.ngrams]
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()


@pytest.mark.parametrize("backend", [pytest.param("native", marks=native), "reference"])
def test_needed_fallback_without_discounts_fails_before_writing(tmp_path, backend):
    counts = counts_of("tiny.txt", 3)  # too few n-grams for order 2's and 3's discounts
    target = tmp_path / "lm.arpa"
    target.write_text("the old file\n")
    with pytest.raises(InvalidArgumentError, match=r"discount_fallback.*cannot compute the discounts of order 2"):
        estimate_arpa(target, counts, backend=backend, discount_fallback=None)
    assert target.read_text() == "the old file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm.arpa"]
    with pytest.warns(DiscountFallbackWarning, match="order [23]"):
        written = estimate_arpa(target, counts, backend=backend)  # lmplz's --discount_fallback values
    expected = gzip.decompress((DATA / "tiny.o3.fallback.arpa.gz").read_bytes())
    assert target.read_bytes() == expected and len(written) == 3


@native
def test_parallel_paths_on_random_counts(tmp_path):
    # Zipf-distributed random text: many n-grams share contexts, and orders above 64k rows run
    # on both cores (the default grain).
    rng = np.random.default_rng(7)
    lines = [" ".join(f"w{k}" for k in rng.zipf(1.3, size=rng.integers(1, 30))) for _ in range(9000)]
    counts = count_sentences(lines, 5)
    write_arpa(tmp_path / "a.arpa", estimate(counts, "mkn", prune=[0, 0, 1, 1, 2]))
    estimate_arpa(tmp_path / "b.arpa", counts, prune=[0, 0, 1, 1, 2])
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()


def test_bad_options_are_named(tmp_path):
    counts = counts_of("tiny.txt", 2)
    with pytest.raises(InvalidArgumentError, match="options of method 'mkn'"):
        estimate_arpa(tmp_path / "x.arpa", counts, interpolate=True)
    with pytest.raises(InvalidArgumentError, match="backend"):
        estimate_arpa(tmp_path / "x.arpa", counts, backend="gpu")
    assert not (tmp_path / "x.arpa").exists()
