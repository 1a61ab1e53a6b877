"""``speechdecode decode``: decode CTC log-probs from an .npz file.

Three decoders: ``greedy`` (argmax and collapse), ``prefix`` (CTC prefix beam search, with an
ARPA LM and hotwords when given) and ``wfst`` (beam search over a compiled TLG directory).
``--decoder auto`` (the default) picks ``wfst`` with ``--graph``, ``prefix`` with ``--arpa`` or
``--hotword``, else ``greedy``.
"""

from __future__ import annotations

from speechdecode.cli import emit
from speechdecode.errors import InputFileError, InvalidArgumentError


def register(commands) -> None:
    decode = commands.add(
        "decode", "decode CTC log-probs from an .npz file (arrays log_probs [B,T,V], lengths [B])", run
    )
    decode.add_argument("--log-probs", required=True, metavar="FILE.npz")
    decode.add_argument("--decoder", choices=["auto", "greedy", "prefix", "wfst"], default="auto")
    decode.add_argument("--tokens", metavar="tokens.txt", help="token table: one per line, or 'symbol id' pairs")
    decode.add_argument("--graph", metavar="DIR", help="graph directory from `graph compile` (TLG.npz, words.txt)")
    decode.add_argument("--arpa", metavar="lm.arpa", help="n-gram LM fused into the prefix beam search")
    decode.add_argument("--blank", default="0", help="blank label id, or its symbol in --tokens (default 0)")
    decode.add_argument("--word-boundary", default="|", help="token that separates words (default '|')")
    decode.add_argument("--beam", type=float, default=None, help="prefix: prefixes kept (16); wfst: cost beam (16)")
    decode.add_argument("--alpha", type=float, default=0.5, help="prefix: LM weight (default 0.5)")
    decode.add_argument("--beta", type=float, default=1.0, help="prefix: word insertion bonus (default 1.0)")
    decode.add_argument(
        "--hotword", action="append", default=[], metavar="PHRASE:WEIGHT", help="prefix: boost a phrase (repeatable)"
    )
    decode.add_argument("--max-active", type=int, default=7000, help="wfst: most tokens kept per frame")
    decode.add_argument("--acoustic-scale", type=float, default=1.0, help="wfst: weight of the log-probs")
    decode.add_argument("--nbest", type=int, default=1, help="hypotheses per utterance (prefix, wfst)")
    decode.add_argument("--num-threads", type=int, default=None, help="threads over utterances (default all cores)")
    decode.add_argument("--backend", choices=["reference", "native", "triton"], default=None)


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


def _choose(args) -> str:
    if args.decoder != "auto":
        chosen = args.decoder
    elif args.graph:
        chosen = "wfst"
    elif args.arpa or args.hotword:
        chosen = "prefix"
    else:
        chosen = "greedy"
    if chosen == "wfst" and not args.graph:
        raise InvalidArgumentError("--graph", "a graph directory for --decoder wfst", "none")
    if chosen == "prefix" and args.tokens is None:
        raise InvalidArgumentError("--tokens", "a token table for --decoder prefix", "none")
    if chosen != "prefix" and (args.arpa or args.hotword):
        raise InvalidArgumentError("--decoder", "prefix with --arpa / --hotword", chosen)
    return chosen


def _greedy(args, posteriors, symbols) -> list[dict]:
    from speechdecode.decoding import ctc_greedy

    blank = _blank_id(args.blank, symbols)
    hyps = ctc_greedy(posteriors.log_probs, posteriors.lengths, blank, backend=args.backend)
    return [
        {
            "text": _transcript(hyp.tokens.tolist(), symbols, args.word_boundary),
            "tokens": hyp.tokens.tolist(),
            "frames": hyp.frames.tolist(),
        }
        for hyp in hyps
    ]


def _nbest(nbest) -> dict:
    best = nbest[0]
    return {
        "text": best.text,
        "tokens": list(best.tokens),
        "frames": list(best.token_frames),
        "score": best.score,
        "am_score": best.am_score,
        "lm_score": best.lm_score,
        "word_frames": [list(f) for f in best.word_frames],
        "nbest": [{"text": h.text, "score": h.score} for h in nbest],
    }


def _prefix(args, posteriors, symbols) -> list[dict]:
    from speechdecode.decoding import CtcPrefixBeamSearch
    from speechdecode.lm import NgramModel

    boundary = args.word_boundary if any(s.startswith(args.word_boundary) for s in symbols) else None
    search = CtcPrefixBeamSearch(
        [symbols.symbol(i) for i in range(len(symbols))],
        blank=_blank_id(args.blank, symbols),
        word_boundary=boundary,
        lm=NgramModel.from_arpa(args.arpa) if args.arpa else None,
        alpha=args.alpha,
        beta=args.beta,
        beam=16 if args.beam is None else int(args.beam),
        hotwords=_hotwords(args.hotword),
        nbest=args.nbest,
        num_threads=args.num_threads,
        backend=args.backend,
    )
    return [_nbest(nbest) for nbest in search(posteriors.log_probs, posteriors.lengths)]


def _wfst(args, posteriors) -> list[dict]:
    import os

    from speechdecode.decoding import WfstDecoder
    from speechdecode.graphs import SymbolTable

    tokens_path = os.path.join(args.graph, "tokens.txt")
    tokens = SymbolTable.read(tokens_path) if os.path.exists(tokens_path) else None
    boundary = args.word_boundary if tokens is not None and args.word_boundary in tokens else None
    decoder = WfstDecoder(
        args.graph,
        beam=16.0 if args.beam is None else args.beam,
        max_active=args.max_active,
        acoustic_scale=args.acoustic_scale,
        nbest=args.nbest,
        num_threads=args.num_threads,
        word_boundary=boundary,
        backend=args.backend,
    )
    return [_nbest(nbest) for nbest in decoder(posteriors.log_probs, posteriors.lengths)]


def run(args) -> None:
    from speechdecode.decoding.posteriors import load_posteriors
    from speechdecode.graphs.symbols import SymbolTable

    decoder = _choose(args)
    posteriors = load_posteriors(args.log_probs)
    symbols = SymbolTable.read(args.tokens) if args.tokens else None
    vocab = posteriors.log_probs.shape[2]
    if symbols is not None and len(symbols) != vocab:
        raise InputFileError(args.tokens, None, f"{len(symbols)} tokens, but {args.log_probs} has V = {vocab} labels")
    if decoder == "greedy":
        results = _greedy(args, posteriors, symbols)
    elif decoder == "prefix":
        results = _prefix(args, posteriors, symbols)
    else:
        results = _wfst(args, posteriors)
    results = [{"utt_id": utt, **r} for utt, r in zip(posteriors.utt_ids, results, strict=True)]
    emit(args, {"decoder": decoder, "results": results}, "\n".join(f"{r['utt_id']}\t{r['text']}" for r in results))
