"""Fuzzing the text-file readers of graphs/: lexicons (read_lexicon), symbol tables (SymbolTable.read)
and token lists (acoustic_units), plain and gzip, each read in the probe worker.

Known-invalid mutations must be rejected with an error naming the file (an empty pronunciation,
a bad probability, a duplicate, ``<eps>`` or ``#k`` in a pronunciation, a bad id, a gap, mixed
layouts, a bad UTF-8 byte, a damaged gzip member); random edits must fail cleanly or read.
"""

from __future__ import annotations

import gzip
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probing import FUZZ, check_outcome, examples

LEXICON = ["hello h e l l o", "world w o r l d", "read r iy d", "read r eh d", "a ah", "中文 zh ong", "<unk> spn"]
LEXICON_P = ["hello 1.0 h e l l o", "world 0.5 w o r l d", "read .25 r iy d", "read 1e-1 r eh d", "a 1 ah", "中文 1 zh"]
PAIRS = ["<blk> 0", "| 1", "a 2", "b 3", "中 4", "<unk> 5"]
SINGLE = ["<blk>", "|", "a", "b", "中"]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82"]


def _write(path, lines: list[str] | bytes, compress: bool) -> None:
    data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


def _bad_utf8(data, lines: list[str]) -> bytes:
    i = data.draw(st.integers(0, len(lines) - 1))
    raw = [line.encode() for line in lines]
    at = data.draw(st.integers(0, len(raw[i])))
    raw[i] = raw[i][:at] + data.draw(st.sampled_from(BAD_UTF8)) + raw[i][at:]
    return b"\n".join(raw) + b"\n"


def _damaged_gzip(data, lines: list[str]) -> bytes:
    packed = bytearray(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    if data.draw(st.booleans()):
        packed[len(packed) - 8 + data.draw(st.integers(0, 7))] ^= 1 << data.draw(st.integers(0, 7))  # CRC, length
    else:
        del packed[data.draw(st.integers(10, len(packed) - 1)) :]
    return bytes(packed)


def test_bases_read(prober, tmp_path):
    for lines, probabilities, want in ((LEXICON, None, 7), (LEXICON_P, None, 6), (LEXICON, False, 7)):
        path = tmp_path / "lexicon.txt"
        _write(path, lines, False)
        outcome = prober("read_lexicon", str(path), probabilities)
        assert outcome[0] == "ok" and len(outcome[1]) == want, outcome
    for lines in (PAIRS, SINGLE):
        path = tmp_path / "tokens.txt"
        _write(path, lines, True)
        assert prober("read_symbols", str(path)) == ("ok", [line.split()[0] for line in lines])


def _lexicon_mutation(data, probs: bool) -> tuple[str, list[str] | bytes, int]:
    lines = list(LEXICON_P if probs else LEXICON)
    kinds = ["empty", "duplicate", "reserved", "bad_utf8", "gzip"] + (["bad_prob", "missing_prob"] if probs else [])
    kind = data.draw(st.sampled_from(kinds))
    i = data.draw(st.integers(0, len(lines) - 1))
    fields = lines[i].split()
    if kind == "empty":
        lines[i] = " ".join(fields[: 2 if probs else 1])
    elif kind == "duplicate":
        lines.insert(data.draw(st.integers(0, len(lines))), lines[i])
    elif kind == "reserved":
        token = data.draw(st.sampled_from(["<eps>", "#0", "#1", "#17"]))
        at = data.draw(st.integers(2 if probs else 1, len(fields)))
        lines[i] = " ".join([*fields[:at], token, *fields[at:]])
    elif kind == "bad_prob":
        fields[1] = data.draw(st.sampled_from(["0", "1.5", "-0.5", "nan", "inf", "1e3", "0x1", "1_0", "١", "-0"]))
        lines[i] = " ".join(fields)
    elif kind == "missing_prob":
        lines[i] = " ".join([fields[0], *fields[2:]])
    elif kind == "bad_utf8":
        return kind, _bad_utf8(data, lines), i
    else:
        return kind, _damaged_gzip(data, lines), i
    return kind, lines, i


@settings(FUZZ, max_examples=examples(400))
@given(data=st.data())
def test_invalid_lexicon_is_rejected_with_the_file_named(prober, tmp_path, data):
    probs = data.draw(st.booleans())
    kind, content, line = _lexicon_mutation(data, probs)
    path = tmp_path / f"lexicon.txt{'.gz' if kind == 'gzip' else ''}"
    _write(path, content, data.draw(st.booleans()) and kind != "gzip")
    # The layout told, and guessed, unless the damage is to the first line's probability (from
    # which the guess is made: a plain lexicon is then read, validly).
    guess_is_told = not (kind in ("bad_prob", "missing_prob") and line == 0)
    for probabilities in (probs, None) if guess_is_told else (probs,):
        outcome = prober("read_lexicon", str(path), probabilities)
        check_outcome(f"lexicon {kind}", outcome, path, must_fail=True)
        assert outcome[1] in ("InputFileError", "OSError"), outcome


def _symbols_mutation(data) -> tuple[str, list[str] | bytes]:
    pairs = data.draw(st.booleans())
    lines = list(PAIRS if pairs else SINGLE)
    kinds = ["fields", "mixed", "repeat_symbol", "bad_utf8", "gzip"] + (["bad_id", "repeat_id", "gap"] if pairs else [])
    kind = data.draw(st.sampled_from(kinds))
    i = data.draw(st.integers(0, len(lines) - 1))
    symbol = lines[i].split()[0]
    if kind == "fields":
        lines[i] = f"{symbol} {i} extra"
    elif kind == "mixed":
        lines[i] = symbol if pairs else f"{symbol} {i}"
        if not pairs and i == 0:  # the first line sets the layout: break a later one
            lines[1] = f"{lines[1]} 1"
    elif kind == "repeat_symbol":
        j = data.draw(st.integers(0, len(lines) - 1).filter(lambda j: j != i))
        lines[j] = f"{symbol} {lines[j].split()[1]}" if pairs else symbol
    elif kind == "bad_id":
        lines[i] = f"{symbol} {data.draw(st.sampled_from(['1.0', '-1', '١', '0x1', '1e2', '+1', 'a', '1_0']))}"
    elif kind == "repeat_id":
        j = data.draw(st.integers(0, len(lines) - 1).filter(lambda j: j != i))
        lines[j] = f"{lines[j].split()[0]} {i}"
    elif kind == "gap":
        lines[i] = f"{symbol} {len(lines) + data.draw(st.integers(0, 5))}"
    elif kind == "bad_utf8":
        return kind, _bad_utf8(data, lines)
    else:
        return kind, _damaged_gzip(data, lines)
    return kind, lines


@settings(FUZZ, max_examples=examples(400))
@given(data=st.data())
def test_invalid_symbol_table_is_rejected_with_the_file_named(prober, tmp_path, data):
    kind, content = _symbols_mutation(data)
    path = tmp_path / f"words.txt{'.gz' if kind == 'gzip' else ''}"
    _write(path, content, data.draw(st.booleans()) and kind != "gzip")
    for probe in ("read_symbols", "acoustic_units"):
        outcome = prober(probe, str(path))
        check_outcome(f"symbols {kind}", outcome, path, must_fail=True)
        assert outcome[1] in ("InputFileError", "OSError"), outcome


@settings(FUZZ, max_examples=examples(150))
@given(reserved=st.sampled_from(["<eps>", "#0", "#3"]), where=st.integers(0, 3), pairs=st.booleans())
def test_reserved_token_in_a_token_file_names_the_file_and_line(prober, tmp_path, reserved, where, pairs):
    lines = ["a", "b", "c"]
    lines.insert(where, reserved)
    path = tmp_path / "tokens.txt"
    _write(path, [f"{s} {i}" for i, s in enumerate(lines)] if pairs else lines, False)
    outcome = prober("acoustic_units", str(path))
    check_outcome("tokens reserved symbol", outcome, path, must_fail=True)
    assert outcome[1] == "InputFileError" and f"{path}:{where + 1}:" in outcome[3], outcome


def _random_edit(data, lines: list[str]) -> bytes:
    raw = bytearray(("\n".join(lines) + "\n").encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        piece = data.draw(st.sampled_from([b" ", b"\t", b"\n", b"\r", b"#0", b"<eps>", b"0", b"1.5", b"-1", b"\x00",
                                           b"\xff", b"\xe4\xb8", b"\xc2\xa0", b"\x0c", b"\x1c"]))  # fmt: skip
        if op == "replace":
            raw[at : at + len(piece)] = piece
        elif op == "insert":
            raw[at:at] = piece
        else:
            del raw[at : at + data.draw(st.integers(1, 5))]
    return bytes(raw)


@settings(FUZZ, max_examples=examples(500))
@given(data=st.data())
def test_random_edits_fail_cleanly(prober, tmp_path, data):
    which = data.draw(st.sampled_from(["lexicon", "lexiconp", "pairs", "single"]))
    lines = {"lexicon": LEXICON, "lexiconp": LEXICON_P, "pairs": PAIRS, "single": SINGLE}[which]
    raw = _random_edit(data, lines)
    compress = data.draw(st.booleans())
    path = tmp_path / f"{which}.txt{'.gz' if compress else ''}"
    _write(path, raw, compress)
    if which.startswith("lexicon"):
        outcome = prober("read_lexicon", str(path), None)
        check_outcome("lexicon random edit", outcome, path)
        if outcome[0] == "ok":  # what was read holds no reserved token and no empty pronunciation
            assert not any(t == "<eps>" or re.fullmatch("#[0-9]+", t) for _, tokens, _ in outcome[1] for t in tokens)
            assert all(tokens for _, tokens, _ in outcome[1])
    else:
        for probe in ("read_symbols", "acoustic_units"):
            outcome = prober(probe, str(path))
            check_outcome("symbols random edit", outcome, path)
            if outcome[0] == "ok":
                assert len(set(outcome[1])) == len(outcome[1])


@pytest.mark.parametrize("token", ["<eps>", "#0", "#12"])
def test_lexicon_in_code_rejects_reserved_tokens(token):
    """Issue 13: a pronunciation holding <eps> or #0 made the decoder output a word it did not hear."""
    from speechdecode.errors import InvalidArgumentError
    from speechdecode.graphs.lexicon import Lexicon

    with pytest.raises(InvalidArgumentError, match=rf"tokens\[1\].*{re.escape(repr(token))} in the pronunciation"):
        Lexicon({"cab": [("c", token, "b")]})
    assert Lexicon({"cab": [("c", "#", "b", "#a")]})["cab"][0].tokens[1] == "#"  # only #<digits> is reserved


def test_graph_compile_names_the_lexicon_line_of_a_reserved_token(tmp_path):
    """Through the CLI: one line naming lexicon.txt:2, exit 2, and no graph written."""
    import subprocess
    import sys

    pytest.importorskip("pywrapfst")
    (tmp_path / "tokens.txt").write_text("<blk>\na\nb\n")
    (tmp_path / "lexicon.txt").write_text("ab a b\nba b #0 a\n")
    (tmp_path / "lm.arpa").write_text(
        "\\data\\\nngram 1=4\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-0.3\tab\n-0.3\tba\n\n\\end\\\n"
    )
    args = ["--tokens", "tokens.txt", "--lexicon", "lexicon.txt", "--arpa", "lm.arpa", "--out", "g"]
    out = subprocess.run([sys.executable, "-m", "speechdecode", "graph", "compile", *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "lexicon.txt:2: the pronunciation of 'ba' holds '#0'" in out.stderr
    assert not (tmp_path / "g").exists()
