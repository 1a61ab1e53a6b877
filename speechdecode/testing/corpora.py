"""Real text for tests, demos and benchmarks, from Debian packages (nothing is downloaded).

* :func:`kjv_sentences`: the King James Bible, one verse a sentence (package ``bible-kjv``,
  read through its ``bible`` program), about 31k verses and 790k words.
* :func:`fortune_sentences`: the ``fortunes`` package's quotations, one line a sentence.

Text is normalized for word-level LMs by :func:`normalize`: lower case, letters and
apostrophes kept, everything else a word break.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from speechdecode.errors import BackendUnavailableError

_NOT_WORD = re.compile(r"[^a-z']+")
_VERSE = re.compile(r"^\s*\d+\s+(.*)$")
FORTUNES_DIR = "/usr/share/games/fortunes"


def normalize(text: str) -> str:
    """Lower-case ``text`` and keep only words of letters and apostrophes.

    >>> normalize("And God said, Let there be light: and there was light.")
    'and god said let there be light and there was light'
    """
    return " ".join(w for w in _NOT_WORD.split(text.lower()) if w.strip("'"))


def kjv_sentences() -> list[str]:
    """Every verse of the King James Bible, normalized, in canonical order."""
    program = shutil.which("bible")
    if program is None:
        raise BackendUnavailableError("the King James text needs Debian's bible-kjv: apt-get install -y bible-kjv")
    text = subprocess.run(
        [program, "-l1000", "gen1:1-rev22:21"], capture_output=True, text=True, check=True
    ).stdout  # fmt: skip
    verses = []
    for line in text.splitlines():
        match = _VERSE.match(line)
        if match:
            verse = normalize(match.group(1))
            if verse:
                verses.append(verse)
    return verses


def fortune_sentences() -> list[str]:
    """Every non-empty line of the fortunes package's English files, normalized."""
    files = sorted(
        p for p in glob.glob(os.path.join(FORTUNES_DIR, "*")) if os.path.isfile(p) and not p.endswith((".dat", ".u8"))
    )
    if not files:
        raise BackendUnavailableError(f"no fortune files in {FORTUNES_DIR}: apt-get install -y fortunes")
    sentences = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip() != "%":
                    sentence = normalize(line)
                    if sentence:
                        sentences.append(sentence)
    return sentences
