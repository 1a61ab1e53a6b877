"""The output rule of speechdecode/_io.py, for every writer: stdout and special files are written in
place, symlinks stay links, missing directories are errors, modes follow the umask or the replaced
file, failures leave the old file and no temporary, and leftovers of killed runs are removed."""

import os
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from speechdecode import _io
from speechdecode._io import atomic_directory, atomic_write
from speechdecode.lm.arpa import ArpaModel, read_arpa, write_arpa

MODEL = ArpaModel(
    ["<unk>", "<s>", "</s>", "a"],
    [np.arange(4, dtype=np.int32)[:, None], np.array([[1, 3], [3, 2]], dtype=np.int32)],
    [np.array([-2.0, 0.0, -1.0, -0.5]), np.array([-0.25, -0.75])],
    [np.array([0.0, -0.5, 0.0, -0.125]), np.zeros(0)],
)
BACKENDS = ["native", "reference"]


def leftovers(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if ".sdtmp-" in name)


def expected_bytes(tmp_path, backend) -> bytes:
    path = tmp_path / "expected.arpa"
    write_arpa(path, MODEL, backend=backend)
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.mark.parametrize("backend", BACKENDS)
def test_dash_writes_stdout(tmp_path, backend, capfd):
    want = expected_bytes(tmp_path, backend)
    write_arpa("-", MODEL, backend=backend)
    assert capfd.readouterr().out.encode() == want
    assert _io.committed("-")


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_files_are_written_in_place_never_renamed_over(tmp_path, backend):
    want = expected_bytes(tmp_path, backend)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "stdout-like"
    link.symlink_to(fifo)  # as /dev/stdout links to /proc/self/fd/1
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_arpa(link, MODEL, backend=backend)
    reader.join(timeout=30)
    assert received == [want]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.path.islink(link)
    write_arpa(os.devnull, MODEL, backend=backend)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert leftovers(tmp_path) == [] and leftovers(os.path.dirname(os.devnull)) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_link_to_a_regular_file_stays_a_link(tmp_path, backend):
    real = tmp_path / "real.arpa"
    real.write_text("old")
    link = tmp_path / "link.arpa"
    link.symlink_to(real)
    write_arpa(link, MODEL, backend=backend)
    assert os.path.islink(link) and os.readlink(link) == str(real)
    assert real.read_bytes() == expected_bytes(tmp_path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_missing_directory_is_an_error_and_is_not_created(tmp_path, backend):
    target = tmp_path / "absent" / "x.arpa"
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        write_arpa(target, MODEL, backend=backend)
    assert str(target) in str(info.value)
    assert not (tmp_path / "absent").exists()
    with pytest.raises(IsADirectoryError):
        write_arpa(tmp_path, MODEL, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path, backend, umask):
    old = os.umask(umask)
    try:
        fresh = tmp_path / "fresh.arpa"
        write_arpa(fresh, MODEL, backend=backend)
        assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o666 & ~umask
        kept = tmp_path / "kept.arpa"
        kept.write_text("old")
        os.chmod(kept, 0o640)
        write_arpa(kept, MODEL, backend=backend)
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o640
        assert read_arpa(kept).words == MODEL.words
    finally:
        os.umask(old)


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)), atomic_write(target) as handle:
            handle.write("new, half")
            raise error
        assert target.read_text() == "old" and leftovers(tmp_path) == []
    assert not _io.committed(target)
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new" and _io.committed(target)


def test_leftovers_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live_pid = os.getppid()  # still running: its temporaries may be in use
    names = [f".out.txt.sdtmp-{dead_pid}-0123abcd", f".out.txt.sdtmp-{live_pid}-89abcdef", ".other.sdtmp-1-00000000"]
    for name in names:
        (tmp_path / name).write_text("partial")
    (tmp_path / f".graph.sdtmp-{dead_pid}-0badcafe").mkdir()
    (tmp_path / f".graph.sdtmp-{dead_pid}-0badcafe" / "TLG.fst").write_text("partial")
    with atomic_write(tmp_path / "out.txt") as handle:
        handle.write("x")
    assert leftovers(tmp_path) == sorted([names[1], names[2], f".graph.sdtmp-{dead_pid}-0badcafe"])
    with atomic_directory(tmp_path / "graph") as staging:
        (tmp_path / os.path.basename(staging) / "a.txt").write_text("a")
    assert leftovers(tmp_path) == sorted([names[1], names[2]])
    assert (tmp_path / "graph" / "a.txt").read_text() == "a"


def test_atomic_directory_moves_files_only_when_complete(tmp_path):
    out = tmp_path / "graph"
    out.mkdir()
    (out / "mine.txt").write_text("user's file")
    (out / "a.txt").write_text("old a")
    with pytest.raises(OSError, match="disk full"), atomic_directory(out) as staging:
        with open(os.path.join(staging, "a.txt"), "w") as handle:
            handle.write("new a")
        raise OSError("disk full")
    assert (out / "a.txt").read_text() == "old a" and leftovers(tmp_path) == []
    with atomic_directory(out) as staging:
        for name in ("a.txt", "b.txt"):
            with open(os.path.join(staging, name), "w") as handle:
                handle.write(f"new {name}")
    assert sorted(os.listdir(out)) == ["a.txt", "b.txt", "mine.txt"]
    assert (out / "mine.txt").read_text() == "user's file" and (out / "b.txt").read_text() == "new b.txt"
    with pytest.raises(FileNotFoundError, match="does not exist"), atomic_directory(tmp_path / "no" / "graph"):
        pass
    assert not (tmp_path / "no").exists()


FULL_DISK = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
import numpy as np
from speechdecode.lm.arpa import ArpaModel, write_arpa
words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3000)]
model = ArpaModel(words, [np.arange(len(words), dtype=np.int32)[:, None]], [np.full(len(words), -3.0)], [np.zeros(0)])
try:
    write_arpa(sys.argv[1], model, backend=sys.argv[2])
except OSError as exc:
    print(type(exc).__name__, exc.errno, exc.filename)
    sys.exit(3)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_full_disk_fails_cleanly(tmp_path, backend):
    target = tmp_path / "lm.arpa"
    target.write_text("old model")
    run = subprocess.run([sys.executable, "-c", FULL_DISK, str(target), backend], capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    _, number, filename = run.stdout.split()
    assert int(number) == 27 and filename.endswith("lm.arpa")  # EFBIG, naming the target
    assert target.read_text() == "old model" and leftovers(tmp_path) == []


def test_a_small_tmpfs_runs_full(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 and not os.environ.get("CI"):  # CI runs as root: there the mount must work
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        target = mount / "lm.arpa"
        target.write_text("old model")
        words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(20000)]
        model = ArpaModel(
            words, [np.arange(len(words), dtype=np.int32)[:, None]], [np.full(len(words), -3.0)], [np.zeros(0)]
        )
        for backend in BACKENDS:
            with pytest.raises(OSError) as info:
                write_arpa(target, model, backend=backend)
            assert info.value.errno == 28  # ENOSPC
            assert target.read_text() == "old model" and leftovers(mount) == []
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_output_folders_are_made_but_never_their_parents(tmp_path):
    assert _io.output_folder(tmp_path / "results") == str(tmp_path / "results")
    assert (tmp_path / "results").is_dir()
    assert _io.output_folder(tmp_path / "results") == str(tmp_path / "results")  # already there
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _io.output_folder(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        _io.output_folder(tmp_path / "file")
