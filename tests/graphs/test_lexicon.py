"""Lexicon: Kaldi lexicon.txt / lexiconp.txt reading and writing, the layout rule, char_lexicon."""

import pytest

from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.graphs import Lexicon, Pronunciation, char_lexicon, char_tokens, read_lexicon, write_lexicon


def write(tmp_path, text, name="lexicon.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_plain(tmp_path):
    path = write(tmp_path, "read r iy d\n\nread r eh d\na ah\n  the\tdh ah  \n")
    lex = read_lexicon(path)
    assert list(lex) == ["read", "a", "the"]
    assert lex["read"] == (Pronunciation(("r", "iy", "d")), Pronunciation(("r", "eh", "d")))
    assert lex["the"] == (Pronunciation(("dh", "ah"), None),)
    assert not lex.has_probabilities
    assert lex.num_pronunciations == 4
    assert lex.tokens() == {"r", "iy", "d", "eh", "ah", "dh"}


def test_read_with_probabilities(tmp_path):
    path = write(tmp_path, "read 1.0 r iy d\nread 0.5 r eh d\na .25 ah\nx 1e-3 k s\n")
    lex = read_lexicon(path)
    assert lex.has_probabilities
    assert [(w, p.prob) for w, p in lex.entries()] == [("read", 1.0), ("read", 0.5), ("a", 0.25), ("x", 0.001)]
    assert lex["x"][0].tokens == ("k", "s")


def test_numeric_token_after_a_plain_first_line_is_a_token(tmp_path):
    path = write(tmp_path, "one w ah n\nsix 6\n")
    assert read_lexicon(path)["six"][0] == Pronunciation(("6",), None)


def test_forced_layouts(tmp_path):
    path = write(tmp_path, "one 1\ntwo 2\n")
    assert read_lexicon(path, probabilities=False)["one"][0].tokens == ("1",)
    # Detection reads "1" as a probability, leaving no tokens.
    with pytest.raises(InputFileError, match="empty pronunciation"):
        read_lexicon(path)
    forced = write(tmp_path, "a 0.5 ah\n", "p.txt")
    assert read_lexicon(forced, probabilities=True)["a"][0] == Pronunciation(("ah",), 0.5)
    with pytest.raises(InputFileError, match=r"bad probability 'ah'.*probabilities argument"):
        read_lexicon(write(tmp_path, "a ah\n", "q.txt"), probabilities=True)


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        ("a ah\nb\n", 2, "empty pronunciation for word 'b'"),
        ("a 1.0 ah\nb 0.5\n", 2, "empty pronunciation for word 'b'"),
        ("a 1.0 ah\nb\n", 2, "empty pronunciation"),
        ("a 1.0 ah\nb 1.5 b iy\n", 2, "bad probability '1.5'.*line 1"),
        ("a 1.0 ah\nb 0 b iy\n", 2, "bad probability '0'"),
        ("a 1.0 ah\nb -0.5 b iy\n", 2, "bad probability '-0.5'"),
        ("a 1.0 ah\n\nb nan b iy\n", 3, "bad probability 'nan'"),
        ("a 1.0 ah\nb b iy\n", 2, "bad probability 'b'"),
        ("a ah\nb b iy\na ah\n", 3, "repeats the pronunciation of line 1"),
    ],
)
def test_bad_files_name_path_and_line(tmp_path, text, line, detail):
    path = write(tmp_path, text)
    with pytest.raises(InputFileError, match=detail) as info:
        read_lexicon(path)
    assert str(info.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("with_probs", [False, True])
def test_write_read_round_trip(tmp_path, with_probs):
    lex = Lexicon()
    entries = [
        ("hello", ("hh", "ah", "l", "ow"), 1.0),
        ("hello", ("hh", "eh", "l", "ow"), 0.1),
        ("x", ("k", "s"), 1e-7),
    ]
    for word, tokens, prob in entries:
        lex.add(word, tokens, prob if with_probs else None)
    path = tmp_path / "lexicon.txt"
    write_lexicon(path, lex)
    expected_lines = [" ".join([w, *([repr(p)] if with_probs else []), *t]) for w, t, p in entries]
    assert path.read_text().splitlines() == expected_lines
    back = read_lexicon(path)
    assert back == lex
    assert [p for _, p in back.entries()] == [p for _, p in lex.entries()]


def test_add_validation():
    lex = Lexicon({"a": [("ah",)]})
    with pytest.raises(InvalidArgumentError, match="prob"):
        lex.add("b", ("b",), 0.5)
    with pytest.raises(InvalidArgumentError, match="tokens"):
        lex.add("a", ["ah"])
    with pytest.raises(InvalidArgumentError, match="empty pronunciation"):
        lex.add("b", ())
    with pytest.raises(InvalidArgumentError, match="str"):
        lex.add("b", "bee")
    with pytest.raises(InvalidArgumentError, match=r"tokens\[1\]"):
        lex.add("b", ("b", "i y"))
    with pytest.raises(InvalidArgumentError, match="word"):
        lex.add("b c", ("b",))
    probs = Lexicon({"a": [Pronunciation(("ah",), 0.5)]})
    for bad in (0.0, 1.01, True, None):
        with pytest.raises(InvalidArgumentError, match="prob"):
            probs.add("b", ("b",), bad)
    assert len(lex) == 1 and probs.num_pronunciations == 1


def test_char_lexicon_spells_words_with_boundary():
    words = ["cab", "a", "it's", "cab"]
    lex = char_lexicon(words)
    assert list(lex) == ["cab", "a", "it's"]
    assert lex["cab"] == (Pronunciation(("c", "a", "b", "|")),)
    assert lex["it's"][0].tokens == ("i", "t", "'", "s", "|")
    assert lex.tokens() == set(char_tokens(words).symbols) - {"<blk>"}
    assert char_lexicon(["ab"], word_boundary="<w>")["ab"][0].tokens == ("a", "b", "<w>")


@pytest.mark.parametrize(
    ("words", "message"), [(["a|b"], "word_boundary"), (["ok", ""], r"words\[1\]"), ("ab", "single str")]
)
def test_char_lexicon_rejects(words, message):
    with pytest.raises(InvalidArgumentError, match=message):
        char_lexicon(words)
