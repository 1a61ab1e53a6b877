"""The ``speechdecode`` command line (also ``python -m speechdecode``).

One module per command group (info, decode, demo, bench, lm); each registers its commands
here. Every command takes ``--json``. Errors print one line on stderr and exit with 2;
long work shows a progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
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

    parser = Parser(prog="speechdecode", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    commands = Commands(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    for module in (info, lm, decode, demo, bench):
        module.register(commands)
    from speechdecode.cli import graph

    graph.register(commands)
    return parser


def _version() -> str:
    from speechdecode import __version__

    return f"speechdecode {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = " ".join(v for k, v in sorted(vars(args).items()) if k.endswith("command") and isinstance(v, str))
    try:
        args.handler(args)
    except (SpeechdecodeError, OSError) as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"speechdecode {name}: error: {message}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("speechdecode: interrupted\n")
        return 130
    return 0
