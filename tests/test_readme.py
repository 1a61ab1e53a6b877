"""The README's Python snippets run as written."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_a_tour_per_user():
    text = README.read_text(encoding="utf-8")
    assert text.index("make demo") < text.index("## ") and text.index("make test") < text.index("## ")
    for user in ("ASR engineer", "TTS developer", "benchmarker"):
        assert f"## Tour: {user}" in text
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs(snippet, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    if "print(" in snippet:
        assert printed.strip()


def test_asr_snippet_decodes_what_numpy_decodes(tmp_path, monkeypatch, capsys):
    """The snippet's transcripts equal an independent numpy best-path decoding of its posteriors."""
    monkeypatch.chdir(tmp_path)
    snippet = next(s for s in SNIPPETS if "CtcPosteriorSimulator" in s)
    exec(compile(snippet, str(README), "exec"), namespace := {})
    log_probs, lengths, tokens = namespace["log_probs"], namespace["lengths"], namespace["tokens"]
    expected = []
    for b in range(len(lengths)):
        best = log_probs[b, : lengths[b]].argmax(-1)
        keep = (best != 0) & (best != np.concatenate([[-1], best[:-1]]))
        expected.append(" ".join("".join(tokens.symbols[i] for i in best[keep]).replace("|", " ").split()))
    assert namespace["text"] == expected
    assert sum(a != b for a, b in zip(expected, namespace["sentences"], strict=True)) > 0  # confusions happen
    wer = namespace["word_error_rate"](namespace["sentences"], expected)
    assert f"greedy WER {wer:.1%}" in capsys.readouterr().out
