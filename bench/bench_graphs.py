"""TLG compilation benchmark against the classic pipeline (kaldilm's arpa2fst for G, then OpenFst).

The real-size case: the CMU pronouncing dictionary (Debian's pocketsphinx-en-us
``cmudict-en-us.dict``) restricted to the vocabulary of the King James Bible, and a 3-gram ARPA of
the Bible built by ``speechdecode lm build`` (~570k n-grams; Bible words missing from the CMU
dictionary are dropped from G by both pipelines: ours with ``allow_oov``, kaldilm because it
skips n-grams with words outside the symbol table it reads).

Both pipelines run as child processes on the same files, each ending with what its decoder loads:

* ``speechdecode compile_graph``: G built with numpy and handed to OpenFst in its binary format,
  then L, LG = arcsort(minimize_encoded(determinize_log(L∘G))), TLG = arcsort(T∘LG) (L∘G and the
  determinization by OpenFst, the minimization and T∘LG native), written as
  ``speechdecode graph compile`` writes it: TLG.fst, the WFST decoder's TLG.npz and the tables;
* ``kaldilm arpa2fst + OpenFst``: G.fst written by kaldilm's arpa2fst (``--disambig-symbol=#0
  --read-symbol-table=words.txt``), then the same L and every step by OpenFst (pywrapfst calls
  alone, each intermediate freed when the next exists), and TLG.fst.

Wall time per run, CPU time (user + system, median over the runs, in the table's CPU columns) and
peak RSS of each child (``ru_maxrss`` read by a small parent process, so the benchmark process's
own size does not count). The two TLGs must be random-path equivalent (OpenFst's randequivalent)
before anything is reported. Quick mode: 400 verses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from statistics import median

from speechdecode.bench.harness import Suite
from speechdecode.errors import BackendUnavailableError

CMUDICT = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"
ORDER = 3
TOPOLOGIES = ("compact", "standard")

# A small parent measures its child: a child's peak RSS counts from the peak of the process that
# forked it (Linux keeps the high-water mark across fork and exec), so the benchmark process must
# not be that parent.
_MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "sys.stdout.write(r.stdout.decode() + '\\n' + f'{u.ru_maxrss} {u.ru_utime + u.ru_stime}'); "
    "sys.exit(r.returncode)"
)

_OURS = """
import json, sys
from speechdecode.graphs.compile import compile_graph
units, lexicon, arpa, topology, out = sys.argv[1:]
graph = compile_graph(units, lexicon, arpa, topology=topology, allow_oov=True)
graph.write(out)
print(json.dumps({"steps": {s.name: s.seconds for s in graph.steps}}))
"""

_CLASSIC = """
import json, sys, time
import kaldilm, pywrapfst
from speechdecode.graphs.lexicon import read_lexicon
from speechdecode.graphs.lexicon_fst import disambiguate, lexicon_fst
from speechdecode.graphs.symbols import acoustic_units, token_table, word_table
from speechdecode.graphs.topology import ctc_topology
units, lexicon, arpa, topology, words_txt, g_path, out = sys.argv[1:]
steps, start = {}, time.perf_counter()
def lap(name):
    global start
    steps[name], start = time.perf_counter() - start, time.perf_counter()
kaldilm.arpa2fst(arpa, g_path, disambig_symbol="#0", read_symbol_table=words_txt, max_arpa_warnings=0)
G = pywrapfst.Fst.read(g_path)
lap("G")
lex = read_lexicon(lexicon)
units = acoustic_units(units)
k = disambiguate(lex)[1]
tokens, words = token_table(units, k + 1), word_table(lex)
L = lexicon_fst(lex, tokens, words, blank="<blk>")
lap("L")
lg = pywrapfst.compose(L.arcsort("olabel"), G.arcsort("ilabel"))
del L, G
lap("compose(L,G)")
log = pywrapfst.arcmap(lg, map_type="to_log")
del lg
det = pywrapfst.determinize(log)
del log
LG = pywrapfst.arcmap(det, map_type="to_std")
del det
lap("determinize_log")
mapper = pywrapfst.EncodeMapper(LG.arc_type(), encode_labels=True, encode_weights=True)
LG.encode(mapper)
LG.minimize()
LG.decode(mapper)
LG.arcsort("ilabel")
lap("minimize_encoded")
T = ctc_topology(len(units), 0, k + 1, topology).arcsort("olabel")
TLG = pywrapfst.compose(T, LG)
del LG
TLG.arcsort("ilabel")
lap("compose(T,LG)")
TLG.write(out)
lap("write")
print(json.dumps({"steps": steps}))
"""


def _run(command: list[str], memo: dict) -> None:
    """Run a child to completion; record its peak RSS (MB), its CPU time (user + system seconds, one
    entry per run) and its JSON report in ``memo``."""
    out = subprocess.run([sys.executable, "-S", "-c", _MEASURE, *command], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    report, _, usage = out.stdout.rpartition("\n")
    rss, cpu = usage.split()
    memo["peak_rss_mb"] = int(rss) / 1024
    memo.setdefault("cpu_seconds", []).append(float(cpu))
    memo["steps"] = json.loads(report.strip().splitlines()[-1])["steps"]


def _inputs(work: str, quick: bool) -> dict:
    """Corpus, ARPA, CMU lexicon restricted to the corpus vocabulary, phone list, words.txt."""
    from speechdecode.graphs.lexicon import Lexicon, write_lexicon
    from speechdecode.graphs.symbols import word_table
    from speechdecode.testing.corpora import kjv_sentences

    if not os.path.exists(CMUDICT):
        raise BackendUnavailableError(f"the graphs suite needs {CMUDICT}: apt-get install pocketsphinx-en-us")
    verses = kjv_sentences()[: 400 if quick else None]
    paths = {
        name: os.path.join(work, name) for name in ("kjv.txt", "kjv.arpa", "lexicon.txt", "units.txt", "words.txt")
    }
    with open(paths["kjv.txt"], "w", encoding="utf-8") as handle:
        handle.write("\n".join(verses) + "\n")
    build = [sys.executable, "-m", "speechdecode", "lm", "build", "--text", paths["kjv.txt"], "--order", str(ORDER)]
    subprocess.run([*build, "--arpa", paths["kjv.arpa"]], check=True, capture_output=True)
    vocab = {w for v in verses for w in v.split()}
    lexicon, phones = Lexicon(), set()
    with open(CMUDICT, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            word = re.sub(r"\(\d+\)$", "", fields[0]) if fields else ""
            if word in vocab and tuple(fields[1:]) not in {p.tokens for p in lexicon.get(word, ())}:
                lexicon.add(word, fields[1:])
                phones.update(fields[1:])
    write_lexicon(paths["lexicon.txt"], lexicon)
    with open(paths["units.txt"], "w", encoding="utf-8") as handle:
        handle.write("\n".join(sorted(phones)) + "\n")
    word_table(lexicon).write(paths["words.txt"])
    with open(paths["kjv.arpa"], encoding="utf-8") as handle:
        ngrams = sum(int(line.split("=")[1]) for line in handle if line.startswith("ngram "))
        if not ngrams:
            raise RuntimeError(f"{paths['kjv.arpa']}: no n-grams")
    return {
        **paths,
        "ngrams": ngrams,
        "words": len(lexicon),
        "pronunciations": lexicon.num_pronunciations,
        "corpus_words": len(vocab),
    }


def _check_equivalent(ours: str, classic: str) -> dict:
    import pywrapfst

    a, b = pywrapfst.Fst.read(ours), pywrapfst.Fst.read(classic)
    if not pywrapfst.randequivalent(a, b, npath=50, delta=1e-3, seed=1, max_length=60):
        raise RuntimeError("our TLG is not equivalent to the classic pipeline's; not timing a wrong result")
    arcs = [sum(map(f.num_arcs, f.states())) for f in (a, b)]
    return {"states": a.num_states(), "arcs": arcs[0], "classic_states": b.num_states(), "classic_arcs": arcs[1]}


def run(suite: Suite, quick: bool) -> None:
    work = tempfile.mkdtemp(prefix="speechdecode-bench-graphs-")
    inputs = _inputs(work, quick)
    settings = {"warmup": 0, "repeats": 1 if quick else 2, "min_seconds": 0}
    common = {k: inputs[k] for k in ("ngrams", "words", "pronunciations", "corpus_words")}
    for topology in TOPOLOGIES:
        ours_dir, classic_fst = (
            os.path.join(work, f"ours.{topology}"),
            os.path.join(work, f"classic.{topology}.TLG.fst"),
        )
        ours_cmd = [
            sys.executable,
            "-c",
            _OURS,
            inputs["units.txt"],
            inputs["lexicon.txt"],
            inputs["kjv.arpa"],
            topology,
            ours_dir,
        ]
        classic_cmd = [sys.executable, "-c", _CLASSIC, inputs["units.txt"], inputs["lexicon.txt"], inputs["kjv.arpa"],
                       topology, inputs["words.txt"], os.path.join(work, "G.fst"), classic_fst]  # fmt: skip
        ours_memo, classic_memo = {}, {}
        _run(ours_cmd, ours_memo)
        _run(classic_cmd, classic_memo)
        sizes = _check_equivalent(os.path.join(ours_dir, "TLG.fst"), classic_fst)
        case = (
            f"TLG {topology}, KJV {ORDER}-gram ({inputs['ngrams']:,} n-grams), CMU lexicon ({inputs['words']:,} words)"
        )
        rows = (
            ("kaldilm arpa2fst + OpenFst", classic_cmd, classic_memo, True),
            ("speechdecode compile_graph", ours_cmd, ours_memo, False),
        )
        for impl, command, memo, anchor in rows:
            suite.add(
                case,
                impl,
                lambda c=command, m=memo: _run(c, m),
                anchor=anchor,
                items=inputs["ngrams"],
                item_unit="n-gram",
                params=common,
                settings=settings,
            )
        anchor_row, ours_row = suite.rows[-2], suite.rows[-1]
        # The work runs in the children: their CPU time, not this process's (which only waits).
        anchor_row["cpu_median_ms"] = 1e3 * median(classic_memo["cpu_seconds"])
        ours_row["cpu_median_ms"] = 1e3 * median(ours_memo["cpu_seconds"])
        anchor_row["params"].update(
            peak_rss_mb=round(classic_memo["peak_rss_mb"], 1),
            tlg_states=sizes["classic_states"],
            tlg_arcs=sizes["classic_arcs"],
            step_seconds={k: round(v, 3) for k, v in classic_memo["steps"].items()},
        )
        ours_row["params"].update(
            peak_rss_mb=round(ours_memo["peak_rss_mb"], 1),
            tlg_states=sizes["states"],
            tlg_arcs=sizes["arcs"],
            peak_rss_ratio=round(classic_memo["peak_rss_mb"] / ours_memo["peak_rss_mb"], 3),
            tlg_arcs_vs_classic=round(sizes["arcs"] / sizes["classic_arcs"], 4),
            step_seconds={k: round(v, 3) for k, v in ours_memo["steps"].items()},
            randequivalent_to_classic=True,
        )
