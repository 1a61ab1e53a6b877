"""How ARPA numbers are printed: ``lm/arpa.py``'s ``format_float`` and the native writer's
``format_arpa_float`` (csrc/lm/arpa_writer.cc) print a float32 exactly as lmplz does.

lmplz prints with KenLM's ``util/float_to_string.cc``: double-conversion's ``ToShortestSingle``
with the converter ``(NO_FLAGS, "inf", "NaN", 'e', -6, 21, 6, 0)``. The shortest digits that read
back to the same float32; positional when the decimal exponent e of the first digit is in
[-6, 21), else ``d.ddde-7`` (no ``+``, no leading zeros in the exponent); ``-0``, ``inf``,
``-inf``, ``NaN``.

The expectations come from lmplz itself in two ways:

* ``KENLM_TO_STRING``: what ``util::ToString(float)``, the function lmplz prints with (KenLM's
  own util/float_to_string.cc and util/double-conversion, compiled from KenLM's sources and run
  on these bit patterns), returned. The same build agreed with ``format_arpa_float`` on all 2^32
  float32 bit patterns.
* ``repeats.o3.arpa.gz`` (tests/data/lmplz/README.md): a file lmplz wrote, with numbers in
  exponent form (``-7.7657916e-8``) and just above the switch (``-0.000001061326``).
"""

import ctypes
import ctypes.util
import gzip
import re
import string
import warnings
from pathlib import Path

import numpy as np
import pytest

from speechdecode import _backend
from speechdecode.lm.arpa import ArpaModel, format_float, read_arpa, write_arpa
from speechdecode.lm.counts import count_sentences
from speechdecode.lm.methods.kneser_ney import DiscountFallbackWarning, modified_kneser_ney

DATA = Path(__file__).parent.parent / "data" / "lmplz"

# (float32 bit pattern, what KenLM's util::ToString(float) printed for it).
KENLM_TO_STRING = [
    (0x00000000, "0"), (0x80000000, "-0"), (0x7f800000, "inf"), (0xff800000, "-inf"), (0x7fc00000, "NaN"),
    (0xffc00000, "NaN"), (0x7f800001, "NaN"), (0x00000001, "1e-45"), (0x80000001, "-1e-45"),
    (0x00000002, "3e-45"), (0x00000003, "4e-45"), (0x000003e8, "1.401e-42"), (0x000116c2, "1e-40"),
    (0x000116c3, "1.00001e-40"), (0x00400000, "5.877472e-39"), (0x007fffff, "1.1754942e-38"),
    (0x00800000, "1.1754944e-38"), (0x80800000, "-1.1754944e-38"), (0x0d800000, "7.888609e-31"),
    (0x33d6bf94, "9.9999994e-8"), (0x33d6bf95, "1e-7"), (0xb3d6bf93, "-9.999999e-8"),
    (0xb3d6bf97, "-1.00000015e-7"), (0x34210fb0, "1.5e-7"), (0xb4210fb0, "-1.5e-7"),
    (0x35800000, "9.536743e-7"), (0xb5808d23, "-9.577819e-7"), (0x358637bb, "9.999998e-7"),
    (0x358637bc, "9.999999e-7"), (0x358637bd, "0.000001"), (0x358637be, "0.0000010000001"),
    (0xb58637bd, "-0.000001"), (0xb58637bf, "-0.0000010000002"), (0x358e72e2, "0.000001061326"),
    (0x3727c5ab, "0.000009999999"), (0x3727c5ac, "0.00001"), (0x3a83126f, "0.001"), (0x3dcccccd, "0.1"),
    (0xbe9a209b, "-0.30103"), (0x3f000000, "0.5"), (0x3f7fffff, "0.99999994"), (0x3f800000, "1"),
    (0x3f800001, "1.0000001"), (0xbf800000, "-1"), (0x41200000, "10"), (0x42f70000, "123.5"),
    (0xc49a522b, "-1234.5677"), (0x4b800000, "16777216"), (0x4b800001, "16777218"),
    (0x4ceb79a3, "123456790"), (0x50061c45, "8999998000"), (0x50061c46, "9000000000"),
    (0x50061c47, "9000001000"), (0x5023e9ab, "10999999000"), (0x5023e9ac, "11000000000"),
    (0x5f800000, "18446744000000000000"), (0x60ad78eb, "99999990000000000000"),
    (0x60ad78ec, "100000000000000000000"), (0x60ad78ed, "100000010000000000000"),
    (0x6258d725, "999999900000000000000"), (0x6258d726, "999999950000000000000"), (0x6258d727, "1e21"),
    (0x6258d728, "1.0000001e21"), (0x6258d729, "1.00000016e21"), (0xe258d726, "-999999950000000000000"),
    (0xe258d727, "-1e21"), (0x64078677, "9.999999e21"), (0x64078678, "1e22"), (0x71800000, "1.2676506e30"),
    (0x7e967699, "1e38"), (0x7f7fffff, "3.4028235e38"), (0xff7fffff, "-3.4028235e38"),
]  # fmt: skip

# The text of repeats.o3.arpa.gz is 25 lines, line i the word WORDS[i] repeated int(3.7e7 / k)
# times (357 MB); its counts are those of "w w w" lines plus the missing repetitions.
REPEATS_K = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 34, 36, 37, 38, 39, 40, 41, 42, 45, 50, 60, 80]
WORDS = [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase][: len(REPEATS_K)]


def float32(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)


def as_float64(values) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # casting a signalling NaN
        return np.asarray(values, dtype=np.float64)


def native_format(values) -> list[str]:
    return _backend.native().format_arpa_floats(as_float64(values))


def python_format(values) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float64 beyond float32's range -> inf
        return [format_float(v) for v in as_float64(values).tolist()]


def bit_patterns() -> np.ndarray:
    """Float32 bit patterns across every exponent: random ones, every exponent with a mantissa of
    at most 6 significant bits (powers of two included), the neighbourhoods of the switches to
    exponent form (1e-6, 1e21) and of the subnormal / normal border, both signs."""
    rng = np.random.default_rng(2024)
    parts = [rng.integers(0, 2**32, 150_000, dtype=np.uint64).astype(np.uint32)]
    exponents = np.arange(256, dtype=np.uint32) << 23
    parts.append((exponents[:, None] | (np.arange(64, dtype=np.uint32) << 17)[None, :]).ravel())
    for centre in float32([0x358637BD, 0x6258D727, 0x00800000]).view(np.uint32):
        parts.append(np.arange(int(centre) - 3000, int(centre) + 3000, dtype=np.uint32))
    parts.append(np.arange(0, 3000, dtype=np.uint32))
    bits = np.concatenate(parts)
    return np.unique(np.concatenate([bits, bits | np.uint32(0x80000000)]))


def _strtof():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.strtof.restype = ctypes.c_float
    libc.strtof.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    return lambda text: libc.strtof(text.encode(), None)


def lmplz_numbers(text: str) -> list[str]:
    """Every number of an ARPA file as printed: log10 probabilities and backoffs."""
    numbers = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            numbers.append(fields[0])
            numbers.extend(fields[2:])
    return numbers


# --- against lmplz -----------------------------------------------------------------------------


def test_python_prints_what_kenlm_prints():
    bits, expected = zip(*KENLM_TO_STRING, strict=True)
    assert python_format(float32(bits)) == list(expected)


def test_native_prints_what_kenlm_prints():
    bits, expected = zip(*KENLM_TO_STRING, strict=True)
    assert native_format(float32(bits)) == list(expected)


def test_doctest_values():
    assert [format_float(x) for x in (-0.30103, 1e-06, -1.5e-07, 1e21, float("nan"), -0.0)] == [
        "-0.30103", "0.000001", "-1.5e-7", "1e21", "NaN", "-0",
    ]  # fmt: skip


def test_every_number_lmplz_wrote_is_printed_alike():
    # Exponent forms (repeats) and the numbers of every other lmplz file kept here.
    numbers = set()
    for path in sorted(DATA.glob("*.arpa.gz")):
        numbers.update(lmplz_numbers(gzip.decompress(path.read_bytes()).decode()))
    exponent_forms = sorted(n for n in numbers if "e" in n)
    assert len(exponent_forms) >= 15 and "-7.7657916e-8" in exponent_forms and "-0.000001061326" in numbers
    numbers = sorted(numbers)
    values = np.array([float(n) for n in numbers])
    assert python_format(values) == numbers
    if _backend.HAS_NATIVE:
        assert native_format(values) == numbers


@pytest.mark.parametrize("name", ["repeats.o3.arpa.gz", "kjv400.o3.prune11.arpa.gz", "tiny.o3.fallback.arpa.gz"])
def test_lmplz_files_read_and_written_again_are_unchanged(name, tmp_path):
    expected = gzip.decompress((DATA / name).read_bytes()).decode()
    model = read_arpa(DATA / name)
    write_arpa(tmp_path / "python.arpa", model)
    assert (tmp_path / "python.arpa").read_text() == expected
    if _backend.HAS_NATIVE:
        from speechdecode.lm.native_estimate import write_arpa_native

        write_arpa_native(tmp_path / "native.arpa", model)
        assert (tmp_path / "native.arpa").read_text() == expected


def repeats_counts():
    counts = count_sentences([f"{w} {w} {w}" for w in WORDS], 3)
    repetitions = {counts.vocab.id(w): int(3.7e7 / k) for w, k in zip(WORDS, REPEATS_K, strict=True)}
    for grams, values in zip(counts.ngrams, counts.counts, strict=True):
        for i, row in enumerate(grams.tolist()):
            if len(set(row)) == 1 and row[0] in repetitions:  # "w", "w w", "w w w"
                values[i] += repetitions[row[0]] - 3
    return counts


def test_mkn_estimates_repeats_as_lmplz_byte_for_byte(tmp_path):
    # log10 p(w | w w) within a few float32 ulps of 0: lmplz prints them in exponent form.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        model = modified_kneser_ney(repeats_counts())
    write_arpa(tmp_path / "ours.arpa", model)
    expected = gzip.decompress((DATA / "repeats.o3.arpa.gz").read_bytes()).decode()
    assert (tmp_path / "ours.arpa").read_text() == expected


def test_native_estimates_repeats_as_lmplz_byte_for_byte(tmp_path):
    from speechdecode.lm.native_estimate import estimate_mkn, write_arpa_native

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        model = estimate_mkn(repeats_counts())
    write_arpa_native(tmp_path / "ours.arpa.gz", model)
    expected = gzip.decompress((DATA / "repeats.o3.arpa.gz").read_bytes())
    assert gzip.decompress((tmp_path / "ours.arpa.gz").read_bytes()) == expected


# --- Python and C++ alike, and the rule itself -------------------------------------------------


def test_python_and_native_agree_on_every_exponent():
    values = float32(bit_patterns())
    python, native = python_format(values), native_format(values)
    differing = [
        (hex(b), p, n) for b, p, n in zip(values.view(np.uint32).tolist(), python, native, strict=True) if p != n
    ]
    assert differing == []


def test_native_rounds_float64_input_to_float32_first():
    values = np.array([0.1, -1 / 3, 1e-7 + 1e-20, 3.5e38, -1e-46, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert native_format(values) == python_format(values) == ["0.1", "-0.33333334", "1e-7", "inf", "-0", "inf"]


def test_printed_numbers_read_back_to_the_same_float32():
    strtof = _strtof()
    values = float32(bit_patterns())
    for value, text in zip(values.tolist(), python_format(values), strict=True):
        back = np.float32(strtof(text))
        if np.isnan(value):
            assert text == "NaN" and np.isnan(back)
        else:
            assert back.view(np.uint32) == np.float32(value).view(np.uint32), (value, text)


# sign, first digit, [. more digits], [e exponent] -- or positional digits.
EXPONENT_FORM = re.compile(r"-?([1-9])(?:\.(\d*[1-9]))?e(-?[1-9]\d*)")
POSITIONAL = re.compile(r"-?(0|[1-9]\d*)(?:\.(\d*[1-9]))?")


def test_layout_follows_the_exponent_rule():
    values = float32(bit_patterns())
    values = values[np.isfinite(values) & (values != 0)]
    for value, text in zip(values.tolist(), python_format(values), strict=True):
        digits = np.format_float_scientific(np.float32(value), unique=True, trim="-")
        mantissa, exponent = digits.split("e")
        exponent = int(exponent)
        if -6 <= exponent < 21:
            assert POSITIONAL.fullmatch(text), text
            assert "e" not in text and np.float32(float(text)) == np.float32(value)
        else:
            match = EXPONENT_FORM.fullmatch(text)
            assert match and int(match.group(3)) == exponent, text
            assert text == f"{mantissa}e{exponent}"


def test_write_arpa_prints_exponent_forms(tmp_path):
    words = ["<unk>", "<s>", "</s>", "a"]
    probs = np.array([-1.5e-7, 0.0, -9.577819e-7, -1e-6])
    model = ArpaModel(words, [np.arange(4, dtype=np.int32)[:, None]], [probs], [np.zeros(0)])
    write_arpa(tmp_path / "m.arpa", model)
    lines = (tmp_path / "m.arpa").read_text().splitlines()
    assert lines[4:8] == ["-1.5e-7\t<unk>", "0\t<s>", "-9.577819e-7\t</s>", "-0.000001\ta"]
    reread = read_arpa(tmp_path / "m.arpa").log10_probs[0]
    np.testing.assert_array_equal(reread.astype(np.float32), probs.astype(np.float32))
