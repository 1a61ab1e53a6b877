"""The speechdecode command line: commands, --json, one-line errors with exit status 2."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from speechdecode import cli
from speechdecode.decoding.posteriors import save_posteriors
from speechdecode.graphs import SymbolTable


def run_cli(*args, env=None):
    """The CLI in a child process, as a user runs it (stderr is a pipe, not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "speechdecode", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture
def posteriors(tmp_path):
    """Two utterances over tokens <blk> a b |, decoding to 'ab a' and 'b'."""
    tokens = SymbolTable(["<blk>", "a", "b", "|"])
    frames = [[1, 1, 0, 2, 3, 1, 3], [0, 2, 2, 3, 0, 0, 0]]
    log_probs = np.log(np.eye(4, dtype=np.float32)[frames] * 0.97 + 0.01)
    save_posteriors(tmp_path / "p.npz", log_probs, [7, 4], ["first", "second"])
    tokens.write(tmp_path / "tokens.txt")
    return tmp_path


def test_info_json_reports_backends():
    out = run_cli("info", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["native"]["available"] is True and "gcc" in info["native"]["compiler"]
    assert info["triton"]["available"] is True and info["triton"]["version"]
    assert info["cuda"]["available"] in (True, False)
    assert info["versions"]["torch"].startswith("2.")


def test_decode_prints_transcripts(posteriors):
    out = run_cli("decode", "--log-probs", str(posteriors / "p.npz"), "--tokens", str(posteriors / "tokens.txt"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["first\tab a", "second\tb"]
    assert out.stderr == ""  # no progress bar when stderr is not a terminal


def test_decode_json_and_blank_by_symbol(posteriors):
    out = run_cli(
        "decode", "--log-probs", str(posteriors / "p.npz"), "--tokens", str(posteriors / "tokens.txt"),
        "--blank", "<blk>", "--json", "--backend", "reference",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["results"]
    assert results[0] == {"utt_id": "first", "text": "ab a", "tokens": [1, 2, 3, 1, 3], "frames": [0, 3, 4, 5, 6]}
    assert results[1]["tokens"] == [2, 3]  # frames past length 4 are ignored


def test_decode_without_tokens_prints_ids(posteriors):
    out = run_cli("decode", "--log-probs", str(posteriors / "p.npz"))
    assert out.stdout.splitlines() == ["first\t1 2 3 1 3", "second\t2 3"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["decode", "--log-probs", "missing.npz"], "missing.npz: no such file"),
        (["decode", "--log-probs", "tokens.txt"], "tokens.txt: not an .npz file"),
        (["decode", "--log-probs", "p.npz", "--tokens", "short.txt"], "short.txt: 3 tokens, but p.npz has V = 4"),
        (["decode", "--log-probs", "p.npz", "--blank", "7"], "blank: expected a label id in [0, 4), got 7"),
        (["decode", "--log-probs", "p.npz", "--blank", "foo"], "--blank: expected a label id or a symbol"),
        (["decode"], "the following arguments are required: --log-probs"),
        (["bench", "nope"], "name: expected a benchmark suite, one of beam, compat, ctc, ctc_gpu"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_errors_are_one_line_with_exit_2(posteriors, args, message):
    SymbolTable(["<blk>", "a", "b"]).write(posteriors / "short.txt")
    out = subprocess.run(
        [sys.executable, "-m", "speechdecode", *args], capture_output=True, text=True, cwd=posteriors, timeout=300
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr and "error:" in out.stderr


def test_every_command_takes_json():
    import argparse

    def leaves(parser, path):
        tables = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not tables:
            yield path, parser
        for table in tables:
            for name, sub in table.choices.items():
                yield from leaves(sub, (*path, name))

    commands = dict(leaves(cli.build_parser(), ()))
    assert {p[0] for p in commands} == {"info", "lm", "graph", "decode", "demo", "bench", "transcribe"}
    assert {p[1] for p in commands if p[0] == "graph"} == {"compile", "import", "info", "draw"}
    lm = {"count", "build", "ppl", "prune", "generate", "info", "binary", "arpa", "query"}
    assert {p[1] for p in commands if p[0] == "lm"} == lm
    for path, sub in commands.items():
        assert any(a.dest == "json" for a in sub._actions), path


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "speechdecode")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("speechdecode 0.")


def test_bench_list_and_quick_run(tmp_path):
    out = run_cli("bench", "list", "--json")
    suites = "beam compat ctc ctc_gpu ctc_greedy e2e graphs lm masks patterns sampling scale tts_hf units wfst"
    assert json.loads(out.stdout) == {"suites": suites.split()}
    out = run_cli("bench", "ctc_greedy", "--quick", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "| fp32 | native 1 thread |" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctc_greedy.json", "ctc_greedy.md", "ctc_greedy.png"]


def _parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_help_text_is_plain_text():
    # help comes from docstrings; reST markup (``code``, :class:`x`) must not reach the terminal
    seen = 0
    for path, parser in _parsers(cli.build_parser()):
        text = parser.format_help()
        assert "``" not in text and ":class:" not in text and ":func:" not in text, " ".join(path)
        seen += 1
    assert seen > 20
