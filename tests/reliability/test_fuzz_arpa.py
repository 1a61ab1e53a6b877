"""Fuzzing the ARPA loaders: read_arpa (native and reference) and NgramModel.load, text and gzip.

Three kinds of probe, each loaded by all three readers in the probe worker:

* mutations known to make the file invalid (a positive or malformed number, a missing context, a
  duplicate, a wrong count, text after ``\\end\\``, a cut, a bad UTF-8 byte, a NUL byte, ...): every
  reader must reject them with an error naming the file;
* gzip damage (a flipped CRC or length byte, a cut stream, a flipped deflate byte): rejected;
* arbitrary byte and line edits, valid or not: no crash, no hang, errors name the file, the
  reference never gives a model the native parser refuses (nor a different one), and
  NgramModel.load accepts exactly the files read_arpa's native parser accepts.
"""

from __future__ import annotations

import gzip
import random
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probing import DATA, FUZZ, check_outcome, examples

from speechdecode import _backend
from speechdecode.errors import ArpaFormatError, InputFileError
from speechdecode.lm.arpa import ArpaModel, read_arpa, write_arpa

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")

SENTENCES = ["the cat sat on the mat", "a dog and a cat", "zzz the", "<unk> mat </s>"]


def _random_model() -> ArpaModel:
    """An order-3 model with non-ASCII words, negative and positive backoffs, -inf probabilities."""
    rng = random.Random(1301)
    words = ["<s>", "</s>", "<unk>", "the", "cat", "ß", "中文", "é-t'", "x_y", "mat", "on"]
    grams = [np.arange(len(words), dtype=np.int32)[:, None]]
    for n in (2, 3):
        rows = sorted({(*rng.choice(grams[-1].tolist()), rng.randrange(len(words))) for _ in range(14)})
        grams.append(np.array(rows, dtype=np.int32).reshape(-1, n))
    probs = [np.array([-float(rng.randint(1, 700)) / 100 for _ in g]) for g in grams]
    probs[0][0] = -99.0
    probs[1][2] = -np.inf
    backoffs = [np.array([rng.choice([0.0, -0.5, 0.25, -1.5]) for _ in g]) for g in grams[:-1]] + [np.zeros(0)]
    return ArpaModel(words, grams, probs, backoffs)


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, str]:
    """Valid ARPA texts: lmplz's tiny trigram model and one our writer wrote."""
    tiny = gzip.decompress((DATA / "lmplz" / "tiny.o3.fallback.arpa.gz").read_bytes()).decode()
    written = tmp_path_factory.mktemp("arpa") / "written.arpa"
    write_arpa(written, _random_model(), backend="reference")
    return {"tiny": tiny, "written": written.read_text(encoding="utf-8")}


def _write(path, text: str, compress: bool) -> None:
    data = text.encode("utf-8", "surrogateescape")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


class Layout:
    """A valid ARPA text as lines, with where each order's count and entries are."""

    def __init__(self, text: str):
        self.lines = text.split("\n")
        self.count_line: dict[int, int] = {}
        self.entries: dict[int, list[int]] = {}
        order = 0
        for i, line in enumerate(self.lines):
            if line.startswith("ngram "):
                self.count_line[int(line[6 : line.index("=")])] = i
            elif line.startswith("\\") and line.endswith("-grams:"):
                order = int(line[1 : line.index("-")])
                self.entries[order] = []
            elif line.strip() and order and not line.startswith("\\"):
                self.entries[order].append(i)
        self.order = max(self.entries)
        self.end_line = self.lines.index("\\end\\")

    def fields(self, i: int) -> list[str]:
        return self.lines[i].split()

    def set_fields(self, i: int, fields: list[str]) -> None:
        self.lines[i] = "\t".join(fields)

    def add_count(self, n: int, delta: int) -> None:
        line = self.count_line[n]
        self.lines[line] = f"ngram {n}={int(self.lines[line].split('=')[1]) + delta}"

    def words(self, i: int, n: int) -> list[str]:
        return self.fields(i)[1 : n + 1]

    def text(self) -> str:
        return "\n".join(self.lines)


POSITIVE = ["0.5", "1", "+0.25", "3e-2", "1e2", "0.0001", "+inf", "inf", "Infinity", "1e-45"]
NOT_NUMBERS = ["-1_0", "١", "-١", "nan", "NaN", "-nan", "0x1p-3", "--1", "1e", "-", ".", "-1.2.3", "1,5", "−1",
               "-1f", "e-3", "-0x10", "", "-1e+", "−inf", "- 1"]  # fmt: skip
BAD_UTF8 = ["\udcff", "\udcc3", "\udced\udca0\udc80", "\udcc0\udcaf", "\udcf8\udc88\udc80\udc80\udc80", "\udce2\udc82"]


def _entry(data, layout: Layout, low_order: int = 1) -> tuple[int, int]:
    n = data.draw(st.sampled_from([n for n in layout.entries if n >= low_order and layout.entries[n]]))
    return n, data.draw(st.sampled_from(layout.entries[n]))


def _invalid_mutation(data, layout: Layout) -> str:
    """Applies one mutation known to make the file invalid; returns its name."""
    kind = data.draw(
        st.sampled_from(
            ["positive_prob", "bad_prob", "bad_backoff", "missing_context", "duplicate", "count", "after_end",
             "truncate", "bad_utf8", "nul", "top_backoff", "unknown_word", "fields", "no_bos_eos", "header"]
        )
    )  # fmt: skip
    if kind in ("positive_prob", "bad_prob"):
        n, i = _entry(data, layout)
        fields = layout.fields(i)
        fields[0] = data.draw(st.sampled_from(POSITIVE if kind == "positive_prob" else NOT_NUMBERS))
        if fields[0] == "" or " " in fields[0]:
            layout.lines[i] = fields[0] + "\t" + "\t".join(fields[1:])
        else:
            layout.set_fields(i, fields)
    elif kind == "bad_backoff":
        n = data.draw(st.sampled_from([n for n in layout.entries if n < layout.order]))
        i = data.draw(st.sampled_from(layout.entries[n]))
        fields = layout.fields(i)[: n + 1]
        value = data.draw(st.sampled_from([*[v for v in NOT_NUMBERS if v and " " not in v], "-inf", "inf"]))
        layout.set_fields(i, [*fields, value])
    elif kind == "missing_context":
        n, i = _entry(data, layout, low_order=2)
        context = layout.words(i, n)[:-1]
        # the (n-1)-gram line of the context goes, its count with it: some n-gram now lacks it
        victim = next(j for j in layout.entries[n - 1] if layout.words(j, n - 1) == context)
        if any(layout.words(j, n)[1:] == context for j in layout.entries[n]):
            kind = "missing_context_suffix"  # the context is also the suffix of an n-gram
        del layout.lines[victim]
        layout.add_count(n - 1, -1)
    elif kind == "duplicate":
        n, i = _entry(data, layout)
        layout.lines.insert(i + data.draw(st.integers(0, 1)), layout.lines[i])
        layout.add_count(n, 1)
    elif kind == "count":
        n = data.draw(st.sampled_from(sorted(layout.count_line)))
        layout.add_count(n, data.draw(st.integers(-3, 3).filter(bool)))
    elif kind == "after_end":
        tail = data.draw(st.text(string.ascii_letters + string.digits + "\\ -.", min_size=1, max_size=12))
        layout.lines.append(tail if tail.strip() else tail + "x")
    elif kind == "truncate":
        text = layout.text()
        cut = data.draw(st.integers(0, text.index("\\end\\") + 4))
        layout.lines = text[:cut].split("\n")
    elif kind == "bad_utf8":
        n, i = _entry(data, layout)
        word = data.draw(st.sampled_from(layout.words(i, n)))
        bad = data.draw(st.sampled_from(BAD_UTF8))
        where = data.draw(st.integers(0, len(word)))
        renamed = word[:where] + bad + word[where:]
        for j in [k for rows in layout.entries.values() for k in rows]:
            fields = layout.fields(j)
            m = next(order for order, rows in layout.entries.items() if j in rows)
            fields[1 : m + 1] = [renamed if w == word else w for w in fields[1 : m + 1]]
            layout.set_fields(j, fields)
    elif kind == "nul":
        line = data.draw(st.integers(0, layout.end_line))
        text = layout.lines[line]
        where = data.draw(st.integers(0, len(text)))
        layout.lines[line] = text[:where] + "\0" + text[where:]
    elif kind == "top_backoff":
        i = data.draw(st.sampled_from(layout.entries[layout.order]))
        value = data.draw(st.sampled_from(["-0.5", "0.25", "-1e-3", "3"]))
        layout.set_fields(i, [*layout.fields(i)[: layout.order + 1], value])
    elif kind == "unknown_word":
        n, i = _entry(data, layout, low_order=2)
        fields = layout.fields(i)
        fields[data.draw(st.integers(1, n))] = "never-a-unigram"
        layout.set_fields(i, fields)
    elif kind == "fields":
        n, i = _entry(data, layout)
        fields = layout.fields(i)
        if data.draw(st.booleans()) or n == 1:
            fields = fields[:n]  # a word (or the probability and all words) short
        else:
            fields = [*fields[: n + 1], "-0.5", "extra"]
        layout.set_fields(i, fields)
    elif kind == "no_bos_eos":
        word = data.draw(st.sampled_from(["<s>", "</s>"]))
        victim = next(j for j in layout.entries[1] if layout.words(j, 1) == [word])
        del layout.lines[victim]
        layout.add_count(1, -1)
    else:  # header
        n = data.draw(st.sampled_from(sorted(layout.count_line)))
        bad = data.draw(st.sampled_from(["ngram {n}=x", "ngram {n}=-1", "ngram {m}={c}", "ngram {n}", "ngram={c}",
                                         "ngram {n}=1_0", "ngram {n}=١"]))  # fmt: skip
        layout.lines[layout.count_line[n]] = bad.format(n=n, m=n + 1, c=3)
    return kind


def outcome(path, backend: str):
    """("model", tables) or ("error", type name): what read_arpa gives in this process."""
    try:
        model = read_arpa(path, backend=backend)
    except (ValueError, OSError) as exc:
        return ("error", type(exc).__name__)
    return ("model", model.words, [a.tobytes() for a in (*model.ngrams, *model.log10_probs, *model.backoffs)])


def _load_all(prober, path):
    return (prober("read_arpa", str(path), "native"), prober("read_arpa", str(path), "reference"),
            prober("ngram_load", str(path), SENTENCES))  # fmt: skip


def test_bases_are_valid(prober, bases, tmp_path):
    """The fuzz starts from files every reader accepts, and the readers agree on them."""
    for name, text in bases.items():
        for compress in (False, True):
            path = tmp_path / f"{name}.arpa{'.gz' if compress else ''}"
            _write(path, text, compress)
            native, reference, model = _load_all(prober, path)
            assert native[0] == reference[0] == model[0] == "ok", (native, reference, model)
            assert native == reference
            assert model[1][0] == 3 and model[1][1] == tuple(len(rows) for rows in Layout(text).entries.values())


@settings(FUZZ, max_examples=examples(700))
@given(data=st.data())
@pytest.mark.parametrize("compress", [False, True], ids=["text", "gz"])
def test_invalid_arpa_is_rejected_with_the_file_named(prober, bases, tmp_path, compress, data):
    base = data.draw(st.sampled_from(sorted(bases)))
    layout = Layout(bases[base])
    kind = _invalid_mutation(data, layout)
    path = tmp_path / f"invalid.arpa{'.gz' if compress else ''}"
    _write(path, layout.text(), compress)
    native, reference, model = _load_all(prober, path)
    for name, outcome in (("native", native), ("reference", reference), ("NgramModel.load", model)):
        check_outcome(f"arpa {kind}", outcome, path, must_fail=True)
        if outcome[0] == "error":
            assert outcome[1] in ("ArpaFormatError", "InputFileError"), (name, outcome)


def _random_edit(data, text: str) -> bytes:
    """A few arbitrary edits: bytes replaced, inserted or deleted; lines dropped, doubled or swapped."""
    lines = text.encode("utf-8").split(b"\n")
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["byte", "insert", "delete", "drop_line", "double_line", "swap_lines",
                                          "token"]))  # fmt: skip
        i = data.draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if kind == "byte" and line:
            k = data.draw(st.integers(0, len(line) - 1))
            lines[i] = line[:k] + bytes([data.draw(st.integers(0, 255))]) + line[k + 1 :]
        elif kind == "insert":
            k = data.draw(st.integers(0, len(line)))
            lines[i] = line[:k] + data.draw(st.binary(min_size=1, max_size=4)) + line[k:]
        elif kind == "delete" and line:
            k = data.draw(st.integers(0, len(line) - 1))
            lines[i] = line[:k] + line[k + data.draw(st.integers(1, 4)) :]
        elif kind == "drop_line":
            del lines[i]
        elif kind == "double_line":
            lines.insert(i, line)
        elif kind == "swap_lines":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "token":
            tokens = [b"\\data\\", b"\\end\\", b"\\1-grams:", b"\\2-grams:", b"-inf", b"<s>", b"</s>", b"<unk>",
                      b"<UNK>", b"ngram 2=1", b"\t", b"\r", b"#", b"0", b"-0", b"1e-50", b"-1e40"]  # fmt: skip
            k = data.draw(st.integers(0, len(line)))
            lines[i] = line[:k] + data.draw(st.sampled_from(tokens)) + line[k:]
    if not lines:
        return b""
    return b"\n".join(lines)


@settings(FUZZ, max_examples=examples(500))
@given(data=st.data())
@pytest.mark.parametrize("compress", [False, True], ids=["text", "gz"])
def test_random_edits_are_read_alike(prober, bases, tmp_path, compress, data):
    base = data.draw(st.sampled_from(sorted(bases)))
    raw = _random_edit(data, bases[base])
    path = tmp_path / f"edited.arpa{'.gz' if compress else ''}"
    path.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
    native, reference, model = _load_all(prober, path)
    for outcome in (native, reference, model):
        check_outcome("arpa random edit", outcome, path)
    if reference[0] == "ok":  # the reference never gives a model the native parser refuses, nor another one
        assert native == reference
    assert (model[0] == "ok") == (native[0] == "ok"), (native, model)


@settings(FUZZ, max_examples=examples(400))
@given(data=st.data())
def test_damaged_gzip_is_rejected(prober, bases, tmp_path, data):
    base = data.draw(st.sampled_from(sorted(bases)))
    packed = bytearray(gzip.compress(bases[base].encode(), mtime=0))
    size = len(packed)
    kind = data.draw(st.sampled_from(["crc", "isize", "cut", "deflate", "appended"]))
    if kind == "crc":
        packed[size - 8 + data.draw(st.integers(0, 3))] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "isize":
        packed[size - 4 + data.draw(st.integers(0, 3))] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "cut":
        del packed[data.draw(st.integers(2, size - 1)) :]
    elif kind == "appended":  # bytes after the member that are neither zero padding nor a member
        tail = data.draw(st.binary(min_size=1, max_size=16).filter(lambda b: any(b) and not b.startswith(b"\x1f")))
        packed += tail
    else:  # a flipped bit inside the deflate stream (not its last byte, whose padding bits are ignored)
        packed[data.draw(st.integers(10, size - 10))] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path / "damaged.arpa.gz"
    path.write_bytes(bytes(packed))
    for outcome in _load_all(prober, path):
        check_outcome(f"arpa.gz {kind}", outcome, path, must_fail=True)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_numbers_beyond_double_range_round_as_float_does(tmp_path, backend):
    """-1e400 is -inf and -1e-400 is -0 (Python's float()); the native parser used to call them not numbers."""
    path = tmp_path / "range.arpa"
    path.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1e400\t<s>\n-1.5e-500901766\t</s>\n-1e-40\ta\n\n\\end\\\n")
    model = read_arpa(path, backend=backend)
    assert model.log10_probs[0].tolist() == [-np.inf, -0.0, -1e-40]
    assert np.signbit(model.log10_probs[0][1])
    text = path.read_text().replace("-1e400\t<s>", "-1\t<s>\t-1e400").replace("ngram 1=3", "ngram 1=3\nngram 2=0")
    path.write_text(text.replace("\\end", "\\2-grams:\n\n\\end"))
    with pytest.raises(ArpaFormatError, match=r"range\.arpa:6: .*backoff.*-1e400"):
        read_arpa(path, backend=backend)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_nul_byte_in_plain_text_is_binary_data(tmp_path, backend):
    """A NUL byte in a word of a plain (mapped) file is rejected, naming the line, as in a .gz file."""
    path = tmp_path / "nul.arpa"
    path.write_bytes(b"\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-1\ta\0b\n\n\\end\\\n")
    with pytest.raises(ArpaFormatError, match=r"nul\.arpa:7: .*NUL byte"):
        read_arpa(path, backend=backend)


def test_missing_context_that_is_a_suffix_is_rejected(tmp_path):
    from speechdecode.lm import NgramModel

    # "dog sat" goes: the context of "dog sat </s>", and the suffix of "the dog sat".
    text = gzip.decompress((DATA / "lmplz" / "tiny.o3.fallback.arpa.gz").read_bytes()).decode()
    text = text.replace("ngram 2=16", "ngram 2=15").replace("-0.53024876\tdog sat\t-0.30103\n", "")
    path = tmp_path / "hole.arpa"
    path.write_text(text)
    with pytest.raises(ArpaFormatError, match="the context 'dog sat' of the 3-gram 'dog sat </s>'"):
        read_arpa(path, backend="native")
    with pytest.raises(ArpaFormatError, match=r"hole\.arpa:.*context 'dog sat'"):
        NgramModel.load(path)


def test_trailing_garbage_after_the_gzip_member_is_rejected(tmp_path):
    """zlib's gzread ignores bytes after the last member that are not a gzip header; the native
    reader walks the members itself and rejects them, as the reference does."""
    text = gzip.decompress((DATA / "lmplz" / "tiny.o3.fallback.arpa.gz").read_bytes())
    path = tmp_path / "garbage.arpa.gz"
    path.write_bytes(gzip.compress(text, mtime=0) + b"garbage!")
    with pytest.raises(InputFileError, match=r"garbage\.arpa\.gz:54: corrupt or truncated gzip"):
        read_arpa(path, backend="reference")
    with pytest.raises(ArpaFormatError, match=r"garbage\.arpa\.gz: bytes after the gzip data \(at byte \d+\)"):
        read_arpa(path, backend="native")
    # Several members, and zero padding after the last (as tar leaves), are gzip: both readers agree.
    half = len(text) // 2
    path.write_bytes(gzip.compress(text[:half], mtime=0) + gzip.compress(text[half:], mtime=0) + bytes(100))
    assert outcome(path, "native") == outcome(path, "reference")
    assert read_arpa(path, backend="native").order == 3
