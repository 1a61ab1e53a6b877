"""``speechdecode decode``: decode CTC log-probs from an .npz file.

Three decoders: ``greedy`` (argmax and collapse), ``prefix`` (CTC prefix beam search, with an
n-gram LM, a lexicon and hotwords when given) and ``wfst`` (beam search over a compiled TLG
directory or an OpenFst graph). ``--decoder auto`` (the default) picks ``wfst`` with ``--graph``,
``prefix`` when any search option is given (``--lm``, ``--beam``, ``--nbest``, ...), else
``greedy``; an option the chosen decoder does not take is an error, never dropped.
"""

from __future__ import annotations

import argparse

from speechdecode.cli import emit
from speechdecode.errors import InputFileError, InvalidArgumentError


def register(commands) -> None:
    decode = commands.add(
        "decode", "decode CTC log-probs from an .npz file (arrays log_probs [B,T,V], lengths [B])", run
    )
    decode.add_argument(
        "--log-probs", required=True, metavar="FILE.npz", help="posteriors; with --ray a folder or glob of shards"
    )
    decode.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="decode many shards on a Ray cluster (pip install 'speechdecode[ray]'): at ADDRESS, or a local one on "
        "loopback; one OUT/<shard>.jsonl per shard, shards already done skipped (prefix or wfst decoder)",
    )
    decode.add_argument("--out", metavar="DIR", help="--ray: folder of the JSON Lines outputs")
    decode.add_argument("--workers", type=int, help="--ray: decoder actors (default: the cluster's CPU slots)")
    decode.add_argument(
        "--frame-shift", type=float, default=0.02, help="--ray: seconds per frame, for the audio hours (0.02)"
    )
    decode.add_argument(
        "--skip-unreadable", action="store_true", help="--ray: leave out shards that cannot be read (listed)"
    )
    decode.add_argument("--decoder", choices=["auto", "greedy", "prefix", "wfst"], default="auto")
    decode.add_argument("--tokens", metavar="tokens.txt", help="token table: one per line, or 'symbol id' pairs")
    decode.add_argument(
        "--graph", metavar="DIR|FST",
        help="graph directory (TLG.npz from `graph compile` / `graph import`, or TLG.fst) or an OpenFst TLG file",
    )  # fmt: skip
    decode.add_argument(
        "--lm",
        "--arpa",
        dest="lm",
        metavar="FILE",
        help="prefix: n-gram LM (ARPA, gzip, KenLM binary) fused into the search",
    )
    decode.add_argument(
        "--blank", default=None, help="blank label id, or its symbol in --tokens (default 0; wfst: the graph's)"
    )
    decode.add_argument(
        "--word-boundary",
        default="auto",
        help="word-boundary token or piece prefix (default: '|', ' ' or '▁' if a token)",
    )
    decode.add_argument("--beam", type=float, default=None, help="prefix: prefixes kept (32); wfst: cost beam (16)")
    decode.add_argument("--alpha", type=float, default=None, help="prefix: LM weight (default 0.5)")
    decode.add_argument("--beta", type=float, default=None, help="prefix: word insertion bonus (default 1.0)")
    decode.add_argument("--token-topk", type=int, default=None, help="prefix: tokens extended per frame (16)")
    decode.add_argument("--beam-threshold", type=float, default=None, help="prefix: score margin kept (20)")
    decode.add_argument("--token-min-logp", type=float, default=None, help="prefix: skip tokens below (-10)")
    decode.add_argument(
        "--partial-word-lm", action=argparse.BooleanOptionalAction, default=None,
        help="prefix: score unfinished words by LM look-ahead (default on)",
    )  # fmt: skip
    decode.add_argument(
        "--unk-score-offset",
        type=float,
        default=None,
        help="prefix: penalty of a word outside the LM (default -10; --unk-score-offset=-inf: none)",
    )
    decode.add_argument(
        "--recombine", action=argparse.BooleanOptionalAction, default=None,
        help="prefix: keep the best of prefixes with equal futures (default on)",
    )  # fmt: skip
    decode.add_argument(
        "--viterbi", action=argparse.BooleanOptionalAction, default=None,
        help="prefix: score a prefix by its best alignment (default off)",
    )  # fmt: skip
    decode.add_argument(
        "--lexicon", metavar="FILE", help="prefix: spell only these words ('word t1 t2 ...' lines, several per word)"
    )
    decode.add_argument(
        "--hotword", action="append", default=[], metavar="PHRASE:WEIGHT", help="prefix: boost a phrase (repeatable)"
    )
    decode.add_argument("--max-active", type=int, default=None, help="wfst: most tokens kept per frame (7000)")
    decode.add_argument("--acoustic-scale", type=float, default=None, help="wfst: weight of the log-probs (1.0)")
    decode.add_argument("--nbest", type=int, default=None, help="hypotheses per utterance (prefix, wfst; default 1)")
    decode.add_argument("--num-threads", type=int, default=None, help="threads over utterances (default all cores)")
    decode.add_argument("--backend", choices=["reference", "native", "triton"], default=None)


def _transcript(ids: list[int], symbols, word_boundary: str | None) -> str:
    from speechdecode.decoding.text import words_from_tokens

    if symbols is None:
        return " ".join(str(i) for i in ids)
    return " ".join(words_from_tokens(symbols.decode(ids), word_boundary))


def _boundary(args, symbols, blank: int) -> str | None:
    """--word-boundary resolved against the token table ('none': every token is a word)."""
    from speechdecode.decoding.text import boundary_of

    if args.word_boundary == "none":
        return None
    return boundary_of([symbols.symbol(i) for i in range(len(symbols))], blank, args.word_boundary)


def _blank_id(value: str | None, symbols) -> int:
    if value is None:
        return 0
    if value.lstrip("-").isdigit():
        return int(value)
    if symbols is not None and value in symbols:
        return symbols.id(value)
    raise InvalidArgumentError("--blank", "a label id or a symbol of --tokens", repr(value))


def _hotwords(values: list[str]) -> list[tuple[str, float]]:
    hotwords = []
    for value in values:
        phrase, _, weight = value.rpartition(":")
        try:
            hotwords.append((phrase, float(weight)))
        except ValueError:
            phrase = ""
        if not phrase:
            raise InvalidArgumentError("--hotword", "PHRASE:WEIGHT with a number after the last ':'", repr(value))
    return hotwords


# Options of one decoder: (flag, attribute), given when the attribute is not None / not empty.
PREFIX_ONLY = [
    ("--lm", "lm"), ("--alpha", "alpha"), ("--beta", "beta"), ("--token-topk", "token_topk"),
    ("--beam-threshold", "beam_threshold"), ("--token-min-logp", "token_min_logp"),
    ("--partial-word-lm", "partial_word_lm"), ("--unk-score-offset", "unk_score_offset"),
    ("--recombine", "recombine"), ("--viterbi", "viterbi"), ("--lexicon", "lexicon"), ("--hotword", "hotword"),
]  # fmt: skip
WFST_ONLY = [("--max-active", "max_active"), ("--acoustic-scale", "acoustic_scale")]
SEARCH = [("--beam", "beam"), ("--nbest", "nbest")]


def _given(args, options) -> list[str]:
    return [flag for flag, name in options if getattr(args, name) not in (None, [])]


def _choose(args) -> str:
    """The decoder: --decoder, or auto; an option the decoder does not take is an error."""
    prefix_only, wfst_only, search = _given(args, PREFIX_ONLY), _given(args, WFST_ONLY), _given(args, SEARCH)
    if args.decoder != "auto":
        chosen = args.decoder
    elif args.graph:
        chosen = "wfst"
    elif prefix_only or search:
        chosen = "prefix"
    else:
        chosen = "greedy"
    takes = {"greedy": [], "prefix": prefix_only + search, "wfst": wfst_only + search}[chosen]
    ignored = [flag for flag in prefix_only + wfst_only + search if flag not in takes]
    if ignored:
        which = "greedy decoding" if chosen == "greedy" else f"the {chosen} decoder"
        expected = f"options that {which} takes (--decoder {args.decoder} chose {chosen})"
        raise InvalidArgumentError("--decoder", expected, ", ".join(ignored))
    if chosen == "wfst" and not args.graph:
        raise InvalidArgumentError("--graph", "a graph directory for --decoder wfst", "none")
    if chosen == "prefix" and args.tokens is None:
        why = (
            "--decoder prefix"
            if args.decoder == "prefix"
            else "the prefix search (" + ", ".join(prefix_only + search) + ")"
        )
        raise InvalidArgumentError("--tokens", f"a token table for {why}", "none")
    return chosen


def _greedy(args, posteriors, symbols) -> list[dict]:
    from speechdecode.decoding import ctc_greedy

    blank = _blank_id(args.blank, symbols)
    boundary = None if symbols is None else _boundary(args, symbols, blank)
    hyps = ctc_greedy(posteriors.log_probs, posteriors.lengths, blank, backend=args.backend)
    return [
        {
            "text": _transcript(hyp.tokens.tolist(), symbols, boundary),
            "tokens": hyp.tokens.tolist(),
            "frames": hyp.token_frames.tolist(),
        }
        for hyp in hyps
    ]


def _prefix(args, symbols):
    """The prefix search the options describe (built once: it loads the LM)."""
    from speechdecode.decoding import CtcPrefixBeamSearch

    options = {
        name: getattr(args, name)
        for name in ("alpha", "beta", "token_topk", "beam_threshold", "token_min_logp", "partial_word_lm",
                     "unk_score_offset", "recombine", "viterbi", "lexicon", "nbest")
        if getattr(args, name) is not None
    }  # fmt: skip
    if args.beam is not None:
        if args.beam != int(args.beam):
            raise InvalidArgumentError("--beam", "an integer number of prefixes for the prefix search", args.beam)
        options["beam"] = int(args.beam)
    blank = _blank_id(args.blank, symbols)
    return CtcPrefixBeamSearch(
        [symbols.symbol(i) for i in range(len(symbols))],
        blank=blank,
        word_boundary=_boundary(args, symbols, blank),
        lm=args.lm,
        hotwords=_hotwords(args.hotword),
        num_threads=args.num_threads,
        backend=args.backend,
        **options,
    )


def _wfst(args):
    """The WFST decoder the options describe (built once: it reads the graph)."""
    import os

    from speechdecode.decoding import WfstDecoder
    from speechdecode.graphs import SymbolTable

    folder = args.graph if os.path.isdir(args.graph) else os.path.dirname(args.graph)
    tokens_path = os.path.join(folder, "tokens.txt")
    tokens = SymbolTable.read(tokens_path) if os.path.exists(tokens_path) else None
    boundary = args.word_boundary if args.word_boundary != "auto" else "|"
    boundary = boundary if tokens is not None and boundary in tokens else None
    return WfstDecoder(
        args.graph,
        beam=16.0 if args.beam is None else args.beam,
        max_active=7000 if args.max_active is None else args.max_active,
        acoustic_scale=1.0 if args.acoustic_scale is None else args.acoustic_scale,
        nbest=1 if args.nbest is None else args.nbest,
        num_threads=args.num_threads,
        word_boundary=boundary,
        blank=None if args.blank is None else (int(args.blank) if args.blank.isdigit() else args.blank),
        backend=args.backend,
    )


def make_decoder(args):
    """The prefix or WFST decoder of the parsed options (what ``decode --ray`` workers build)."""
    from speechdecode.graphs.symbols import SymbolTable

    symbols = SymbolTable.read(args.tokens) if args.tokens else None
    return _prefix(args, symbols) if _choose(args) == "prefix" else _wfst(args)


def run_ray(args) -> None:
    """``decode --ray``: :func:`speechdecode.decoding.distributed.decode_shards`."""
    import functools

    from speechdecode.decoding.distributed import decode_shards

    if not args.out:
        raise InvalidArgumentError("--out", "an output folder with --ray", "none")
    if _choose(args) == "greedy":
        raise InvalidArgumentError("--decoder", "prefix or wfst with --ray", "greedy")
    report = decode_shards(
        args.log_probs,
        args.out,
        functools.partial(make_decoder, args),
        address=args.ray or None,
        workers=args.workers,
        frame_shift=args.frame_shift,
        progress=True,
        skip_unreadable=args.skip_unreadable,
    )
    emit(
        args,
        {"out": args.out, **report.__dict__},
        f"{args.out}: {report.shards} shards decoded ({report.skipped} already done), {report.utterances} "
        f"utterances, {report.audio_hours:.2f} h of audio in {report.seconds:.1f} s"
        + "".join(f"\nskipped: {why}" for why in report.unreadable),
    )


def run(args) -> None:
    from speechdecode.decoding.distributed import result_row
    from speechdecode.decoding.posteriors import load_posteriors
    from speechdecode.graphs.symbols import SymbolTable

    if args.ray is not None:
        run_ray(args)
        return
    given = [
        f
        for f, v in (("--out", args.out), ("--workers", args.workers), ("--skip-unreadable", args.skip_unreadable))
        if v
    ]
    if given:
        raise InvalidArgumentError(given[0], "--ray with it", "no --ray")
    decoder = _choose(args)
    posteriors = load_posteriors(args.log_probs)
    symbols = SymbolTable.read(args.tokens) if args.tokens else None
    vocab = posteriors.log_probs.shape[2]
    if symbols is not None and len(symbols) != vocab:
        raise InputFileError(args.tokens, None, f"{len(symbols)} tokens, but {args.log_probs} has V = {vocab} labels")
    if decoder == "greedy":
        results = _greedy(args, posteriors, symbols)
        results = [{"utt_id": utt, **r} for utt, r in zip(posteriors.utt_ids, results, strict=True)]
    else:
        search = _prefix(args, symbols) if decoder == "prefix" else _wfst(args)
        nbests = search(posteriors.log_probs, posteriors.lengths)
        results = [result_row(utt, nbest) for utt, nbest in zip(posteriors.utt_ids, nbests, strict=True)]
    emit(args, {"decoder": decoder, "results": results}, "\n".join(f"{r['utt_id']}\t{r['text']}" for r in results))
