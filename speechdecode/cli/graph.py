"""``speechdecode graph``: compile TLG decoding graphs, inspect and draw FSTs."""

from __future__ import annotations

import os
import shutil
import subprocess

from speechdecode.cli import emit
from speechdecode.errors import BackendUnavailableError, InvalidArgumentError


def register(commands) -> None:
    graph = commands.group("graph", "WFST decoding graphs: compile TLG, import an OpenFst TLG, info, draw")

    compile_ = graph.add("compile", "compile TLG from tokens, a lexicon and an ARPA LM into --out DIR", run_compile)
    compile_.add_argument("--tokens", required=True, help="acoustic-model tokens: one per line, or 'token id' pairs")
    compile_.add_argument("--lexicon", required=True, help="word [prob] t1 t2 ... per line")
    compile_.add_argument("--arpa", required=True, help="the n-gram LM (ARPA, plain or .gz)")
    compile_.add_argument("--topology", choices=["standard", "compact"], default="compact")
    compile_.add_argument(
        "--units", choices=["phone", "char"], default="phone", help="char: --lexicon is a word list, spelled as chars"
    )
    compile_.add_argument("--blank", default="<blk>", help="the blank token (default <blk>)")
    compile_.add_argument("--blank-last", action="store_true", help="the blank is the model's last output")
    compile_.add_argument("--word-boundary", default="|", help="--units char: the token ending each word")
    compile_.add_argument("--silence", help="optional-silence token between words")
    compile_.add_argument("--silence-prob", type=float, default=0.5)
    compile_.add_argument(
        "--allow-oov", action="store_true", help="drop (and count) n-grams with words not in the lexicon"
    )
    compile_.add_argument("--max-arcs", type=int, help="stop when a step would exceed this many arcs")
    compile_.add_argument("--keep-lg", action="store_true", help="also write LG.fst")
    compile_.add_argument("--out", required=True, metavar="DIR")

    import_ = graph.add(
        "import", "write an OpenFst TLG (with tokens.txt, words.txt) as the decoder's graph directory", run_import
    )
    import_.add_argument("fst", help="OpenFst binary FST; input label = token id (tokens.txt: <eps> 0, tokens 1..V)")
    import_.add_argument("--tokens", help="token table (default: tokens.txt beside the FST)")
    import_.add_argument("--words", help="word table (default: words.txt beside the FST)")
    import_.add_argument("--blank", help="the blank token (default: <blk>, <blank>, <b>, <pad> or - if present)")
    import_.add_argument("--out", required=True, metavar="DIR")

    info = graph.add("info", "states, arcs and properties of an FST file or a TLG.npz / graph directory", run_info)
    info.add_argument("file")

    draw = graph.add("draw", "draw a small FST with graphviz dot", run_draw)
    draw.add_argument("file")
    draw.add_argument("-o", "--output", required=True, help="image file; the format is its extension (png, svg, pdf)")
    draw.add_argument("--tokens", help="symbol table for input labels")
    draw.add_argument("--words", help="symbol table for output labels")
    draw.add_argument("--max-states", type=int, default=200, help="refuse larger FSTs (default 200)")


def run_compile(args) -> None:
    from speechdecode.graphs.compile import check_output_dir, compile_graph
    from speechdecode.graphs.lexicon import char_lexicon

    check_output_dir(args.out)
    lexicon = args.lexicon
    if args.units == "char":
        with open(args.lexicon, encoding="utf-8") as handle:
            lexicon = char_lexicon([w for line in handle for w in line.split()[:1]], word_boundary=args.word_boundary)
    graph = compile_graph(
        args.tokens,
        lexicon,
        args.arpa,
        topology=args.topology,
        blank=args.blank,
        blank_last=args.blank_last,
        silence=args.silence,
        silence_prob=args.silence_prob,
        allow_oov=args.allow_oov,
        max_arcs=args.max_arcs,
        keep_lg=args.keep_lg,
    )
    written = graph.write(args.out)
    stats = {**graph.stats(), "out": args.out, "files": [os.path.basename(p) for p in written]}
    lines = [f"{args.out}: TLG {stats['tlg_states']:,} states, {stats['tlg_arcs']:,} arcs ({args.topology})"]
    for step in graph.steps:
        lines.append(
            f"  {step.name:<18} {step.seconds:8.3f} s  {step.states:>10,} states  {step.arcs:>11,} arcs  "
            f"peak {step.peak_rss_mb:,.0f} MB"
        )
    if graph.oov_words:
        lines.append(
            f"  dropped n-grams with {len(graph.oov_words)} words not in the lexicon, per order: "
            f"{list(graph.dropped_ngrams)}"
        )
    lines.append(f"  wrote {', '.join(stats['files'])}")
    emit(args, stats, "\n".join(lines))


def run_import(args) -> None:
    from speechdecode.graphs.import_fst import import_fst, write_graph_dir

    blank = int(args.blank) if args.blank is not None and args.blank.isdigit() else args.blank
    graph, words, tokens = import_fst(args.fst, tokens=args.tokens, words=args.words, blank=blank)
    written = write_graph_dir(graph, words, tokens, args.out)
    payload = {
        "out": args.out, "files": [os.path.basename(p) for p in written], "states": graph.num_states,
        "arcs": graph.num_arcs, "num_tokens": graph.num_tokens, "blank": graph.blank,
    }  # fmt: skip
    text = f"{args.out}: {graph.num_states:,} states, {graph.num_arcs:,} arcs, V = {graph.num_tokens}, "
    emit(args, payload, text + f"blank {graph.blank}; wrote {', '.join(payload['files'])}")


def run_info(args) -> None:
    from speechdecode.graphs.export import load_graph

    path = args.file
    if os.path.isdir(path) or path.endswith(".npz"):
        graph = load_graph(path)
        payload = {
            "file": path,
            "format": "npz",
            "states": graph.num_states,
            "arcs": graph.num_arcs,
            "start": graph.start,
            "final_states": int((graph.final_weights != float("inf")).sum()),
            "num_tokens": graph.num_tokens,
            "blank": graph.blank,
            "topology": graph.topology,
        }
    else:
        from speechdecode.graphs.compile import num_arcs
        from speechdecode.graphs.fst_io import openfst

        pywrapfst = openfst()

        try:
            fst = pywrapfst.Fst.read(path)
        except pywrapfst.FstIOError:
            raise InvalidArgumentError(
                "file", "an OpenFst binary FST, a .npz graph or a graph directory", path
            ) from None
        props = fst.properties(pywrapfst.FST_PROPERTIES, True)
        payload = {
            "file": path,
            "format": fst.fst_type(),
            "arc_type": fst.arc_type(),
            "states": fst.num_states(),
            "arcs": num_arcs(fst),
            "start": fst.start(),
            "final_states": sum(1 for s in fst.states() if fst.final(s) != pywrapfst.Weight.zero(fst.weight_type())),
            "properties": str(props).replace("FstProperties.", "").split("|"),
        }
    text = "\n".join(f"{k:<14} {v}" for k, v in payload.items() if k != "properties")
    if "properties" in payload:
        text += f"\n{'properties':<14} {' '.join(payload['properties'])}"
    emit(args, payload, text)


def run_draw(args) -> None:
    from speechdecode.graphs.fst_io import openfst
    from speechdecode.graphs.symbols import SymbolTable

    pywrapfst = openfst()
    dot = shutil.which("dot")
    if dot is None:
        raise BackendUnavailableError("graph draw needs graphviz's dot: apt-get install graphviz")
    try:
        fst = pywrapfst.Fst.read(args.file)
    except pywrapfst.FstIOError:
        raise InvalidArgumentError("file", "an OpenFst binary FST", args.file) from None
    if fst.num_states() > args.max_states:
        raise InvalidArgumentError(
            "file", f"an FST of at most --max-states={args.max_states} states to draw", f"{fst.num_states()} states"
        )
    for option, setter in ((args.tokens, fst.set_input_symbols), (args.words, fst.set_output_symbols)):
        if option:
            table = pywrapfst.SymbolTable()
            for i, symbol in enumerate(SymbolTable.read(option)):
                table.add_symbol(symbol, i)
            setter(table)
    fmt = os.path.splitext(args.output)[1].lstrip(".") or "png"
    source = args.output + ".dot"
    fst.draw(source, portrait=True, acceptor=False, show_weight_one=False)
    try:
        result = subprocess.run([dot, f"-T{fmt}", source, "-o", args.output], capture_output=True, text=True)
    finally:
        os.unlink(source)
    if result.returncode != 0:
        raise InvalidArgumentError("--output", "a format graphviz dot writes (png, svg, pdf)", result.stderr.strip())
    emit(args, {"file": args.file, "output": args.output, "states": fst.num_states()}, f"wrote {args.output}")
