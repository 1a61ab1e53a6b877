"""speechdecode demo: its files are consistent and its table is what the decoders produce."""

import json
import subprocess
import sys

from speechdecode.decoding import ctc_greedy, word_error_rate
from speechdecode.decoding.posteriors import load_posteriors
from speechdecode.decoding.text import words_from_tokens
from speechdecode.graphs import SymbolTable, read_lexicon
from speechdecode.lm import NgramModel


def test_demo_json(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "speechdecode", "demo", "--out", str(tmp_path), "--sentences", "40", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["data"]["test_sentences"] == 40

    tokens = SymbolTable.read(tmp_path / "tokens.txt")
    lexicon = read_lexicon(tmp_path / "lexicon.txt")
    test = (tmp_path / "test.txt").read_text().splitlines()
    train = (tmp_path / "train.txt").read_text().splitlines()
    assert len(test) == 40 and len(train) == 5000
    assert {w for s in test + train for w in s.split()} <= set(lexicon)
    assert lexicon.tokens() <= set(tokens)

    posteriors = load_posteriors(tmp_path / "posteriors.npz")
    assert posteriors.log_probs.shape[0] == 40 and posteriors.log_probs.shape[2] == len(tokens)
    assert report["data"]["frames"] == int(posteriors.lengths.sum())
    # The reported WER is the WER of decoding the written posteriors against the written text.
    hyps = ctc_greedy(posteriors.log_probs, posteriors.lengths, tokens.id("<blk>"), backend="reference")
    text = [" ".join(words_from_tokens(tokens.decode(h.tokens.tolist()))) for h in hyps]
    wer = word_error_rate(test, text)
    decode = {row["backend"]: row for row in report["rows"] if row["stage"] == "decode"}
    assert set(decode) == {"reference", "native"}
    for row in decode.values():
        assert abs(row["wer"] - wer) < 1e-12 and row["speed"] > 0 and row["quality"] == f"WER {100 * wer:.2f}%"
    assert 0 < wer < 1
    # The LM stage: both backends write the same ARPA, and its perplexity is reported.
    lm_rows = [row for row in report["rows"] if row["stage"] == "lm"]
    assert [row["backend"] for row in lm_rows] == ["reference", "native"]
    native_arpa = (tmp_path / "lm.o3.native.arpa").read_bytes()
    assert native_arpa == (tmp_path / "lm.o3.reference.arpa").read_bytes()
    model = NgramModel.from_arpa(tmp_path / "lm.o3.native.arpa")
    assert lm_rows[1]["quality"] == f"ppl {model.perplexity_of(test):.2f}"


def test_demo_table(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "speechdecode", "demo", "--out", "demo-test-output", "--sentences", "10"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    assert lines[header].split() == ["stage", "what", "backend", "quality", "ms", "speed"]
    stages = [(line[:8].strip(), line[24:34].strip()) for line in lines[header + 1 : header + 5]]
    assert stages == [("lm", "reference"), ("lm", "native"), ("decode", "reference"), ("decode", "native")]
    assert lines[-1].startswith(f"files: {tmp_path}/demo-test-output/")
