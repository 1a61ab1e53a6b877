"""The command line under faults: SIGINT and SIGKILL at random points of `lm build` and `graph
compile`, writes to /dev/stdout and closed pipes, and errors as one line (or a JSON object).

After every kill the target is either the old file or the complete new one; SIGINT leaves nothing
behind, and what a SIGKILL leaves is removed by the next run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechdecode.testing.corpora import kjv_sentences

CLI = [sys.executable, "-m", "speechdecode"]


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


def leftovers(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if ".sdtmp-" in name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "kjv.txt"
    path.write_text("\n".join(kjv_sentences()[:12000]) + "\n", encoding="utf-8")
    return path


def check_interrupted(status: int, complete: bool, stderr: bytes) -> None:
    """Exit 0 exactly when the new output is complete, 130 when the old one is kept; -2 (killed by
    the signal before the command started: the interpreter was still starting) only with the old."""
    assert status in (0, 130, -signal.SIGINT), stderr
    assert (status == 0) == complete, (status, stderr)
    if status == 130:  # -2: Python's own KeyboardInterrupt while it imported the CLI (its traceback)
        assert b"Traceback" not in stderr, stderr


def kill_at_random_points(command, target: Path, old: bytes, new: bytes, sig, seed: int, trials: int) -> set[str]:
    """Runs ``command`` ``trials`` times, sending ``sig`` at random times; returns the outcomes seen."""
    rng = random.Random(seed)
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    full = time.perf_counter() - start
    seen = set()
    for _ in range(trials):
        target.write_bytes(old)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.1, 1.1) * full)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=300)
        got = target.read_bytes()
        assert got in (old, new), "the target is neither the old file nor the complete new one"
        if sig == signal.SIGINT:
            check_interrupted(process.returncode, got == new, stderr)
            assert leftovers(target.parent) == []
        seen.add("old" if got == old else "new")
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    assert leftovers(target.parent) == []  # the next run removes a killed run's temporaries
    assert target.read_bytes() == new
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_lm_build_killed_at_random_points(tmp_path, corpus, sig):
    target = tmp_path / "lm.arpa"
    command = [*CLI, "lm", "build", "--text", str(corpus), "--order", "4", "--arpa", str(target)]
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    new = target.read_bytes()
    kill_at_random_points(command, target, b"old model\n", new, sig, seed=int(sig), trials=6)


@pytest.fixture(scope="module")
def graph_inputs(tmp_path_factory, corpus):
    from speechdecode.graphs import char_lexicon, char_tokens
    from speechdecode.graphs.lexicon import write_lexicon

    folder = tmp_path_factory.mktemp("graph-inputs")
    sentences = corpus.read_text().splitlines()[:3000]
    words = sorted({w for line in sentences for w in line.split()})
    char_tokens(words).write(folder / "tokens.txt")
    write_lexicon(folder / "lexicon.txt", char_lexicon(words))
    (folder / "text.txt").write_text("\n".join(sentences) + "\n")
    run("lm", "build", "--text", folder / "text.txt", "--order", "2", "--arpa", folder / "lm.arpa").check_returncode()
    return folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_graph_compile_killed_at_random_points(tmp_path, graph_inputs, sig):
    out = tmp_path / "graph"
    command = [
        *CLI, "graph", "compile", "--tokens", str(graph_inputs / "tokens.txt"),
        "--lexicon", str(graph_inputs / "lexicon.txt"), "--arpa", str(graph_inputs / "lm.arpa"),
        "--allow-oov", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    new = (out / "TLG.fst").read_bytes()
    rng = random.Random(int(sig))
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    full = time.perf_counter() - start
    for _ in range(4):
        for name in os.listdir(out):
            (out / name).write_bytes(b"old " + name.encode())
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.1, 1.1) * full)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=300)
        got = (out / "TLG.fst").read_bytes()
        assert got in (b"old TLG.fst", new)
        if sig == signal.SIGINT:
            check_interrupted(process.returncode, got == new, stderr)
            assert leftovers(tmp_path) == []
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    assert leftovers(tmp_path) == [] and (out / "TLG.fst").read_bytes() == new


def test_dev_stdout_is_written_in_place(tmp_path, corpus):
    target = tmp_path / "lm.arpa"
    run("lm", "build", "--text", corpus, "--order", "2", "--arpa", target).check_returncode()
    piped = subprocess.run(
        [*CLI, "lm", "build", "--text", str(corpus), "--order", "2", "--arpa", "/dev/stdout"],
        capture_output=True,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(target.read_bytes())  # the model, then the command's summary
    assert os.path.islink("/dev/stdout") and leftovers("/dev") == []


def test_a_missing_directory_is_one_line_naming_it(tmp_path, corpus):
    target = tmp_path / "absent" / "x.arpa"
    result = run("lm", "build", "--text", corpus, "--order", "2", "--arpa", target)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "does not exist" in lines[0], lines
    assert not target.parent.exists()


def test_errors_under_json_are_objects(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"in the beginning\ngod created \xff the heaven\n")
    result = run("lm", "build", "--text", bad, "--order", "2", "--arpa", tmp_path / "x.arpa", "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["command"] == "lm build" and error["path"] == str(bad) and error["line"] == 2, error
    assert f"{bad}:2:" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.arpa").exists()


def test_unexpected_errors_are_one_line_too(tmp_path):
    truncated = tmp_path / "graph"
    truncated.mkdir()
    (truncated / "TLG.npz").write_bytes(b"PK\x03\x04 cut short")
    result = run("graph", "info", truncated / "TLG.npz")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "TLG.npz" in result.stderr, result.stderr


def test_a_closed_pipe_ends_quietly(corpus):
    # Megabytes of ARPA text to stdout, whose reader stops after 100 bytes (`| head -c 100`).
    command = [*CLI, "lm", "build", "--text", str(corpus), "--order", "3", "--arpa", "-"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        head = process.stdout.read(100)
        process.stdout.close()
        stderr = process.stderr.read()
        process.wait(timeout=120)
    assert head.startswith(b"\\data\\\n")
    assert process.returncode == 128 + signal.SIGPIPE, stderr
    assert b"error" not in stderr and b"Traceback" not in stderr, stderr


def test_an_interrupt_that_surfaces_as_another_error_exits_as_interrupted(monkeypatch, capsys):
    # SIGINT while numpy imports can come out as a bare ImportError (a C extension's init was
    # interrupted; nothing chains the KeyboardInterrupt): still "interrupted", not an error.
    from speechdecode import cli

    def interrupted_import():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises in here
        except KeyboardInterrupt:
            pass
        raise ImportError("initialization of an extension module failed")  # no context: raised after

    monkeypatch.setattr(cli, "build_parser", interrupted_import)
    assert cli.main(["lm", "build"]) == 128 + signal.SIGINT
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.setattr(cli, "build_parser", lambda: (_ for _ in ()).throw(ImportError("no signal")))
    assert cli.main(["lm", "build"]) == 2  # the same error without a signal stays an error
