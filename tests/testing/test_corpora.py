"""Real corpora from Debian packages (installed by `make test`)."""

import pathlib

from speechdecode.testing.corpora import fortune_sentences, kjv_sentences, normalize

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "lmplz"


def test_normalize():
    assert normalize("Thou shalt not; 'tis MINE, isn't it?") == "thou shalt not 'tis mine isn't it"
    assert normalize("--- 42 ---") == ""


def test_kjv():
    verses = kjv_sentences()
    assert len(verses) > 31000
    assert verses[0] == "in the beginning god created the heaven and the earth"
    assert verses[-1] == "the grace of our lord jesus christ be with you all amen"
    # the lmplz oracle files were made from this slice of the same text
    assert verses[1000:1400] == (DATA / "kjv400.txt").read_text().splitlines()


def test_fortunes():
    lines = fortune_sentences()
    assert len(lines) > 10000
    assert all(line == normalize(line) and line for line in lines[:1000])
