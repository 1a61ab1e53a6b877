"""The one output rule every writer follows, and opening text input (plain or gzip).

Writing a file (:func:`atomic_write`) or a folder of files (:func:`atomic_directory`):

* ``-`` means standard output, written in place.
* A path that exists and is not a regular file (``/dev/stdout``, a FIFO, a terminal, ``/dev/null``)
  is written in place: it is never renamed over, so a device node stays a device node.
* A regular file, or a new name, gets the content under a temporary name in the same directory
  (``.NAME.sdtmp-PID-XXXXXXXX``); it is flushed and fsynced, then renamed onto the target. A
  symbolic link to a regular file keeps being a link: the file it points to is replaced.
* The target's directory must exist: it is never created (an error names it).
* A new file gets the mode the user's umask gives; a replaced file keeps its mode.
* The temporary is removed on every exit path that runs Python code (errors, ``KeyboardInterrupt``,
  the CLI's SIGTERM); a process killed outright leaves it behind, and the next write to the same
  target removes temporaries whose process is gone.
* Signals are held during the rename, so an interrupt either comes before it (the old file stays)
  or after it (the new file is complete; :func:`committed` says so).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

from speechdecode.errors import InputFileError

STDIO = "-"
MAX_LINE_BYTES = 1 << 26  # open_text's longest line (64 MiB): no text input of ours comes close
_TEMP_TAG = ".sdtmp-"
_TEMP_NAME = re.compile(r"\.sdtmp-(\d+)-[0-9a-f]{8}$")
_committed: set[str] = set()
_committed_lock = threading.Lock()


def committed(path: str | os.PathLike) -> bool:
    """Whether this process has completely written ``path`` (renamed into place, or ``-``)."""
    with _committed_lock:
        return _key(path) in _committed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open ``path`` for writing under the output rule (module docstring); yields the handle.

    ``mode`` is ``"w"`` (text in ``encoding``) or ``"wb"``. When the block raises, the
    temporary is removed and the target is as it was.

    Raises:
        FileNotFoundError: the target's directory does not exist.
        IsADirectoryError: the target is a directory.
        OSError: the file cannot be written (disk full, permissions, ...); nothing is left behind.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    binary = mode == "wb"
    path = os.fspath(path)
    if path == STDIO:
        with _stdout(binary, encoding) as handle:
            yield handle
        _record(STDIO)
        return
    target = _target(path)
    if target is None:  # a device, FIFO or terminal: written in place
        with open(path, mode, encoding=None if binary else encoding) as handle:
            yield handle
        return
    directory, name = os.path.split(target)
    _remove_stale(directory, name)
    fd, temporary = _create_temporary(directory, name)
    try:
        _copy_mode(target, fd)
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _commit(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, path) from exc  # name the file written
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[str]:
    """A staging folder beside the folder ``path``; its files move into ``path`` when the block ends.

    Files written into the yielded folder replace same-named files in ``path`` only if the block
    succeeds (each file renamed whole, after all of them were synced); other files in ``path``
    are left alone. ``path`` is created if missing (its parent must exist).

    Raises:
        FileNotFoundError: the parent directory does not exist.
        NotADirectoryError: ``path`` exists and is not a directory.
    """
    path = os.path.realpath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", path)
    parent, name = os.path.split(path)
    _require_directory(parent, path)
    _remove_stale(parent, name)
    staging = os.path.join(parent, _temporary_name(name))
    os.mkdir(staging)
    try:
        yield staging
        names = sorted(os.listdir(staging))
        for entry in names:
            _fsync_path(os.path.join(staging, entry))
        with _signals_held():
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
            for entry in names:
                os.replace(os.path.join(staging, entry), os.path.join(path, entry))
            _fsync_path(path)
            for entry in names:
                _record(os.path.join(path, entry))
            _record(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def output_folder(path: str | os.PathLike) -> str:
    """Make the output folder ``path`` if it is missing (its parent must exist); returns it.

    Raises:
        FileNotFoundError: the parent directory does not exist (it is never created).
        NotADirectoryError: ``path`` exists and is not a directory.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", path)
    _require_directory(os.path.dirname(os.path.abspath(path)), path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    return path


def _target(path: str) -> str | None:
    """The regular file to replace (symlinks followed), or None for a special file written in place."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        raise FileNotFoundError(errno.ENOENT, "a component of the path is not a directory", path) from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file", path)
        if not stat.S_ISREG(info.st_mode):
            return None
    target = os.path.realpath(path)
    _require_directory(os.path.dirname(target), path)
    return target


def _require_directory(directory: str, path: str) -> None:
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            errno.ENOENT, f"the directory {directory!r} does not exist (it is not created for you)", path
        )


def _temporary_name(name: str) -> str:
    return f".{name}{_TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    while True:
        temporary = os.path.join(directory, _temporary_name(name))
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), temporary
        except FileExistsError:
            continue


def _copy_mode(target: str, fd: int) -> None:
    """A replaced file keeps its permission bits; a new one has what os.open's 0o666 and the umask gave."""
    with contextlib.suppress(FileNotFoundError):
        os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))


def _commit(temporary: str, target: str) -> None:
    with _signals_held():
        os.replace(temporary, target)
        _fsync_path(os.path.dirname(target))
        _record(target)


def _record(path: str) -> None:
    with _committed_lock:
        _committed.add(_key(path))


def _key(path: str | os.PathLike) -> str:
    """How committed outputs are recorded: stdout as ``-``, files by their real path."""
    path = os.fspath(path)
    return path if path == STDIO else os.path.realpath(path)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot sync a directory
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (main thread only) and deliver them when the block has finished.

    The Python-level handlers are swapped, not the thread's signal mask: the kernel may hand a
    signal blocked in the main thread to another thread, whose C handler would still make the
    main thread run the Python handler in the middle of the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda s, _: held.append(s)) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for signum in held:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler != signal.SIG_IGN:
                signal.raise_signal(signum)


def _remove_stale(directory: str, name: str) -> None:
    """Remove temporaries for ``name`` left by processes that no longer exist."""
    prefix = f".{name}{_TEMP_TAG}"
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        match = _TEMP_NAME.search(entry)
        if match is None or _alive(int(match.group(1))):
            continue
        full = os.path.join(directory, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _stdout(binary: bool, encoding: str | None) -> Iterator[IO]:
    sys.stdout.flush()
    raw = sys.stdout.buffer
    if binary:
        yield raw
        raw.flush()
        return
    text = io.TextIOWrapper(raw, encoding=encoding, newline="\n", write_through=False)
    try:
        yield text
        text.flush()
    finally:
        text.detach()


def read_npz(path: str | os.PathLike, what: str) -> dict:
    """Every array of an ``.npz`` file (as ``numpy.savez`` writes), read now, without pickles,
    after the checks numpy does not make: the members' CRCs match (numpy reads a member's exact
    size and never reaches its CRC, so a flipped data byte would go unseen), every member is a
    ``.npy`` array, and no header claims more data than its member holds (numpy allocates what a
    header claims before reading).

    Raises:
        InputFileError: naming the file (and the member), when it is not a readable ``.npz``: not
            a zip, cut short, a damaged member or header, pickled objects; ``what`` says what the
            file should have been.
        OSError: the file cannot be opened (missing, a directory, permissions).
    """
    import math

    import numpy as np

    path = os.fspath(path)
    with open(path, "rb") as handle:  # OSError for a missing file, a directory
        if not zipfile.is_zipfile(handle):
            raise InputFileError(
                path, None, f"not an .npz file (a {what} is a zip archive of arrays, as numpy.savez writes)"
            )
    member = None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise InputFileError(path, None, f"not a readable {what}: member {bad!r} is damaged (CRC mismatch)")
            for info in archive.infolist():
                member = info.filename
                with archive.open(info) as stream:
                    version = np.lib.format.read_magic(stream)
                    header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = header(stream)
                    claimed = math.prod(shape) * dtype.itemsize
                    if claimed > info.file_size:
                        claims = f"claims {claimed} bytes of data in {info.file_size}"
                        raise InputFileError(path, None, f"not a readable {what}: member {member!r} {claims}")
            member = None
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
    except InputFileError:
        raise
    except Exception as exc:  # a damaged archive or .npy header: numpy raises many types
        where = "" if member is None else f" (member {member!r})"
        raise InputFileError(path, None, f"not a readable {what}{where}: {type(exc).__name__}: {exc}") from None


def open_text(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict") -> IO[str]:
    """Open a text file for reading; gzip is recognised by content (its magic bytes), ``-`` is stdin.

    Lines end at ``"\n"`` only (a lone ``"\r"`` stays in its line). Decoding errors (with
    ``errors="strict"``) name the file and the line (:class:`~speechdecode.errors.InputFileError`),
    and a gzip member whose CRC or length does not match, or that is cut short, is an error too.
    """
    path = os.fspath(path)
    if path == STDIO:
        raw = sys.stdin.buffer
        name = "<stdin>"
    else:
        raw = open(path, "rb")
        name = path
    try:
        compressed = raw.peek(2)[:2] == b"\x1f\x8b" if hasattr(raw, "peek") else False
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        return _CheckedText(stream, name, encoding, errors, owned=raw if path != STDIO else None)
    except BaseException:
        if path != STDIO:
            raw.close()
        raise


class _CheckedText(io.TextIOBase):
    """Lines of a (possibly gzip) byte stream, decoded; errors name the file and line."""

    def __init__(self, stream, name: str, encoding: str, errors: str, owned=None):
        self._stream = stream
        self._owned = owned
        self.name = name
        self._encoding = encoding
        self._errors = errors
        self._line = 0

    def readable(self) -> bool:
        return True

    def readline(self, size: int = -1) -> str:
        try:
            data = self._stream.readline(MAX_LINE_BYTES + 1)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputFileError(self.name, self._line + 1, f"corrupt or truncated gzip data ({exc})") from None
        if not data:
            return ""
        self._line += 1
        if len(data) > MAX_LINE_BYTES:  # /dev/zero, a binary file: stop before memory runs out
            raise InputFileError(
                self.name, self._line, f"a line longer than {MAX_LINE_BYTES >> 20} MiB: not a text file"
            )
        try:
            return data.decode(self._encoding, self._errors)
        except UnicodeDecodeError as exc:
            raise InputFileError(
                self.name,
                self._line,
                f"invalid {self._encoding.upper()} (byte {data[exc.start]:#04x} at column {exc.start + 1})",
            ) from None

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __iter__(self):
        return self

    def read(self, size: int | None = -1) -> str:
        return "".join(iter(self.readline, ""))

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                if self._stream is not self._owned:
                    self._stream.close()
            if self._owned is not None:
                self._owned.close()
        super().close()
