"""Exception types raised by speechdecode.

Every error says what was wrong precisely enough to fix it without a debugger:

* a bad input file names the file and the line (:class:`InputFileError`);
* a bad argument or tensor names the argument, what was expected and what was given
  (:class:`InvalidArgumentError`, :class:`TensorError`);
* a missing optional dependency or backend says what to install (:class:`BackendUnavailableError`).

All of them derive from :class:`SpeechdecodeError` and from the matching built-in
(``ValueError`` or ``RuntimeError``), so ``except ValueError`` keeps working for callers
that do not know this module.
"""

from __future__ import annotations

import os

__all__ = [
    "BackendUnavailableError",
    "InputFileError",
    "InvalidArgumentError",
    "SpeechdecodeError",
    "TensorError",
]


class SpeechdecodeError(Exception):
    """Base class of every error this package raises on purpose."""


class InputFileError(SpeechdecodeError, ValueError):
    """A file could not be used; the message reads ``path:line: what is wrong``."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        self.path = os.fspath(path)
        self.line = line
        self.detail = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # picklable, so it crosses process boundaries (Ray tasks) as itself
        return type(self), (self.path, self.line, self.detail)


class InvalidArgumentError(SpeechdecodeError, ValueError):
    """An argument has a bad value; the message names it, the expectation and the value."""

    def __init__(self, argument: str, expected: str, actual: object):
        self.argument = argument
        self.expected = expected
        self.actual = actual
        super().__init__(f"{argument}: expected {expected}, got {actual}")

    def __reduce__(self):
        return type(self), (self.argument, self.expected, self.actual)


class TensorError(InvalidArgumentError):
    """An array/tensor argument has the wrong shape, dtype, device or contents."""


class BackendUnavailableError(SpeechdecodeError, RuntimeError):
    """A requested backend or optional dependency is not available here."""


class ArpaFormatError(InputFileError):
    """An ARPA language-model file is malformed; the message reads ``path:line: what is wrong``."""
