"""``speechdecode lm``: build, inspect, prune and query n-gram language models."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

from speechdecode._args import peak_memory
from speechdecode.cli import emit
from speechdecode.errors import InvalidArgumentError


def register(commands) -> None:
    lm = commands.group("lm", "n-gram language models: count, build, ppl, prune, generate, info, binary, arpa, query")

    def corpus_options(sub, required: bool = True) -> None:
        sub.add_argument(
            "--text", nargs="+", required=required, metavar="FILE", help="text files (plain or .gz); - for stdin"
        )
        sub.add_argument("--order", "-o", type=int, required=True, help="n-gram order N (lmplz: -o)")
        sub.add_argument("--units", choices=["word", "char"], default="word")
        sub.add_argument(
            "--limit-vocab",
            "--limit_vocab_file",
            dest="limit_vocab",
            metavar="FILE",
            help="words outside this list (whitespace-separated) become <unk>",
        )
        sub.add_argument(
            "--memory",
            "-S",
            default="1G",
            help="counting memory budget: 500M, 2G, or a share of physical memory like 80%% (default 1G)",
        )
        sub.add_argument("--tmp-dir", "-T", help="where counting spills sorted runs (default: system temp)")
        sub.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")

    count = lm.add(
        "count", "count n-grams of text files into a shard (.npz) that `lm build --counts` merges", run_count
    )
    corpus_options(count)
    count.add_argument("--out", required=True, metavar="COUNTS.npz")

    build = lm.add("build", "estimate an ARPA model from text files or count shards", run_build)
    corpus_options(build, required=False)
    build.add_argument("--counts", nargs="+", metavar="COUNTS.npz", help="count shards (instead of --text)")
    build.add_argument("--method", default="mkn", help="smoothing method (default mkn; see `lm info --methods`)")
    build.add_argument("--arpa", required=True, metavar="OUT", help="output ARPA file (.gz to compress); - for stdout")
    build.add_argument(
        "--discount_fallback",
        "--discount-fallback",
        dest="discount_fallback",
        nargs="*",
        type=float,
        metavar="D",
        help="kn/mkn: use these discounts (default 0.5 1 1.5, as lmplz) for an order whose discounts cannot be "
        "estimated; without the flag such a corpus is an error, as in lmplz",
    )
    build.add_argument("--prune", nargs="+", type=int, metavar="C", help="lmplz count cutoffs, one per order from 1")
    build.add_argument("--float64", action="store_true", help="mkn: double precision, no KenLM float32 quirks")
    build.add_argument("--interpolate", choices=["yes", "no"], help="kn/absolute/witten-bell: variant")
    build.add_argument("--k", type=float, help="add-k: k; katz: largest discounted count")
    build.add_argument("--heldout", metavar="FILE", help="jelinek-mercer: held-out sentences to fit lambdas on")
    build.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="mkn on a Ray cluster (pip install 'speechdecode[ray]'): at ADDRESS (host:port, ray://.., auto), or a "
        "local one on loopback without an address; each --text file is one counting task; same ARPA, byte for byte",
    )
    build.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="--ray: partitions by last words (default: enough to keep each within --memory; 2 per slot at least)",
    )
    build.add_argument(
        "--skip-unreadable", action="store_true", help="--ray: leave out text shards that cannot be read (warns)"
    )

    ppl = lm.add("ppl", "perplexity of a text under an ARPA model (as KenLM's Python module computes it)", run_ppl)
    ppl.add_argument("--arpa", required=True, help="the model: ARPA (plain or .gz) or KenLM binary")
    ppl.add_argument("--text", required=True, metavar="FILE")

    prune = lm.add("prune", "Stolcke relative-entropy pruning of an ARPA model", run_prune)
    prune.add_argument("--arpa", required=True, help="the ARPA model to prune (plain or .gz)")
    prune.add_argument("--threshold", type=float, required=True, help="relative perplexity increase, e.g. 1e-7")
    prune.add_argument("--out", required=True, metavar="OUT.arpa")

    generate = lm.add("generate", "generate text from an ARPA model", run_generate)
    generate.add_argument("--arpa", required=True, help="the model: ARPA (plain or .gz) or KenLM binary")
    generate.add_argument("--prefix", default="", help="words to continue")
    generate.add_argument("--strategy", choices=["greedy", "beam", "sample"], default="sample")
    generate.add_argument("--num", type=int, default=1)
    generate.add_argument("--max-words", type=int, default=30)
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int)
    generate.add_argument("--beam", type=int, default=8)
    generate.add_argument("--seed", type=int)

    binary = lm.add("binary", "write a KenLM binary from an ARPA file (as KenLM's build_binary)", run_binary)
    binary.add_argument("arpa", metavar="IN.arpa", help="ARPA file (plain or .gz)")
    binary.add_argument("out", metavar="OUT.bin", help="binary to write; - for stdout")
    binary.add_argument(
        "--type", choices=["probing", "trie"], default="probing", help="data structure (default probing)"
    )
    binary.add_argument("-q", type=int, metavar="BITS", help="trie: quantize probabilities to BITS bits (1..25)")
    binary.add_argument("-b", type=int, metavar="BITS", help="trie: backoff bits with -q (default: as -q)")
    binary.add_argument("-a", type=int, metavar="BITS", help="trie: compress pointers with at most BITS offset bits")

    to_arpa = lm.add("arpa", "write a KenLM trie binary back as an ARPA file", run_to_arpa)
    to_arpa.add_argument("binary", metavar="IN.bin", help="KenLM trie binary")
    to_arpa.add_argument("out", metavar="OUT.arpa", help="ARPA file to write (.gz to compress); - for stdout")

    query = lm.add(
        "query", "score sentences from stdin as KenLM's query does (ARPA, .arpa.gz or KenLM binary)", run_query
    )
    query.add_argument("model", metavar="MODEL")
    query.add_argument("-n", dest="no_context", action="store_true", help="no <s> / </s> around each line")

    info = lm.add(
        "info", "order, n-gram counts and memory of a model (ARPA or KenLM binary); or the smoothing methods", run_info
    )
    info.add_argument("--arpa", help="the model: ARPA (plain or .gz) or KenLM binary")
    info.add_argument("--methods", action="store_true", help="list smoothing methods and their options")


def _status(message: str) -> None:
    """A status line on stderr (stdout may be the model itself)."""
    print(message, file=sys.stderr, flush=True)


def _count(args):
    from speechdecode.lm.counting import count_files

    limit = None
    if args.limit_vocab:
        with open(args.limit_vocab, encoding="utf-8") as handle:
            limit = [w for line in handle for w in line.split()]
    texts = list(args.text)
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="speechdecode-stdin-") as spool:
        if "-" in texts:
            # Counting reads files (twice, in parallel); standard input is spooled once.
            path = os.path.join(spool, "stdin.txt")
            with open(path, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
            texts = [path if t == "-" else t for t in texts]
        return count_files(
            texts,
            args.order,
            units=args.units,
            limit_vocab=limit,
            memory=args.memory,
            tmp_dir=args.tmp_dir,
            encoding_errors=args.encoding_errors,
            progress=True,
        )


def _counts_summary(counts) -> dict:
    return {"order": counts.order, "vocabulary": len(counts.vocab), "ngrams": [len(g) for g in counts.ngrams]}


def run_count(args) -> None:
    start = time.perf_counter()
    counts = _count(args)
    counts.save(args.out)
    summary = {**_counts_summary(counts), "out": args.out, "seconds": time.perf_counter() - start}
    emit(args, summary, f"{args.out}: {summary['vocabulary']} words, n-grams per order {summary['ngrams']}")


def _method_options(args) -> dict:
    options = {}
    if args.discount_fallback:
        options["discount_fallback"] = args.discount_fallback
    if args.prune:
        options["prune"] = args.prune
    if args.float64:
        options["float64"] = True
    if args.interpolate:
        options["interpolate"] = args.interpolate == "yes"
    if args.k is not None:
        options["k"] = int(args.k) if args.method == "katz" else args.k
    if args.heldout:
        with open(args.heldout, encoding="utf-8") as handle:
            options["heldout"] = [line for line in handle if line.strip()]
    return options


def run_build(args) -> None:
    from speechdecode._progress import progress
    from speechdecode.lm.counting import parse_size
    from speechdecode.lm.counts import NgramCounts
    from speechdecode.lm.estimate import estimate_arpa, method_options

    if bool(args.text) == bool(args.counts):
        raise InvalidArgumentError("--text/--counts", "exactly one of them", "both" if args.text else "neither")
    known = method_options(args.method)  # an unknown method fails before any counting
    if args.discount_fallback is not None and "discount_fallback" not in known:
        raise InvalidArgumentError("--discount_fallback", f"a method that takes it (not {args.method})", "given")
    if args.ray is not None:
        _build_on_ray(args)
        return
    if args.partitions is not None or args.skip_unreadable:
        flag = "--partitions" if args.partitions is not None else "--skip-unreadable"
        raise InvalidArgumentError(flag, "--ray with it", "no --ray")
    times = {}
    start = time.perf_counter()
    if args.text:
        counts = _count(args)
    else:
        counts = NgramCounts.merge([NgramCounts.load(p) for p in args.counts])
        if counts.order != args.order:
            raise InvalidArgumentError("--order", f"the order of the count shards ({counts.order})", args.order)
    times["count"] = time.perf_counter() - start
    bar = progress(total=1, desc=f"lm build: {args.method}", unit="stage")
    start = time.perf_counter()
    options = _method_options(args)
    if "discount_fallback" in known and args.discount_fallback is None:
        options["discount_fallback"] = None  # lmplz's rule: fallback discounts only when asked for
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = estimate_arpa(args.arpa, counts, args.method, **options)
    times["estimate_and_write"] = time.perf_counter() - start  # streamed together where the method allows
    for w in caught:
        _status(f"warning: {w.message}")
    bar.update()
    bar.close()
    peak = peak_memory()
    budget = parse_size(args.memory) if args.text else None
    if budget is not None and peak > budget:
        # lmplz's -S bounds the whole run; ours bounds counting, estimation holds the counts and an order
        _status(
            f"note: peak memory {peak / 2**20:.0f} MiB, above --memory {args.memory}: the budget bounds "
            "counting; estimation holds the counts and one order of the model"
        )
    summary = {
        **_counts_summary(counts),
        "method": args.method,
        "arpa": args.arpa,
        "written_ngrams": written,
        "warnings": [str(w.message) for w in caught],
        "seconds": times,
        "peak_rss_mb": round(peak / 2**20, 1),
    }
    line = (
        f"{args.arpa}: order {len(written)} {args.method}, n-grams {written} "
        f"(count {times['count']:.2f} s, estimate and write {times['estimate_and_write']:.2f} s)"
    )
    if not args.json:
        _status(line)  # as lmplz: status on stderr (stdout may hold the model)
        return
    emit(args, summary, line)


def _build_on_ray(args) -> None:
    """``lm build --ray``: :func:`speechdecode.lm.distributed.build`."""
    from speechdecode.lm.distributed import build
    from speechdecode.lm.methods.kneser_ney import LMPLZ_FALLBACK

    if args.method != "mkn":
        raise InvalidArgumentError("--method", "mkn with --ray (the method that distributes)", args.method)
    if not args.text or "-" in args.text:
        raise InvalidArgumentError("--text", "text files (shards) with --ray", "--counts or stdin")
    unsupported = [
        f for f, v in (("--interpolate", args.interpolate), ("--k", args.k), ("--heldout", args.heldout)) if v
    ]
    if unsupported:
        raise InvalidArgumentError(unsupported[0], "no such option with mkn", "given")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = build(
            args.text,
            args.arpa,
            args.order,
            prune=args.prune,
            discount_fallback=None
            if args.discount_fallback is None
            else tuple(args.discount_fallback or LMPLZ_FALLBACK),
            float64=args.float64,
            units=args.units,
            limit_vocab=args.limit_vocab,
            partitions=args.partitions,
            memory=args.memory,
            tmp_dir=args.tmp_dir,
            encoding_errors=args.encoding_errors,
            address=args.ray or None,
            skip_unreadable=args.skip_unreadable,
        )
    for w in caught:
        _status(f"warning: {w.message}")
    summary = {**dataclasses.asdict(report), "method": "mkn", "peak_rss_mb": round(peak_memory() / 2**20, 1)}
    line = (
        f"{args.arpa}: order {report.order} mkn on Ray, {report.partitions} partitions, n-grams "
        f"{report.written_ngrams} ({report.seconds['total']:.2f} s)"
    )
    if not args.json:
        _status(line)
        return
    emit(args, summary, line)


def _load(path):
    from speechdecode.lm.model import NgramModel

    return NgramModel.load(path)


def run_ppl(args) -> None:
    from speechdecode._io import open_text

    model = _load(args.arpa)
    with open_text(args.text) as handle:
        sentences = [line for line in handle if line.strip()]
    scores = model.score_batch(sentences)
    words = sum(len(s.split()) for s in sentences)
    oov = sum(1 for s in sentences for w in s.split() if w not in model)
    total = float(scores.sum())
    summary = {
        "sentences": len(sentences),
        "words": words,
        "oov": oov,
        "log10_prob": total,
        "perplexity": 10 ** (-total / (words + len(sentences))),
    }
    emit(
        args,
        summary,
        f"{args.text}: {len(sentences)} sentences, {words} words, {oov} OOV, log10 prob {total:.4f}, "
        f"perplexity {summary['perplexity']:.3f}",
    )


def run_prune(args) -> None:
    from speechdecode.lm.arpa import read_arpa, write_arpa
    from speechdecode.lm.prune import prune_entropy

    model = read_arpa(args.arpa)
    pruned = prune_entropy(model, args.threshold)
    write_arpa(args.out, pruned)
    before, after = [len(g) for g in model.ngrams], [len(g) for g in pruned.ngrams]
    emit(args, {"before": before, "after": after, "out": args.out}, f"{args.out}: n-grams {before} -> {after}")


def run_generate(args) -> None:
    from speechdecode.lm.generate import generate

    model = _load(args.arpa)
    outs = generate(
        model,
        args.prefix,
        strategy=args.strategy,
        max_words=args.max_words,
        num=args.num,
        temperature=args.temperature,
        top_k=args.top_k,
        beam=args.beam,
        seed=args.seed,
    )
    results = [{"text": " ".join(g.words), "log10_prob": g.log10_prob, "finished": g.finished} for g in outs]
    prefix = args.prefix.strip() + " " if args.prefix.strip() else ""
    emit(args, {"results": results}, "\n".join(f"{r['log10_prob']:.3f}\t{prefix}{r['text']}" for r in results))


def run_info(args) -> None:
    if args.methods:
        from speechdecode.lm.estimate import METHODS, method_options

        methods = {name: method_options(name) for name in METHODS}
        emit(args, {"methods": methods}, "\n".join(f"{k}: {', '.join(v)}" for k, v in methods.items()))
        return
    if not args.arpa:
        raise InvalidArgumentError("--arpa", "an ARPA file (or --methods)", "nothing")
    model = _load(args.arpa)
    summary = {
        "arpa": args.arpa,
        "kenlm_type": model.kenlm_type,
        "order": model.order,
        "ngrams": list(model.counts),
        "vocabulary": model.vocab_size,
        "memory_bytes": model.memory_bytes,
        "bytes_per_ngram": model.bytes_per_ngram,
    }
    emit(
        args,
        summary,
        f"{args.arpa}: {f'KenLM {model.kenlm_type} binary, ' if model.kenlm_type else ''}"
        f"order {model.order}, n-grams {list(model.counts)}, vocabulary {model.vocab_size}, "
        f"{model.memory_bytes / 2**20:.1f} MiB loaded ({model.bytes_per_ngram:.1f} bytes/n-gram)",
    )


def run_binary(args) -> None:
    from speechdecode.lm.kenlm_binary import write_binary

    if args.b is not None and args.q is None:
        raise InvalidArgumentError("-b", "to come with -q (backoff bits of quantization)", args.b)
    quantize = None if args.q is None else (args.q, args.q if args.b is None else args.b)
    start = time.perf_counter()
    write_binary(args.arpa, args.out, type=args.type, quantize=quantize, pointer_bits=args.a)
    seconds = time.perf_counter() - start
    summary = {"arpa": args.arpa, "out": args.out, "type": args.type, "quantize": quantize, "pointer_bits": args.a}
    if args.out != "-":
        summary["bytes"] = os.path.getsize(args.out)
    line = f"{args.out}: KenLM {args.type} binary of {args.arpa} ({seconds:.2f} s)"
    if not args.json:
        _status(line)
        return
    emit(args, {**summary, "seconds": seconds}, line)


def run_to_arpa(args) -> None:
    from speechdecode.lm.kenlm_binary import binary_to_arpa

    binary_to_arpa(args.binary, args.out)
    line = f"{args.out}: ARPA of {args.binary}"
    if not args.json:
        _status(line)
        return
    emit(args, {"binary": args.binary, "out": args.out}, line)


def run_query(args) -> None:
    """KenLM's query: per line, ``word=id ngram_length log10prob`` for each word (and ``</s>``),
    ``Total: T OOV: K``; then perplexity including and excluding OOVs, OOVs and tokens."""
    import json

    from speechdecode.lm.arpa import format_float

    model = _load(args.model)
    context = not args.no_context
    eos_id = model.kenlm_id(2)
    corpus_total = corpus_oov_total = 0.0
    corpus_oov = corpus_tokens = 0
    sentences = []
    out = sys.stdout
    for line in sys.stdin:
        words = line.split()
        scores = model.full_scores(line, bos=context, eos=context)
        ids = [model.kenlm_id(model.word_id(w)) for w in words]
        items = list(zip(words, ids, scores, strict=False))
        if context:
            items.append(("</s>", eos_id, scores[-1]))
        total = np.float32(0.0)
        oov = 0
        for _, _, s in items:
            total = np.float32(total + np.float32(s.log10_prob))
        for _, _, s in items[: len(words)]:
            if s.oov:  # as KenLM's query: id 0, which <unk> itself also is
                oov += 1
                corpus_oov_total += s.log10_prob
        corpus_total += float(total)
        corpus_oov += oov
        corpus_tokens += len(items)
        if args.json:
            sentences.append(
                {
                    "words": [
                        {"word": w, "id": i, "ngram_length": s.ngram_length, "log10_prob": s.log10_prob, "oov": s.oov}
                        for w, i, s in items
                    ],
                    "total": float(total),
                    "oov": oov,
                }
            )
        else:
            text = "".join(f"{w}={i} {s.ngram_length} {format_float(s.log10_prob)}\t" for w, i, s in items)
            out.write(f"{text}Total: {format_float(float(total))} OOV: {oov}\n")
    including = 10.0 ** (-corpus_total / corpus_tokens) if corpus_tokens else float("nan")
    kept = corpus_tokens - corpus_oov
    excluding = 10.0 ** (-(corpus_total - corpus_oov_total) / kept) if kept else float("nan")
    summary = {
        "perplexity_including_oovs": including,
        "perplexity_excluding_oovs": excluding,
        "oovs": corpus_oov,
        "tokens": corpus_tokens,
    }
    if args.json:
        json.dump({"sentences": sentences, **summary}, out, indent=2)
        out.write("\n")
        return
    out.write(
        f"Perplexity including OOVs:\t{including!r}\nPerplexity excluding OOVs:\t{excluding!r}\n"
        f"OOVs:\t{corpus_oov}\nTokens:\t{corpus_tokens}\n"
    )
