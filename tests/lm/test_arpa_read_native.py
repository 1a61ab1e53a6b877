"""read_arpa's native path (csrc/bindings/lm_arpa.cc over csrc/lm/arpa_reader, the parser
NgramModel loads with) against the reference reader (lm/arpa.py, the oracle): the same ArpaModel,
bit for bit, for every file in the strict layout, and never a model from the reference where the
native parser fails. The native parser also reads what KenLM tolerates; the reference does not.

Files: random models written by our writer (orders 1-5, empty higher orders, plain and gzip),
every lmplz file in tests/data/lmplz, numbers as other tools print them (long decimals, exponent
forms), the layouts where the parsers differ, tests/lm/test_model.py's bad files, and random
corruptions of a small model.
"""

import gzip
import importlib.util
import random
import string
from pathlib import Path

import numpy as np
import pytest

from speechdecode import _backend
from speechdecode.errors import ArpaFormatError, InputFileError, InvalidArgumentError
from speechdecode.lm import arpa
from speechdecode.lm.arpa import ArpaModel, read_arpa, write_arpa

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")

DATA = Path(__file__).parent.parent / "data" / "lmplz"


def _test_model_module():
    spec = importlib.util.spec_from_file_location("_arpa_test_model", Path(__file__).parent / "test_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TEST_MODEL = _test_model_module()
TRIGRAM = _TEST_MODEL.TRIGRAM
BAD_FILES = _TEST_MODEL.BAD_FILES


def outcome(path, backend: str):
    """("model", words, per-order arrays as (dtype, shape, bytes)) or ("error", type, message)."""
    try:
        model = read_arpa(path, backend=backend)
    except Exception as exc:  # the type and text are what is compared
        return ("error", type(exc), str(exc))
    tables = [(a.dtype.str, a.shape, a.tobytes()) for group in (model.ngrams, model.log10_probs, model.backoffs)
              for a in group]  # fmt: skip
    return ("model", model.words, tables)


def assert_same(path):
    reference, native = outcome(path, "reference"), outcome(path, "native")
    assert native == reference
    return reference


def native_reads_it(path) -> bool:
    """True when the C++ parser reads the file into a model."""
    return outcome(path, "native")[0] == "model"


def assert_consistent(path):
    """The reference never gives a model the native parser refuses, nor a different one."""
    reference, native = outcome(path, "reference"), outcome(path, "native")
    if reference[0] == "model":
        assert native == reference
    if native[0] == "error":
        assert issubclass(native[1], (ArpaFormatError, OSError)), native
        assert native[2].startswith(str(path)), native
    if reference[0] == "error":
        assert issubclass(reference[1], (InputFileError, OSError)), reference
    return reference, native


def write_text(tmp_path, text: str, name: str = "m.arpa") -> Path:
    path = tmp_path / name
    data = text.encode("utf-8", "surrogateescape")
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return path


# --- models written by our writer --------------------------------------------------------------


def random_word(rng: random.Random) -> str:
    alphabet = string.ascii_letters + "'-_" + "éü中文ß"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))


def random_model(rng: random.Random, order: int, vocab: int, sizes: list[int]) -> ArpaModel:
    words = {"<s>", "</s>"}
    while len(words) < vocab:
        words.add(random_word(rng))
    words = sorted(words)
    rng.shuffle(words)
    if rng.random() < 0.7:  # <unk> somewhere, or none; spelled as the file chooses
        words.insert(rng.randrange(len(words) + 1), rng.choice(["<unk>", "<UNK>"]))
    ngrams = [np.arange(len(words), dtype=np.int32)[:, None]]
    for n, size in zip(range(2, order + 1), sizes, strict=True):
        contexts = [tuple(row) for row in ngrams[-1].tolist()] if len(ngrams[-1]) else []
        # every n-gram extends an (n-1)-gram (its context), as in any model KenLM loads
        rows = {(*rng.choice(contexts), rng.randrange(len(words))) for _ in range(size)} if contexts else set()
        ngrams.append(np.array(sorted(rows, key=lambda _: rng.random()), dtype=np.int32).reshape(-1, n))
    specials = [0.0, -0.0, -1e-8, -7.7657916e-8, -0.000001061326, -99.0, -float("inf")]

    def values(count: int, low: float, high: float, special: list[float]) -> np.ndarray:
        out = np.array([rng.uniform(low, high) for _ in range(count)])
        for i in range(count):
            if rng.random() < 0.15:
                out[i] = rng.choice(special)
        return out

    probs = [values(len(g), -7.0, 0.0, specials) for g in ngrams]
    backoffs = [values(len(g), -3.0, 3.0, [0.0, -0.0, 1e-9]) for g in ngrams[:-1]] + [np.zeros(0)]
    return ArpaModel(words, ngrams, probs, backoffs)


SHAPES = [
    (1, 2, []),
    (1, 40, []),
    (2, 3, [0]),
    (2, 17, [1]),
    (2, 60, [300]),
    (3, 25, [0, 0]),
    (3, 25, [40, 0]),
    (3, 120, [700, 900]),
    (4, 9, [50, 120, 200]),
    (5, 30, [80, 80, 80, 80]),
]


@pytest.mark.parametrize("name", ["m.arpa", "m.arpa.gz"])
@pytest.mark.parametrize(("order", "vocab", "sizes"), SHAPES)
def test_written_models_read_alike(tmp_path, order, vocab, sizes, name):
    rng = random.Random(hash((order, vocab, tuple(sizes), name)) % 2**32)
    model = random_model(rng, order, vocab, sizes)
    path = tmp_path / name
    write_arpa(path, model, backend="reference")
    kind, words, _ = assert_same(path)
    assert kind == "model" and words == model.words
    assert native_reads_it(path)
    back = read_arpa(path, backend="native")
    for n in range(order):
        np.testing.assert_array_equal(back.ngrams[n], model.ngrams[n])
        # The writer prints float32 digits; each value reads back as float(text) of those digits.
        expected = [float(arpa.format_float(v)) for v in model.log10_probs[n].tolist()]
        np.testing.assert_array_equal(back.log10_probs[n], expected)


@pytest.mark.parametrize("path", sorted(DATA.glob("*.arpa.gz")), ids=lambda p: p.name)
def test_lmplz_files_read_alike(path):
    kind, _, _ = assert_same(path)
    assert kind == "model" and native_reads_it(path)


def test_lmplz_file_uncompressed_reads_alike(tmp_path):
    path = write_text(tmp_path, gzip.decompress((DATA / "kjv400.o4.arpa.gz").read_bytes()).decode())
    assert assert_same(path)[0] == "model" and native_reads_it(path)


# --- numbers -----------------------------------------------------------------------------------

# Texts as other tools print them: SRILM's %.7g-ish, long decimals (more digits than float32 or
# float64 holds), exponent forms with E and +, signs and no leading / trailing digits.
NUMBERS = [
    "-0.1234567890123456789012345678901234567890",
    "-1.00000000000000011102230246251565404236316680908203125",
    "-0.30102999566398119521373889472449302676818988146210854131",
    "-2.7182818284590452353602874713527",
    "-1E-5",
    "-1.5e+00",
    "-1.5E-07",
    "-.5",
    "-5.",
    "-0",
    "0",
    "+0",
    "-0.0000000000000000000000000000000000000000000001",
    "-1e-50",
    "-3.4028236e38",
    "-1e300",
    "-99",
    "-inf",
    "-Infinity",
    "-0.33333333333333331483",
    "-0.33333334326744079590",
    "-1.401298464324817e-45",
]


@pytest.mark.parametrize("name", ["n.arpa", "n.arpa.gz"])
def test_numbers_other_tools_print_read_as_float_reads_them(tmp_path, name):
    # Backoffs must be finite as float32 for the C++ reader (else the reference reader reads them).
    finite = [t for t in reversed(NUMBERS) if abs(float(t)) < 3e38]
    backoffs = [finite[i % len(finite)] for i in range(len(NUMBERS))]
    unigrams = "".join(f"{p}\tw{i}\t{b}\n" for i, (p, b) in enumerate(zip(NUMBERS, backoffs, strict=True)))
    bigrams = "".join(f"{p}\tw{i} w{i + 1}\n" for i, p in enumerate(NUMBERS[: len(NUMBERS) - 1]))
    k = len(NUMBERS)
    text = (
        f"\\data\\\nngram 1={k + 2}\nngram 2={k - 1}\n\n\\1-grams:\n{unigrams}-1\t<s>\t-0.5\n-1\t</s>\t0\n\n"
        f"\\2-grams:\n{bigrams}\n\\end\\\n"
    )
    path = write_text(tmp_path, text, name)
    assert native_reads_it(path)
    assert assert_same(path)[0] == "model"
    model = read_arpa(path, backend="native")
    expected = [float(t) for t in NUMBERS]
    assert model.log10_probs[0][:k].tobytes() == np.array(expected).tobytes()
    assert model.backoffs[0][:k].tobytes() == np.array([float(t) for t in backoffs]).tobytes()
    assert model.log10_probs[1].tobytes() == np.array(expected[:-1]).tobytes()
    # Values float32 cannot hold exactly stay as the text says.
    assert model.log10_probs[0][0] != np.float32(model.log10_probs[0][0])


# --- layouts where the parsers differ, and errors ----------------------------------------------


def _swap_unk(text: str, spelling: str) -> str:
    return text.replace("<unk>", spelling)


# (id, edit of TRIGRAM, what the native parser gives, what the reference gives). Where the native
# parser gives a model and the reference an error, the file uses a layout KenLM tolerates.
LAYOUTS = [
    ("as written", lambda t: t, "model", "model"),
    ("crlf line ends", lambda t: t.replace("\n", "\r\n"), "model", "model"),
    ("spaces between fields", lambda t: t.replace("\t", "  "), "model", "model"),
    ("blank lines before data", lambda t: "\n \n" + t, "model", "model"),
    ("blank lines between sections", lambda t: t.replace("\n\n", "\n\n\n \n"), "model", "model"),
    ("no trailing newline", lambda t: t.rstrip("\n"), "model", "model"),
    ("UNK spelling", lambda t: _swap_unk(t, "<UNK>"), "model", "model"),
    ("UNK in a bigram", lambda t: t.replace("-1.25\tthe mat", "-1.25\tthe <unk>"), "model", "model"),
    ("unk unigram, UNK bigram", lambda t: t.replace("-1.25\tthe mat", "-1.25\tthe <UNK>"), "model", "error"),
    ("UNK unigram, unk bigram", lambda t: _swap_unk(t, "<UNK>").replace("the mat", "the <unk>"), "model", "error"),
    ("no unk", lambda t: t.replace("-2\t<unk>\t0\n", "").replace("ngram 1=7", "ngram 1=6"), "model", "model"),
    (
        "no unk, unk bigram",
        lambda t: t.replace("-2\t<unk>\t0\n", "").replace("ngram 1=7", "ngram 1=6").replace("the mat", "the <unk>"),
        "model",
        "error",
    ),
    ("unk and UNK", lambda t: t.replace("-2\tmat", "-2\t<UNK>"), "error", "error"),
    ("comment before data", lambda t: "# made by hand\n" + t, "model", "error"),
    ("blank line inside a section", lambda t: t.replace("-1\t</s>\n", "-1\t</s>\n\n"), "model", "error"),
    ("no blank line before a header", lambda t: t.replace("the mat\n\n", "the mat\n"), "model", "error"),
    ("no blank line after counts", lambda t: t.replace("ngram 3=2\n\n", "ngram 3=2\n"), "model", "error"),
    ("no blank line before end", lambda t: t.replace("cat sat\n\n", "cat sat\n"), "model", "error"),
    ("zero backoff on top order", lambda t: t.replace("the cat sat", "the cat sat\t0"), "model", "error"),
    ("lone carriage return", lambda t: t.replace("-1\tthe\t", "-1\tthe\r\t"), "model", "model"),
    ("positive probability", lambda t: t.replace("-1.5\tcat", "0.5\tcat"), "error", "error"),
    ("backoff -inf", lambda t: t.replace("cat\t-0.125", "cat\t-inf"), "error", "error"),
    ("number with underscore", lambda t: t.replace("-1.5\tcat", "-1_5\tcat"), "error", "error"),
    ("ngram 1=0", lambda t: "\\data\\\nngram 1=0\n\n\\1-grams:\n\n\\end\\\n", "error", "error"),
    ("unigrams only, no <s>", lambda t: "\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta\n\n\\end\\\n", "error", "error"),
    ("text after end", lambda t: t + "junk\n", "error", "error"),
    ("empty file", lambda t: "", "error", "error"),
    ("blank file", lambda t: "\n  \n", "error", "error"),
    (
        "order 11",
        lambda t: "\\data\\\n" + "".join(f"ngram {n}=1\n" for n in range(1, 12)) + "\n\\1-grams:\n-1\ta\n\n"
        + "".join(f"\\{n}-grams:\n-1\t{' '.join(['a'] * n)}\n\n" for n in range(2, 12)) + "\\end\\\n",
        "error",
        "error",
    ),
    ("duplicate bigram and trigram", lambda t: t.replace("the cat sat", "<s> the cat").replace(
        "-1.25\tthe mat", "-1.25\tcat sat"), "error", "error"),
    ("duplicate trigram only", lambda t: t.replace("the cat sat", "<s> the cat"), "error", "error"),
]  # fmt: skip


@pytest.mark.parametrize("name", ["m.arpa", "m.arpa.gz"])
@pytest.mark.parametrize(("edit", "native", "reference"), [c[1:] for c in LAYOUTS], ids=[c[0] for c in LAYOUTS])
def test_layouts_read_consistently(tmp_path, edit, native, reference, name):
    path = write_text(tmp_path, edit(TRIGRAM), name)
    got_reference, got_native = assert_consistent(path)
    assert (got_native[0], got_reference[0]) == (native, reference)


def test_duplicates_are_reported_first_in_file_order(tmp_path):
    text = TRIGRAM.replace("the cat sat", "<s> the cat").replace("-1.25\tthe mat", "-1.25\tcat sat")
    path = write_text(tmp_path, text)
    with pytest.raises(ArpaFormatError) as info:
        read_arpa(path, backend="native")
    line = text.splitlines().index("-1.25\tcat sat") + 1
    assert str(info.value) == f"{path}:{line}: duplicate 2-gram 'cat sat'"


@pytest.mark.parametrize("edit", [c[1] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_test_model_bad_files_fail_in_both(tmp_path, edit):
    path = write_text(tmp_path, edit(TRIGRAM))
    reference, native = assert_consistent(path)
    assert reference[0] == native[0] == "error"
    assert reference[2].startswith(f"{path}:") and issubclass(reference[1], InputFileError)


SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace() and chr(c) != "\n"]


@pytest.mark.parametrize("space", SPACES, ids=lambda c: f"U+{ord(c):04X}")
def test_whitespace_inside_words(tmp_path, space):
    # Fields are split at ASCII spaces and tabs (as KenLM does); any other character, Unicode
    # spaces included, is part of a word. The reference reader (str.split) refuses those files.
    path = write_text(tmp_path, TRIGRAM.replace("sat", f"s{space}at"))
    reference, native = assert_consistent(path)
    if space in " \t\r\x0b\x0c":  # separators: "s" and "at" are two fields
        assert native[0] == reference[0] == "error"
    else:
        assert native == reference and native[0] == "model" and f"s{space}at" in native[1]


def test_gzip_told_by_content(tmp_path):
    plain_named_gz = tmp_path / "plain.arpa.gz"
    plain_named_gz.write_text(TRIGRAM)
    gzip_named_plain = tmp_path / "packed.arpa"
    gzip_named_plain.write_bytes(gzip.compress(TRIGRAM.encode()))
    for path in (plain_named_gz, gzip_named_plain):
        assert assert_same(path)[0] == "model"


@pytest.mark.parametrize("cut", [1, 4, 8, 30])
def test_gzip_cut_short_or_corrupt_is_an_error(tmp_path, cut):
    data = gzip.compress(TRIGRAM.encode())
    (tmp_path / "cut.arpa.gz").write_bytes(data[:-cut])
    corrupt = bytearray(data)
    corrupt[-8 + (cut % 8)] ^= 0x40  # a bit of the CRC-32 or of the length in the trailer
    (tmp_path / "crc.arpa.gz").write_bytes(bytes(corrupt))
    for name in ("cut.arpa.gz", "crc.arpa.gz"):
        for backend in ("native", "reference"):
            kind, kind_type, message = outcome(tmp_path / name, backend)
            assert kind == "error" and issubclass(kind_type, InputFileError), (name, backend, message)
            assert str(tmp_path / name) in message and "gzip" in message


def test_missing_file_and_directory_fail_alike(tmp_path):
    for path in (tmp_path / "absent.arpa", tmp_path):
        reference = assert_same(path)
        assert reference[0] == "error" and issubclass(reference[1], OSError)


def test_random_corruptions_read_alike(tmp_path):
    rng = random.Random(7)
    lines = TRIGRAM.splitlines(keepends=True)
    pieces = ["\n", " ", "\t", "\\", "-", "0", "1", "e", "x", "<s>", "<unk>", "<UNK>", "\r", "\xa0", "#", "=", "."]
    models = 0
    for trial in range(300):
        edited = list(lines)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(edited))
            action = rng.randrange(4)
            if action == 0:
                del edited[i]
            elif action == 1:
                edited.insert(i, rng.choice(edited))
            else:
                line = edited[i]
                at = rng.randrange(len(line) + 1)
                cut = at + (rng.randrange(3) if action == 2 else 0)
                edited[i] = line[:at] + rng.choice(pieces) + line[cut:]
        path = write_text(tmp_path, "".join(edited), f"c{trial}.arpa")
        models += assert_consistent(path)[1][0] == "model"
    assert 0 < models < 300


# --- backend choice ----------------------------------------------------------------------------


def test_backend_argument_is_checked(tmp_path):
    path = write_text(tmp_path, TRIGRAM)
    with pytest.raises(InvalidArgumentError, match="backend"):
        read_arpa(path, backend="fast")


def test_forced_reference_backend_skips_the_native_reader(tmp_path, monkeypatch):
    path = write_text(tmp_path, TRIGRAM)

    def refuse(*args):
        raise AssertionError("the native reader was called")

    monkeypatch.setattr(arpa, "_read_arpa_native", refuse)
    monkeypatch.setenv(_backend.ENV_VAR, "reference")
    assert read_arpa(path).words == ["<unk>", "<s>", "</s>", "the", "cat", "sat", "mat"]
    monkeypatch.delenv(_backend.ENV_VAR)
    with pytest.raises(AssertionError, match="native reader was called"):
        read_arpa(path)
