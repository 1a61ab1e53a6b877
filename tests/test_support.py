"""errors, atomic writes and progress bars."""

import io
import os

import pytest

from speechdecode._io import atomic_write, open_text
from speechdecode._progress import progress
from speechdecode.errors import InputFileError, InvalidArgumentError, SpeechdecodeError, TensorError


def test_error_messages_and_types():
    err = InputFileError("lm.arpa", 12, "bad n-gram count")
    assert str(err) == "lm.arpa:12: bad n-gram count" and (err.path, err.line) == ("lm.arpa", 12)
    assert str(InputFileError("x.npz", None, "no such file")) == "x.npz: no such file"
    err = TensorError("log_probs", "a 3-D array", "2-D array")
    assert str(err) == "log_probs: expected a 3-D array, got 2-D array"
    assert isinstance(err, ValueError) and isinstance(err, InvalidArgumentError) and isinstance(err, SpeechdecodeError)


def test_atomic_write_leaves_no_half_file(tmp_path):
    path = tmp_path / "out.txt"
    with atomic_write(path) as f:
        f.write("old\n")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_write(path) as f:
            f.write("half of the new cont")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]  # the temporary file is gone too


def test_open_text_reads_gzip(tmp_path):
    import gzip

    with gzip.open(tmp_path / "a.txt.gz", "wt") as f:
        f.write("one\ntwo\n")
    with open_text(tmp_path / "a.txt.gz") as f:
        assert f.read().split() == ["one", "two"]


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class FakeTty(io.StringIO):
        def isatty(self):
            return True

    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    for _ in progress(range(3), desc="work"):
        pass
    assert pipe.getvalue() == ""
    tty = FakeTty()
    monkeypatch.setattr("sys.stderr", tty)
    for _ in progress(range(3), desc="work"):
        pass
    assert "work" in tty.getvalue()


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "m.txt") as f:
            f.write("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "m.txt").stat().st_mode & 0o777 == 0o644
