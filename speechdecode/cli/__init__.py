"""The ``speechdecode`` command line (also ``python -m speechdecode``).

One module per command group (info, decode, demo, bench, lm); each registers its commands
here. Every command takes ``--json``. Errors print one line on stderr and exit with 2;
long work shows a progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable

from speechdecode.errors import SpeechdecodeError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def emit(args, payload: dict, text: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else ``text``."""
    if args.json:
        json.dump(payload, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


class Commands:
    """Adds commands (each with ``--json``) to a subcommand table; groups nest."""

    def __init__(self, table):
        self._table = table

    def add(self, name: str, help_text: str, handler: Callable | None = None) -> argparse.ArgumentParser:
        sub = self._table.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, help_text: str) -> Commands:
        sub = self._table.add_parser(name, help=help_text, description=help_text)
        return Commands(sub.add_subparsers(dest=f"{name}_command", required=True, parser_class=Parser))


def build_parser() -> argparse.ArgumentParser:
    from speechdecode.cli import bench, decode, demo, info, lm

    parser = Parser(prog="speechdecode", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=_version())
    commands = Commands(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    for module in (info, lm, decode, demo, bench):
        module.register(commands)
    from speechdecode.cli import graph, transcribe

    graph.register(commands)
    transcribe.register(commands)
    return parser


def _version() -> str:
    from speechdecode import __version__

    return f"speechdecode {__version__}"


# Output arguments of the commands that write files: an interrupt that arrives once all of them
# are completely written (speechdecode._io.committed) is reported as success, not interruption.
OUTPUTS = {
    "lm count": ("out",),
    "lm build": ("arpa",),
    "lm prune": ("out",),
    "graph compile": ("out",),
    "graph import": ("out",),
    "graph draw": ("output",),
}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, as an exception, so that every ``finally`` (temporaries) runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The signals received while main() runs: an interrupt can surface as another exception (an
# ImportError raised from the interrupted import, or a bare one when a C extension's module init
# is interrupted while numpy imports), so the status follows what arrived, not the exception.
_RECEIVED: list[int] = []


def _raise_interrupted(signum, frame):
    _RECEIVED.append(signum)
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0, 2 for any error, 128 + signal when interrupted)."""
    _RECEIVED.clear()
    handlers = _catch_signals()  # first: an interrupt while the parser imports is handled too
    args, name = argparse.Namespace(), ""
    try:
        args = build_parser().parse_args(argv)
        name = " ".join(v for k, v in sorted(vars(args).items()) if k.endswith("command") and isinstance(v, str))
        args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_pipe()
    except Interrupted as exc:
        return _interrupted(args, name, exc.signum)
    except KeyboardInterrupt:
        return _interrupted(args, name, signal.SIGINT)
    except Exception as exc:
        if _RECEIVED:  # an interrupt that surfaced as another error (see _RECEIVED)
            return _interrupted(args, name, _RECEIVED[-1])
        if os.environ.get("SPEECHDECODE_TRACEBACK"):
            raise
        return _error(args, name, exc)
    finally:
        for signum, handler in handlers.items():
            # As the program (argv None) the work is over: a late signal must not turn the exit
            # status into "interrupted"; called from Python, the caller's handlers come back.
            signal.signal(signum, signal.SIG_IGN if argv is None else handler)
    return 0


def _catch_signals() -> dict:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread; returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _raise_interrupted) for signum in (signal.SIGINT, signal.SIGTERM)}


def _error(args, name: str, exc: BaseException) -> int:
    """One line on stderr (and a JSON object on stdout under ``--json``); exit status 2."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and os.fsdecode(exc.filename) not in message:
        message = f"{os.fsdecode(exc.filename)}: {exc.strerror or message}"
    known = isinstance(exc, (SpeechdecodeError, OSError))
    text = message if known else f"{message} ({type(exc).__name__})"
    try:
        if getattr(args, "json", False):
            error = {"command": name, "type": type(exc).__name__, "message": message}
            for field in ("path", "line", "argument", "expected", "actual"):
                value = getattr(exc, field, None)
                if value is not None:
                    error[field] = value if isinstance(value, (int, float, str)) else str(value)
            if isinstance(exc, OSError) and exc.filename is not None:
                error["path"] = os.fsdecode(exc.filename)
            json.dump({"error": error}, sys.stdout)
            sys.stdout.write("\n")
            sys.stdout.flush()
        sys.stderr.write(f"{_prog(name)}: error: {text}\n")
    except BrokenPipeError:
        return _closed_pipe(EXIT_USAGE)
    return EXIT_USAGE


def _interrupted(args, name: str, signum: int) -> int:
    from speechdecode import _io

    outputs = [getattr(args, dest) for dest in OUTPUTS.get(name, ()) if getattr(args, dest, None) is not None]
    if outputs and all(_io.committed(path) for path in outputs):
        sys.stderr.write(f"{_prog(name)}: {', '.join(outputs)} completely written before the interrupt\n")
        return 0
    kept = f" ({', '.join(outputs)} left as it was)" if outputs else ""
    sys.stderr.write(f"{_prog(name)}: interrupted{kept}\n")
    return 128 + signum


def _prog(name: str) -> str:
    return f"speechdecode {name}" if name else "speechdecode"


def _closed_pipe(status: int = 128 + signal.SIGPIPE) -> int:
    """The reader of stdout went away (``... | head``): stop quietly, as a killed-by-SIGPIPE tool would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return status
