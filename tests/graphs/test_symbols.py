"""SymbolTable: both file layouts, every bad-file case with its line, encode/decode, char_tokens."""

import gzip
import random

import numpy as np
import pytest

from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.graphs import SymbolTable, char_tokens

SYMBOLS = ["<eps>", "a", "b", "c", "#0", "HELLO", "it's"]


def test_ids_are_positions():
    table = SymbolTable(SYMBOLS)
    assert len(table) == 7
    assert list(table) == SYMBOLS == table.symbols
    for i, symbol in enumerate(SYMBOLS):
        assert table.id(symbol) == i
        assert table.symbol(i) == symbol
    assert "b" in table and "d" not in table and 1 not in table


def test_symbols_property_is_a_copy():
    table = SymbolTable(SYMBOLS)
    table.symbols.append("zzz")
    assert len(table) == 7 and "zzz" not in table


def test_encode_decode_are_inverse():
    table = SymbolTable(SYMBOLS)
    rng = random.Random(0)
    seq = [rng.choice(SYMBOLS) for _ in range(50)]
    ids = table.encode(seq)
    assert ids == [SYMBOLS.index(s) for s in seq]
    assert table.decode(ids) == seq
    assert table.decode(np.array(ids, dtype=np.int64)) == seq
    assert table.encode(table.decode(range(7))) == list(range(7))


def test_encode_names_unknown_symbol_and_position():
    table = SymbolTable(SYMBOLS)
    with pytest.raises(InvalidArgumentError, match=r"symbols\[2\].*unknown symbol 'z'"):
        table.encode(["a", "b", "z", "q"])
    with pytest.raises(InvalidArgumentError, match="'nope'"):
        table.id("nope")


@pytest.mark.parametrize("bad", [-1, 7, 100, 1.0])
def test_decode_and_symbol_reject_bad_ids(bad):
    table = SymbolTable(SYMBOLS)
    with pytest.raises(InvalidArgumentError, match=r"ids\[1\]"):
        table.decode([0, bad])
    with pytest.raises(InvalidArgumentError, match="id"):
        table.symbol(bad)


@pytest.mark.parametrize(
    ("symbols", "message"),
    [(["a", "b", "a"], r"symbols\[2\].*already id 0"), (["a", ""], r"symbols\[1\]"), (["a b"], r"symbols\[0\]")],
)
def test_constructor_rejects_bad_symbols(symbols, message):
    with pytest.raises(InvalidArgumentError, match=message):
        SymbolTable(symbols)


def test_equality_and_hash():
    assert SymbolTable(["a", "b"]) == SymbolTable(iter(["a", "b"]))
    assert SymbolTable(["a", "b"]) != SymbolTable(["b", "a"])
    assert len({SymbolTable(["a", "b"]), SymbolTable(["a", "b"])}) == 1


def test_write_gives_pairs_in_id_order(tmp_path):
    path = tmp_path / "tokens.txt"
    SymbolTable(SYMBOLS).write(path)
    assert path.read_text() == "".join(f"{s} {i}\n" for i, s in enumerate(SYMBOLS))


def test_round_trip_pairs(tmp_path):
    path = tmp_path / "words.txt"
    table = SymbolTable(SYMBOLS)
    table.write(path)
    assert SymbolTable.read(path) == table


def test_read_pairs_in_any_order_with_tabs_and_blank_lines(tmp_path):
    order = list(range(len(SYMBOLS)))
    random.Random(1).shuffle(order)
    lines = [f"{SYMBOLS[i]}\t{i}" for i in order]
    lines.insert(3, "   ")
    path = tmp_path / "words.txt"
    path.write_text("\n" + "\n".join(lines) + "\n\n")
    assert SymbolTable.read(path).symbols == SYMBOLS


def test_read_one_symbol_per_line_ids_skip_blank_lines(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("\n<blk>\n|\n\na\n  b  \n")
    table = SymbolTable.read(path)
    assert table.symbols == ["<blk>", "|", "a", "b"]
    assert table.id("b") == 3


def test_read_gz_and_empty(tmp_path):
    path = tmp_path / "tokens.txt.gz"
    path.write_bytes(gzip.compress(b"b 1\na 0\n"))
    assert SymbolTable.read(path).symbols == ["a", "b"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert len(SymbolTable.read(empty)) == 0


def test_one_per_line_written_back_as_pairs_reads_the_same(tmp_path):
    src, dst = tmp_path / "list.txt", tmp_path / "pairs.txt"
    src.write_text("".join(s + "\n" for s in SYMBOLS))
    SymbolTable.read(src).write(dst)
    assert SymbolTable.read(dst) == SymbolTable.read(src) == SymbolTable(SYMBOLS)


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        ("a 0\nb 1 extra\n", 2, "3 fields"),
        ("a 0\n\nb\n", 3, "mixed layouts.*line 1"),
        ("a\nb 1\n", 2, "mixed layouts"),
        ("a 0\nb x\n", 2, "'x' is not a non-negative integer"),
        ("a 0\nb -1\n", 2, "'-1' is not"),
        ("a 0\nb 1.0\n", 2, "'1.0' is not"),
        ("a 0\nb 1\na 2\n", 3, "'a' repeats line 1"),
        ("a\nb\n\na\n", 4, "'a' repeats line 1"),
        ("a 0\nb 1\nc 1\n", 3, "id 1 repeats line 2"),
        ("a 0\nb 3\nc 1\n", 2, "id 3 leaves a gap.*id 2 is missing"),
        ("a 1\nb 2\n", 2, "id 2 leaves a gap.*id 0 is missing"),
    ],
)
def test_bad_files_name_path_and_line(tmp_path, text, line, detail):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(InputFileError, match=detail) as info:
        SymbolTable.read(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert info.value.line == line and info.value.path == str(path)


def test_char_tokens_ids():
    table = char_tokens(["hello", "world", "it's"])
    # blank 0, boundary 1, then sorted characters: ' d e h i l o r s t w
    assert table.symbols == ["<blk>", "|", "'", "d", "e", "h", "i", "l", "o", "r", "s", "t", "w"]
    custom = char_tokens(iter(["ba"]), blank="<b>", word_boundary="<sp>")
    assert custom.symbols == ["<b>", "<sp>", "a", "b"]


@pytest.mark.parametrize(
    ("words", "kwargs", "message"),
    [
        (["a|b"], {}, r"words\[0\].*word_boundary"),
        (["ok", "x_y"], {"blank": "_"}, r"words\[1\].*blank"),
        (["ok", ""], {}, r"words\[1\]"),
        (["two words"], {}, r"words\[0\]"),
        ("abc", {}, "single str"),
        (["a"], {"blank": "|"}, "word_boundary"),
    ],
)
def test_char_tokens_rejects(words, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        char_tokens(words, **kwargs)
