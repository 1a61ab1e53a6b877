"""Decoders pickled by reference to the files they were built from, checked by content hash.

A decoder holding a large LM or graph pickles as its options plus, per file, a :class:`FileRef`:
the path and the SHA-256 of the file's bytes. Unpickling (e.g. in a spawn process pool) loads the
file again and refuses it when its content changed; pickling refuses a file that changed since
the decoder was built. Hashes are cached per (path, size, mtime), so a pool's workers hash a file
once each.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

from speechdecode.errors import InputFileError

_DIGESTS: dict[tuple[str, int, int], str] = {}


def _stat(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def digest(path: str) -> str:
    """SHA-256 of the file's bytes (cached per path, size and modification time)."""
    key = (path, *_stat(path))
    if key not in _DIGESTS:
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                sha.update(block)
        _DIGESTS[key] = sha.hexdigest()
    return _DIGESTS[key]


class FileRef(NamedTuple):
    """A file a decoder was built from: its absolute path and content hash."""

    path: str
    sha256: str

    def check(self) -> str:
        """The path, after checking that the file still holds the same bytes."""
        if not os.path.isfile(self.path) or digest(self.path) != self.sha256:
            raise InputFileError(self.path, None, "changed (or gone) since the decoder was pickled; not loaded again")
        return self.path


class Watched:
    """A file seen when a decoder was built (size and modification time), hashed when pickled."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        self._seen = _stat(self.path)

    def ref(self) -> FileRef:
        """A :class:`FileRef` of the file; an InputFileError if it changed since it was seen."""
        if not os.path.isfile(self.path) or _stat(self.path) != self._seen:
            raise InputFileError(self.path, None, "changed since the decoder was built; cannot pickle the decoder")
        return FileRef(self.path, digest(self.path))
