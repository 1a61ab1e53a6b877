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
    if args.suite == "all":
        results = bench.run_all(args.out, quick=args.quick)
    else:
        results = {args.suite: bench.run(args.suite, out_dir=args.out, quick=args.quick)}
    text = []
    for name, result in results.items():
        if "skipped" in result:
            text.append(f"{name}: skipped ({result['skipped']})\n")
            continue
        with open(f"{args.out}/{name}.md", encoding="utf-8") as handle:
            text.append(handle.read())
        text.append(f"(written: {args.out}/{name}.json, .md, .png)\n")
    emit(args, results, "\n".join(text))
