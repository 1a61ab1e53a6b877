"""``speechdecode bench``: run benchmark suites against their anchors."""

from __future__ import annotations

from speechdecode.cli import emit


def register(commands) -> None:
    bench = commands.add(
        "bench", "run a benchmark suite against its anchors ('list' shows suites, 'all' runs all)", run
    )
    bench.add_argument("suite", help="suite name, 'all' or 'list'")
    bench.add_argument("--out", default="bench/results", help="folder for JSON, Markdown and PNG results")
    bench.add_argument("--quick", action="store_true", help="small shapes, for smoke runs")


def run(args) -> None:
    from speechdecode import bench

    if args.suite == "list":
        emit(args, {"suites": sorted(bench.SUITES)}, "\n".join(sorted(bench.SUITES)))
        return
    names = sorted(bench.SUITES) if args.suite == "all" else [args.suite]
    results = {name: bench.run(name, out_dir=args.out, quick=args.quick) for name in names}
    text = []
    for name in names:
        with open(f"{args.out}/{name}.md", encoding="utf-8") as handle:
            text.append(handle.read())
        text.append(f"(written: {args.out}/{name}.json, .md, .png)\n")
    emit(args, results, "\n".join(text))
