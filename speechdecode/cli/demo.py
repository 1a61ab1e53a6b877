"""``speechdecode demo``: every stage on a generated data set, one table."""

from __future__ import annotations

from speechdecode.cli import emit


def register(commands) -> None:
    demo = commands.add("demo", "run every stage on a generated data set and print one table", run)
    demo.add_argument("--out", default="demo-output", help="folder for the generated files (default demo-output)")
    demo.add_argument("--sentences", type=int, default=200, help="held-out sentences to decode (default 200)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--audio-utterances",
        type=int,
        default=20,
        help="held-out verses synthesized and transcribed (default 20; 0: none)",
    )
    demo.add_argument(
        "--audio-lm-verses", type=int, default=None, help="training verses of the audio stage's 3-gram (default all)"
    )


def run(args) -> None:
    from speechdecode.demo import format_report, run_demo

    report = run_demo(
        args.out,
        sentences=args.sentences,
        seed=args.seed,
        audio_utterances=args.audio_utterances,
        audio_lm_verses=args.audio_lm_verses,
    )
    emit(args, report, format_report(report))
