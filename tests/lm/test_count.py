"""count_files (native counter) against the reference counter count_sentences.

The expected lines are built here from the file bytes as count_files documents them: UTF-8
decoded (strict or with U+FFFD replacement), split at '\\n' only, a final '\\n' ending the last
line rather than starting an empty one.
"""

import gzip
import os
import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from speechdecode import _backend
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.lm.counting import MAX_ORDER, count_files, parse_size
from speechdecode.lm.counts import count_sentences, to_units
from speechdecode.testing import SentenceGenerator

native = _backend.native()  # `make test` builds it; test_backend fails loudly if it is missing

KJV400 = Path(__file__).resolve().parents[1] / "data" / "lmplz" / "kjv400.txt"


def lines_of(data: bytes, errors: str = "strict") -> list[str]:
    lines = data.decode("utf-8", errors).split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def assert_same_counts(got, want, order=None):
    """got equals want's first `order` orders: vocabulary, rows, counts and dtypes."""
    order = order or want.order
    assert got.order == order
    assert got.vocab.words == want.vocab.words
    for n in range(order):
        assert got.ngrams[n].dtype == np.int32 and got.counts[n].dtype == np.int64
        assert got.ngrams[n].shape == want.ngrams[n].shape, f"order {n + 1}"
        np.testing.assert_array_equal(got.ngrams[n], want.ngrams[n], err_msg=f"order {n + 1}")
        np.testing.assert_array_equal(got.counts[n], want.counts[n], err_msg=f"order {n + 1}")


def awkward_lines(rng: random.Random, n: int) -> list[str]:
    """Synthetic sentences with Python-whitespace variety, non-ASCII words, <unk> and empty lines."""
    spaces = [" ", "  ", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000", "\u205f"]
    extra = ["<unk>", "naïve", "日本語", "zero\u200bwidth", "\ufeffbom", "emoji🎉", "a|b", "\x00nul"]
    lines = []
    for sentence in SentenceGenerator(seed=rng.randrange(1000)).sentences(n):
        words = sentence.split()
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(extra))
        line = "".join(w + rng.choice(spaces) for w in words)
        if rng.random() < 0.3:
            line = rng.choice(spaces) + line
        lines.append(line)
    for _ in range(n // 20):
        lines.insert(rng.randrange(len(lines)), rng.choice(["", " ", "\t\u3000"]))
    return lines


@pytest.fixture(scope="module")
def kjv_lines():
    return lines_of(KJV400.read_bytes())


@pytest.fixture(scope="module")
def kjv_reference(kjv_lines):
    return count_sentences(kjv_lines, 7)


@pytest.fixture(scope="module")
def kjv_char_reference(kjv_lines):
    return count_sentences(kjv_lines, 7, units="char")


# ---------------------------------------------------------------------------------------------
# parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500M", 500 << 20), ("2G", 2 << 30), ("2g", 2 << 30), ("64K", 65536), ("1.5k", 1536), ("4096", 4096),
     (" 3 MiB ", 3 << 20), ("2GB", 2 << 30), ("1T", 1 << 40), (12345, 12345), (0, 0)],
)  # fmt: skip
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "G", "2X", "-1G", "1e9", "2 G B", -5, 2.5, None, True])
def test_parse_size_rejects(bad):
    with pytest.raises(InvalidArgumentError, match="memory"):
        parse_size(bad)


# ---------------------------------------------------------------------------------------------
# Equality with count_sentences


@pytest.mark.parametrize("order", range(1, 8))
def test_kjv400_words_all_orders(order, kjv_reference):
    assert_same_counts(count_files(KJV400, order), kjv_reference, order)


@pytest.mark.parametrize("order", [1, 2, 4, 7])
def test_kjv400_chars(order, kjv_char_reference):
    assert_same_counts(count_files(KJV400, order, units="char"), kjv_char_reference, order)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_awkward_corpus_words_and_chars(tmp_path, seed):
    rng = random.Random(seed)
    lines = awkward_lines(rng, 600)
    path = tmp_path / "corpus.txt"
    # CRLF on some lines, and no newline after the last one for odd seeds.
    data = "".join(line + ("\r\n" if rng.random() < 0.2 else "\n") for line in lines)
    path.write_bytes((data.rstrip("\n") if seed % 2 else data).encode())
    expected_lines = lines_of(path.read_bytes())
    assert len(expected_lines) == len(lines)
    order = 3 + 2 * seed
    assert_same_counts(count_files(path, order), count_sentences(expected_lines, order))
    assert_same_counts(count_files(path, order, units="char"), count_sentences(expected_lines, order, units="char"))


def test_other_word_boundary_equals_pre_split_units(tmp_path):
    lines = SentenceGenerator(seed=5).sentences(300)
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines) + "\n")
    units = [" ".join(to_units(line, "char", "_")) for line in lines]
    assert_same_counts(count_files(path, 5, units="char", word_boundary="_"), count_sentences(units, 5))
    assert_same_counts(count_files(path, 4, units="char", word_boundary="▁"), count_sentences(
        [" ".join(to_units(line, "char", "▁")) for line in lines], 4))  # fmt: skip


def test_every_code_point_splits_as_str_split(tmp_path):
    # One line holding every code point but '\n' and surrogates between "x"s: the words are
    # right only if the native whitespace set is exactly Python's.
    line = "x".join(chr(c) for c in range(0x110000) if c != 0x0A and not 0xD800 <= c < 0xE000)
    path = tmp_path / "all.txt"
    path.write_text(line, encoding="utf-8")
    got = count_files(path, 2)
    assert_same_counts(got, count_sentences([line], 2))
    assert len(got.vocab) == 3 + len(set(line.split())) and got.counts[0].sum() == len(line.split()) + 2


def test_empty_and_blank_lines_are_sentences(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a b\n\n \t\nb a\n\n")
    got = count_files(path, 2)
    assert_same_counts(got, count_sentences(["a b", "", " \t", "b a", ""], 2))
    assert got.count("<s> </s>") == 3


@pytest.mark.parametrize("order", [1, 3, 6])
def test_limit_vocab_list_and_file(tmp_path, kjv_lines, order):
    allowed = ["the", "lord", "and", "of", "god", "<unk>", "said", "unto", "never-in-the-text"]
    want = count_sentences(kjv_lines, order, limit_vocab=allowed)
    assert_same_counts(count_files(KJV400, order, limit_vocab=allowed), want)
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(allowed[:4]) + "  " + "\t".join(allowed[4:]) + "\n")
    assert_same_counts(count_files(KJV400, order, limit_vocab=vocab_file), want)
    assert_same_counts(count_files(KJV400, order, limit_vocab=iter(allowed)), want)


def test_limit_vocab_chars_and_unk_in_text(tmp_path):
    lines = ["the <unk> cat", "<unk>", "a cat <unk> <unk>", "dog"]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines))
    got = count_files(path, 3)
    assert_same_counts(got, count_sentences(lines, 3))
    assert got.count("<unk>") == 4 and got.vocab.words[:4] == ["<unk>", "<s>", "</s>", "the"]
    pets = ["cat", "dog"]
    assert_same_counts(count_files(path, 3, limit_vocab=pets), count_sentences(lines, 3, limit_vocab=pets))
    chars = set("aeiou|")
    assert_same_counts(count_files(path, 4, units="char", limit_vocab=chars),
                       count_sentences(lines, 4, units="char", limit_vocab=chars))  # fmt: skip


def test_gzip_and_several_files_are_one_corpus(tmp_path, kjv_lines):
    parts = [kjv_lines[:150], kjv_lines[150:151], kjv_lines[151:]]
    a, b, c = tmp_path / "a.txt.gz", tmp_path / "b.txt", tmp_path / "c.gz"
    with gzip.open(a, "wt") as handle:
        handle.write("\n".join(parts[0][:70]) + "\n")
    with gzip.open(a, "at") as handle:  # a second gzip member
        handle.write("\n".join(parts[0][70:]) + "\n")
    b.write_text(parts[1][0])  # no final newline: still one line, and the next file starts anew
    c.write_bytes(gzip.compress(("\n".join(parts[2]) + "\n").encode()))
    got = count_files([a, b, str(c)], 5)
    assert_same_counts(got, count_sentences(kjv_lines, 5))
    assert_same_counts(count_files(a, 2), count_sentences(parts[0], 2))


# ---------------------------------------------------------------------------------------------
# Memory budget, spilling, temporary files


@pytest.mark.parametrize("order", [1, 2, 5, 7])
def test_tiny_budget_spills_and_merges_to_the_same_counts(tmp_path, kjv_reference, order):
    tmp = tmp_path / "spill"
    tmp.mkdir()
    minimum = native.count_min_memory(order)
    words, ngrams, counts, stats = native.count_files([str(KJV400)], order, memory_bytes=minimum, tmp_dir=str(tmp))
    assert stats["runs"] >= 3 and stats["merge_passes"] >= 2  # more runs than read buffers: several passes
    assert stats["table_bytes"] <= minimum
    assert words == kjv_reference.vocab.words
    for n in range(order):
        np.testing.assert_array_equal(ngrams[n], kjv_reference.ngrams[n])
        np.testing.assert_array_equal(counts[n], kjv_reference.counts[n])
    assert os.listdir(tmp) == []
    _, _, _, in_memory = native.count_files([str(KJV400)], order)
    assert in_memory["runs"] == 0 and in_memory["merge_passes"] == 0


@pytest.fixture(scope="module")
def random_word_corpus(tmp_path_factory):
    """~330k tokens from a 100k-word vocabulary: ~330k distinct records, ids above 65535."""
    rng = random.Random(4)
    lines = [" ".join(f"w{rng.randrange(100_000)}" for _ in range(rng.randrange(0, 40))) for _ in range(16_000)]
    path = tmp_path_factory.mktemp("random") / "words.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, count_sentences(lines, 3)


def test_large_table_grows_and_sorts_in_parallel(random_word_corpus):
    path, want = random_word_corpus
    words, _, _, stats = native.count_files([str(path)], 3)
    assert stats["runs"] == 0 and stats["table_bytes"] >= 4 * 20 * 65536  # grew from 64Ki records
    assert len(words) > 65536 + 3
    assert_same_counts(count_files(path, 3), want)


def test_budget_between_growth_and_spilling(tmp_path, random_word_corpus):
    # 3.5 MB of 20-byte records: the table grows once to what fits beside the old one, then
    # spills, moves to the largest table the budget holds, and spills again from there.
    path, want = random_word_corpus
    budget = 3_500_000
    _, _, _, stats = native.count_files([str(path)], 3, memory_bytes=budget, tmp_dir=str(tmp_path))
    assert stats["runs"] >= 2 and stats["merge_passes"] == 1
    assert stats["table_bytes"] == budget // 20 * 20
    assert_same_counts(count_files(path, 3, memory=budget, tmp_dir=tmp_path), want)
    assert os.listdir(tmp_path) == []


def test_mid_budget_single_merge_pass(tmp_path, kjv_reference):
    got = count_files(KJV400, 4, memory="200K", tmp_dir=tmp_path)
    assert_same_counts(got, kjv_reference, 4)
    _, _, _, stats = native.count_files([str(KJV400)], 4, memory_bytes=200 << 10)
    assert stats["runs"] >= 2 and stats["merge_passes"] == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("memory", [1 << 30, 3_500_000])  # in memory; spilling runs
def test_counts_written_to_files_are_the_returned_ones(tmp_path, random_word_corpus, memory):
    """output_fds: each order's rows and counts go to its two files (flushed every
    kOutputRows = 32,768 rows: ~310k-330k rows per order here), after what the files held, and the returned
    arrays are empty; the files hold exactly what count_files returns."""
    path, want = random_word_corpus
    files = [open(tmp_path / f"out{i}", "w+b") for i in range(6)]
    try:
        for f in files:
            f.write(b"kept")
            f.flush()
        words, ngrams, counts, stats = native.count_files(
            [str(path)], 3, memory_bytes=memory, tmp_dir=str(tmp_path), output_fds=[f.fileno() for f in files]
        )
    finally:
        for f in files:
            f.close()
    assert (stats["runs"] > 0) == (memory < 1 << 30)
    assert words[3:] == want.vocab.words[3:]
    assert stats["rows"] == [len(c) for c in want.counts] and stats["rows"][2] > 9 * 32_768
    for n in range(1, 4):
        assert ngrams[n - 1].shape == (0, n) and counts[n - 1].shape == (0,)
        grams = (tmp_path / f"out{2 * n - 2}").read_bytes()
        values = (tmp_path / f"out{2 * n - 1}").read_bytes()
        assert grams[:4] == values[:4] == b"kept"
        np.testing.assert_array_equal(np.frombuffer(grams[4:], dtype=np.int32).reshape(-1, n), want.ngrams[n - 1])
        np.testing.assert_array_equal(np.frombuffer(values[4:], dtype=np.int64), want.counts[n - 1])


def test_output_fds_must_be_two_per_order():
    with pytest.raises(ValueError, match="output_fds: expected 2 \\* order = 6 file descriptors, got 3"):
        native.count_files([str(KJV400)], 3, output_fds=[0, 1, 2])


def test_a_full_disk_while_spilling_names_the_stage_and_folder(tmp_path):
    """A write that fails while the counter spills (here a file-size limit, RLIMIT_FSIZE, on the
    `lm build` process: the write returns EFBIG as a full disk returns ENOSPC) ends the build
    with the stage, the folder and the system's reason, and no ARPA."""
    spill = tmp_path / "spill"
    spill.mkdir()
    arpa = tmp_path / "out.arpa"
    limited = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "from speechdecode.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    command = [
        "lm",
        "build",
        "--text",
        str(KJV400),
        "-o",
        "4",
        "--memory",
        "100K",
        "-T",
        str(spill),
        "--arpa",
        str(arpa),
    ]
    done = subprocess.run([sys.executable, "-c", limited, *command], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    reason = "cannot write a temporary file (more disk or a larger memory budget helps)"
    assert f"n-gram counting: {reason} in {spill}: File too large" in done.stderr
    assert not arpa.exists() and os.listdir(spill) == []


def test_memory_below_minimum_says_the_minimum():
    minimum = native.count_min_memory(5)
    with pytest.raises(InvalidArgumentError, match=f"memory: expected at least {minimum} bytes for order 5"):
        count_files(KJV400, 5, memory=minimum - 1)
    with pytest.raises(ValueError, match=f"at least {minimum} bytes"):
        native.count_files([str(KJV400)], 5, memory_bytes=minimum - 1)


def test_interrupt_from_progress_leaves_no_files_and_raises(tmp_path):
    seen = []

    class Stop(Exception):
        pass

    def progress(done):
        seen.append(done)
        raise Stop

    with pytest.raises(Stop):
        count_files(KJV400, 5, memory=native.count_min_memory(5), tmp_dir=tmp_path, progress=progress)
    assert seen == [KJV400.stat().st_size]  # the end of the input, after runs were spilled
    assert os.listdir(tmp_path) == []


def test_progress_reports_bytes_up_to_the_total(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(KJV400.read_bytes() * 200)  # ~10 MB: reports every ~4 MiB and at the end
    seen = []
    got = count_files(path, 2, progress=seen.append)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == path.stat().st_size
    assert got.counts[0].sum() == 200 * (10081 + 2 * 400)
    assert_same_counts(count_files(path, 2, progress=True), got)  # a tqdm bar (silent without a TTY)


def test_concurrent_counts_from_threads(kjv_reference):
    # The GIL is released while counting: threads run at once and each gets the same result.
    start = threading.Barrier(3)

    def run(_):
        start.wait()
        return count_files(KJV400, 3, memory="100K")

    with ThreadPoolExecutor(3) as pool:
        for got in pool.map(run, range(3)):
            assert_same_counts(got, kjv_reference, 3)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_invalid_utf8_strict_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nalso fine\nbad \xe2\x82 here\nnever read\n")
    with pytest.raises(InputFileError) as info:
        count_files(path, 3)
    assert info.value.path == str(path) and info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: invalid UTF-8 (byte 0xe2 at column 5)")
    assert "replace" in str(info.value)


@pytest.mark.parametrize("seed", range(4))
def test_invalid_utf8_replace_equals_python_decoder(tmp_path, seed):
    rng = random.Random(seed)
    pieces = [b"\xe0\x80", b"\xe0\xa0", b"\xed\xa0\x80", b"\xf0\x80\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
              b"\xf0\x9f\x98", b"\xff", b"\xfe\xfe", b"\x80", b"\xc3", b"\xe2\x82", "é".encode(), "🎉".encode(),
              "\u3000".encode(), "\xa0".encode(), b" ", b"\n", b"ab", b"<unk>"]  # fmt: skip
    data = b"".join(rng.choice(pieces) for _ in range(3000))
    path = tmp_path / "bytes.txt"
    path.write_bytes(data)
    for units in ("word", "char"):
        want = count_sentences(lines_of(data, "replace"), 3, units=units)
        assert_same_counts(count_files(path, 3, units=units, encoding_errors="replace"), want)


@pytest.mark.parametrize("special", ["<s>", "</s>"])
def test_sentence_markers_in_text_are_rejected(tmp_path, special):
    path = tmp_path / "c.txt"
    path.write_text(f"a b\nc {special} d\n")
    with pytest.raises(InputFileError, match=rf":2: {special} in the text") as info:
        count_files(path, 2)
    assert info.value.line == 2
    # As characters they are ordinary tokens.
    chars = count_files(path, 2, units="char")
    assert_same_counts(chars, count_sentences(["a b", f"c {special} d"], 2, units="char"))
    assert chars.count(list(special[:2])) == 1


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(InputFileError, match=r"nope\.txt: no such file") as info:
        count_files([KJV400, missing], 3)
    assert info.value.path == str(missing)
    if native is not None:  # the C++ check, reached without the Python one
        with pytest.raises(InputFileError, match=r"nope\.txt: cannot open: No such file"):
            native.count_files([str(missing)], 3)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_empty_corpus_is_an_error(tmp_path, backend):
    empty, blank = tmp_path / "empty.txt", tmp_path / "blank.txt"
    empty.write_bytes(b"")
    blank.write_text("\n  \n\t\n")
    for paths in ([empty], [empty, blank]):
        with pytest.raises(InvalidArgumentError, match="at least one token"):
            count_files(paths, 3, backend=backend)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"order": 0}, "order"), ({"order": MAX_ORDER + 1}, "order"), ({"order": 2.0}, "order"),
     ({"units": "byte"}, "units"), ({"units": "char", "word_boundary": "ab"}, "word_boundary"),
     ({"units": "char", "word_boundary": " "}, "word_boundary"), ({"encoding_errors": "ignore"}, "encoding_errors"),
     ({"memory": "lots"}, "memory"), ({"tmp_dir": "/nonexistent/dir"}, "tmp_dir"), ({"backend": "gpu"}, "backend")],
)  # fmt: skip
def test_bad_arguments(kwargs, match):
    kwargs = {"order": 3, **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        count_files(KJV400, **kwargs)


def test_no_paths():
    with pytest.raises(InvalidArgumentError, match="paths"):
        count_files([], 3)


def test_native_max_order_matches_and_is_usable(tmp_path):
    assert native.COUNT_MAX_ORDER == MAX_ORDER
    path = tmp_path / "c.txt"
    lines = SentenceGenerator(seed=9).sentences(40)
    path.write_text("\n".join(lines))
    assert_same_counts(count_files(path, MAX_ORDER), count_sentences(lines, MAX_ORDER))


def test_reference_backend_equals_count_sentences(tmp_path):
    lines = awkward_lines(random.Random(11), 200)
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines) + "\n")
    want = count_sentences(lines_of(path.read_bytes()), 4)
    assert_same_counts(count_files(path, 4, backend="reference"), want)
    if native is not None:
        assert_same_counts(count_files(path, 4, backend="native"), want)


def test_old_module_path_is_an_alias_that_warns():
    import importlib
    import sys

    import speechdecode.lm.counting as counting

    sys.modules.pop("speechdecode.lm.count", None)
    with pytest.warns(DeprecationWarning, match=r"lm\.count is deprecated .* use speechdecode\.lm\.counting"):
        old = importlib.import_module("speechdecode.lm.count")
    assert old is counting and old.count_files is count_files
