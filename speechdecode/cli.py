"""The ``speechdecode`` command line (also ``python -m speechdecode``).

Groups: ``decode``, ``bench``, ``demo``, ``info`` (``lm`` and ``graph`` arrive with their
issues). Every command takes ``--json``. Errors print one line on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from speechdecode.errors import InputFileError, InvalidArgumentError, SpeechdecodeError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _emit(args, payload: dict, text: str) -> None:
    if args.json:
        json.dump(payload, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _cmd_info(args) -> None:
    from speechdecode import _backend

    info = _backend.info()
    native = info["native"]
    lines = [
        f"speechdecode {info['speechdecode']} (Python {info['python']}, {info['platform']})",
        f"native:  {'yes, ' + native['compiler'] if native['available'] else 'no (' + native['error'] + ')'}",
        f"triton:  {info['triton']['version'] or 'not installed'}"
        + (" (interpreter)" if info["triton"]["interpret"] else ""),
        f"cuda:    {info['cuda']['device'] or 'not available'}",
        "backends for CPU inputs: " + ", ".join(_backend.available("cpu")),
        "versions: " + ", ".join(f"{k} {v or '-'}" for k, v in info["versions"].items()),
    ]
    _emit(args, info, "\n".join(lines))


def _transcript(ids: list[int], symbols, word_boundary: str | None) -> str:
    from speechdecode.decoding.text import words_from_tokens

    if symbols is None:
        return " ".join(str(i) for i in ids)
    return " ".join(words_from_tokens(symbols.decode(ids), word_boundary if word_boundary in symbols else None))


def _blank_id(value: str, symbols) -> int:
    if value.lstrip("-").isdigit():
        return int(value)
    if symbols is not None and value in symbols:
        return symbols.id(value)
    raise InvalidArgumentError("--blank", "a label id or a symbol of --tokens", repr(value))


def _cmd_decode(args) -> None:
    from speechdecode.decoding import ctc_greedy
    from speechdecode.decoding.posteriors import load_posteriors
    from speechdecode.graphs.symbols import SymbolTable

    posteriors = load_posteriors(args.log_probs)
    symbols = SymbolTable.read(args.tokens) if args.tokens else None
    vocab = posteriors.log_probs.shape[2]
    if symbols is not None and len(symbols) != vocab:
        raise InputFileError(args.tokens, None, f"{len(symbols)} tokens, but {args.log_probs} has V = {vocab} labels")
    blank = _blank_id(args.blank, symbols)
    hyps = ctc_greedy(posteriors.log_probs, posteriors.lengths, blank, backend=args.backend)
    results = []
    for utt, hyp in zip(posteriors.utt_ids, hyps, strict=True):
        results.append(
            {
                "utt_id": utt,
                "text": _transcript(hyp.tokens.tolist(), symbols, args.word_boundary),
                "tokens": hyp.tokens.tolist(),
                "frames": hyp.frames.tolist(),
            }
        )
    _emit(
        args, {"decoder": args.decoder, "results": results}, "\n".join(f"{r['utt_id']}\t{r['text']}" for r in results)
    )


def _cmd_demo(args) -> None:
    from speechdecode.demo import format_report, run_demo

    report = run_demo(args.out, sentences=args.sentences, seed=args.seed)
    _emit(args, report, format_report(report))


def _cmd_bench(args) -> None:
    from speechdecode import bench

    if args.suite == "list":
        _emit(args, {"suites": sorted(bench.SUITES)}, "\n".join(sorted(bench.SUITES)))
        return
    names = sorted(bench.SUITES) if args.suite == "all" else [args.suite]
    results = {name: bench.run(name, out_dir=args.out, quick=args.quick) for name in names}
    text = []
    for name in names:
        with open(f"{args.out}/{name}.md", encoding="utf-8") as handle:
            text.append(handle.read())
        text.append(f"(written: {args.out}/{name}.json, .md, .png)\n")
    _emit(args, results, "\n".join(text))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="speechdecode", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    groups = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str, handler) -> argparse.ArgumentParser:
        sub = groups.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
        sub.set_defaults(handler=handler)
        return sub

    command("info", "show versions and which backends (native, triton, cuda) are available", _cmd_info)

    decode = command(
        "decode", "decode CTC log-probs from an .npz file (arrays log_probs [B,T,V], lengths [B])", _cmd_decode
    )
    decode.add_argument("--log-probs", required=True, metavar="FILE.npz")
    decode.add_argument("--tokens", metavar="tokens.txt", help="token table: one per line, or 'symbol id' pairs")
    decode.add_argument("--decoder", choices=["greedy"], default="greedy")
    decode.add_argument("--blank", default="0", help="blank label id, or its symbol in --tokens (default 0)")
    decode.add_argument("--word-boundary", default="|", help="token that separates words (default '|')")
    decode.add_argument("--backend", choices=["reference", "native", "triton"], default=None)

    demo = command("demo", "run every stage on a generated data set and print one table", _cmd_demo)
    demo.add_argument("--out", default="demo-output", help="folder for the generated files (default demo-output)")
    demo.add_argument("--sentences", type=int, default=200, help="held-out sentences to decode (default 200)")
    demo.add_argument("--seed", type=int, default=0)

    bench = command(
        "bench", "run a benchmark suite against its anchors ('list' shows suites, 'all' runs all)", _cmd_bench
    )
    bench.add_argument("suite", help="suite name, 'all' or 'list'")
    bench.add_argument("--out", default="bench/results", help="folder for JSON, Markdown and PNG results")
    bench.add_argument("--quick", action="store_true", help="small shapes, for smoke runs")
    return parser


def _version() -> str:
    from speechdecode import __version__

    return f"speechdecode {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (SpeechdecodeError, OSError) as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"speechdecode {args.command}: error: {message}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("speechdecode: interrupted\n")
        return 130
    return 0
