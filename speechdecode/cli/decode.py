"""``speechdecode decode``: decode CTC log-probs from an .npz file."""

from __future__ import annotations

from speechdecode.cli import emit
from speechdecode.errors import InputFileError, InvalidArgumentError


def register(commands) -> None:
    decode = commands.add(
        "decode", "decode CTC log-probs from an .npz file (arrays log_probs [B,T,V], lengths [B])", run
    )
    decode.add_argument("--log-probs", required=True, metavar="FILE.npz")
    decode.add_argument("--tokens", metavar="tokens.txt", help="token table: one per line, or 'symbol id' pairs")
    decode.add_argument("--decoder", choices=["greedy"], default="greedy")
    decode.add_argument("--blank", default="0", help="blank label id, or its symbol in --tokens (default 0)")
    decode.add_argument("--word-boundary", default="|", help="token that separates words (default '|')")
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


def run(args) -> None:
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
    emit(args, {"decoder": args.decoder, "results": results}, "\n".join(f"{r['utt_id']}\t{r['text']}" for r in results))
