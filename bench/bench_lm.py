"""N-gram LM benchmarks against KenLM: estimation (lmplz), ARPA loading and scoring (kenlm).

Cases (order 5; quick mode: order 3 on 400 verses):

* ``build <corpus>``: ``speechdecode lm build`` vs ``lmplz -S 2G --discount_fallback`` as child
  processes on the same text file, wall time and peak RSS (``os.wait4``). Both ARPA files must
  be byte-identical before anything is reported. lmplz is not on PyPI: it runs when an
  ``lmplz`` is on PATH (or ``SPEECHDECODE_LMPLZ`` names one); otherwise the case is skipped with
  a note. Corpora: the King James Bible (0.79M words, the ~1M case) and, for the >= 20M case,
  the Bible and the fortunes package's text repeated to 20M words (Debian ships no 20M-word
  corpus of distinct text, so n-gram types stay those of 1.2M words).
* ``load``: ``NgramModel.from_arpa`` vs ``kenlm.Model`` on the KJV order-5 ARPA.
* ``score_batch``: our batched scoring (1 thread, all cores) vs a Python loop over
  ``kenlm.Model.score`` on 2,000 held-out sentences. Each row also gives ns per word and per
  table probe on a core (the CPU time of all threads; probes counted as ``sum(ngram_length)`` of
  ``full_scores``: the hits past the unigram plus the miss that ends each word's chain, an upper
  bound; a trie probe is an interpolation search of several reads), next to this machine's
  load-to-use latency measured by a pointer chase over a buffer the size of the model's
  tables and over 1 GiB (DRAM): batched scoring beats the latency only by keeping several
  independent probes in flight.
* ``state API``: per-word scoring with explicit states: our ``score_word`` from Python and our
  vectorized ``score_words`` vs a Python loop over ``kenlm.Model.BaseScore``.
* ``load binary <model>``: KenLM binaries (probing, trie, trie ``-q 8 -b 8 -a 22``): ``kenlm.Model``
  on KenLM's file vs ``NgramModel.load`` on the same file (memory-mapped), and our ARPA load of
  the same model for scale; file sizes of ours vs KenLM's in the row params. Models: the KJV
  order-5 ARPA and (full mode) an order-5 model of the KJV + fortunes text (1.2M words).
* ``query <model> <type>``: words/s scoring held-out sentences on KenLM's own binary file: a
  Python loop over ``kenlm.Model.score`` vs a loop over ``NgramModel.score`` (single sentences)
  and ``score_batch`` (batched, 1 thread and all cores; ns per word and per probe on a core, as
  in ``score_batch``). Scores must be identical first.

KenLM's ``build_binary`` is not on PyPI: with one on PATH (or named by
``SPEECHDECODE_BUILD_BINARY``) its files are used, after checking ours are byte-identical;
without one, our files stand in for KenLM's (tests/lm/test_kenlm_write.py checks they are
byte-identical to build_binary's on its oracle files), which the notes say.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from speechdecode.bench.harness import Suite
from speechdecode.errors import BackendUnavailableError
from speechdecode.testing.corpora import fortune_sentences, kjv_sentences

ORDER = 5
LARGE_WORDS = 20_000_000


def _kenlm():
    try:
        import kenlm
    except ImportError:
        raise BackendUnavailableError("the lm suite's anchor is kenlm: pip install kenlm") from None
    return kenlm


def pointer_chase_ns(nbytes: int, steps: int = 2_000_000) -> float:
    """Nanoseconds per load of a random cyclic walk over ``nbytes`` (one 64-byte line per step).

    Each load's address is the previous load's value, so nothing overlaps: the time per step is
    the load-to-use latency of memory that size (cache for small buffers, DRAM for large ones).
    """
    import time

    import numba

    @numba.njit(cache=False)
    def chase(nxt, count):
        j = 0
        for _ in range(count):
            j = nxt[j]
        return j

    lines = max(2, nbytes // 64)
    order = np.random.default_rng(0).permutation(lines)
    nxt = np.zeros(lines * 8, dtype=np.int64)  # 8 int64 per line; only the first is used
    nxt[order * 8] = np.roll(order, -1) * 8
    chase(nxt, lines)  # compile, and touch every line once
    start = time.perf_counter()
    chase(nxt, steps)
    return (time.perf_counter() - start) / steps * 1e9


def _lmplz() -> str | None:
    return os.environ.get("SPEECHDECODE_LMPLZ") or shutil.which("lmplz")


def _build_binary() -> str | None:
    return os.environ.get("SPEECHDECODE_BUILD_BINARY") or shutil.which("build_binary")


# (name, write_binary options, build_binary flags)
BINARY_TYPES = [
    ("probing", {"type": "probing"}, ["probing"]),
    ("trie", {"type": "trie"}, ["trie"]),
    (
        "trie-q8b8a22",
        {"type": "trie", "quantize": (8, 8), "pointer_bits": 22},
        ["-q", "8", "-b", "8", "-a", "22", "trie"],
    ),
]


# A small parent process measures its child: a child's peak RSS counts from the peak of the process
# that forked it (Linux keeps the high-water mark across fork and exec), so the large benchmark
# process must not be that parent.
_MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(r.returncode)"
)


def _run(command: list[str], memo: dict) -> None:
    """Run a child process to completion; record its peak RSS (MB) and stderr in ``memo``."""
    out = subprocess.run([sys.executable, "-S", "-c", _MEASURE, *command], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    memo["peak_rss_mb"] = int(out.stdout) / 1024
    memo["stderr"] = out.stderr


def _write_text(path: str, sentences: list[str], repeat: int = 1) -> int:
    block = "\n".join(sentences) + "\n"
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(repeat):
            handle.write(block)
    return repeat * sum(len(s.split()) for s in sentences)


def _build_command(text: str, arpa: str, order: int) -> list[str]:
    """``speechdecode lm build`` (mkn) as a child process."""
    command = ["lm", "build", "--text", text, "--order", str(order), "--arpa", arpa, "--memory", "2G"]
    return [sys.executable, "-m", "speechdecode", *command]


def _build_case(suite: Suite, name: str, text: str, words: int, order: int, work: str, settings: dict) -> None:
    ours_arpa, lmplz_arpa = os.path.join(work, f"{name}.ours.arpa"), os.path.join(work, f"{name}.lmplz.arpa")
    ours_cmd = _build_command(text, ours_arpa, order)
    lmplz = _lmplz()
    if lmplz is None:
        suite.note(f"build {name}: no lmplz on PATH (KenLM's estimator is not on PyPI): case skipped")
        return
    lmplz_cmd = [lmplz, "-o", str(order), "-S", "2G", "--discount_fallback", "--text", text, "--arpa", lmplz_arpa]
    ours_memo, lmplz_memo = {}, {}
    _run(ours_cmd, ours_memo)
    _run(lmplz_cmd, lmplz_memo)
    with open(ours_arpa, "rb") as a, open(lmplz_arpa, "rb") as b:
        if a.read() != b.read():
            raise RuntimeError(f"build {name}: our ARPA differs from lmplz's; not timing a wrong result")
    case = f"build o{order} {name}"
    params = {"words": words, "order": order}
    suite.add(
        case,
        "lmplz -S 2G",
        lambda: _run(lmplz_cmd, lmplz_memo),
        anchor=True,
        items=words,
        item_unit="word",
        params=params,
        settings=settings,
    )
    suite.add(
        case,
        "speechdecode lm build",
        lambda: _run(ours_cmd, ours_memo),
        items=words,
        item_unit="word",
        params=params,
        settings=settings,
    )
    suite.rows[-2]["params"]["peak_rss_mb"] = round(lmplz_memo["peak_rss_mb"], 1)
    suite.rows[-1]["params"]["peak_rss_mb"] = round(ours_memo["peak_rss_mb"], 1)
    suite.rows[-1]["params"]["arpa_identical_to_lmplz"] = True
    unit = 1
    for line in lmplz_memo["stderr"].splitlines():
        fields = line.split()
        if fields[:1] == ["type"] and len(fields) == 2:  # lmplz's memory table header: "type kB" or "type MB"
            unit = {"kB": 1, "MB": 1024, "GB": 1024**2}.get(fields[1], 1)
        if fields[:1] == ["probing"] and line.endswith("assuming -p 1.5"):
            suite.rows[-2]["params"]["kenlm_probing_kb"] = int(fields[1]) * unit


def _binaries(suite: Suite, name: str, arpa: str, work: str) -> dict[str, str]:
    """Our binaries of arpa, one per type; checked byte for byte against build_binary's when
    there is one. Returns type -> the file to time (KenLM's own, or ours standing in for it)."""
    from speechdecode.lm.kenlm_binary import write_binary

    tool = _build_binary()
    files = {}
    for kind, options, flags in BINARY_TYPES:
        ours = os.path.join(work, f"{name}.{kind}.bin")
        write_binary(arpa, ours, **options)
        files[kind] = ours
        if tool is None:
            continue
        theirs = os.path.join(work, f"{name}.{kind}.kenlm.bin")
        subprocess.run([tool, *flags, arpa, theirs], check=True, capture_output=True)
        with open(ours, "rb") as a, open(theirs, "rb") as b:
            if a.read() != b.read():
                raise RuntimeError(f"{name} {kind}: our binary differs from build_binary's; not timing it")
        files[kind] = theirs
    if tool is None:
        suite.note(
            f"{name}: no build_binary on PATH (not on PyPI): our binaries stand in for KenLM's "
            "(byte-identical to build_binary's on the oracles of tests/lm/test_kenlm_write.py)"
        )
    return files


def _binary_cases(
    suite: Suite, kenlm, name: str, arpa: str, heldout: list[str], work: str, settings: dict, latency: dict
) -> None:
    from speechdecode.lm.model import NgramModel

    files = _binaries(suite, name, arpa, work)
    ngrams = int(sum(NgramModel.load(files["probing"]).counts))
    arpa_bytes = os.path.getsize(arpa)
    case = f"load binary {name}"

    def add_load(impl: str, fn, params: dict, anchor: bool = False) -> None:
        suite.add(case, impl, fn, anchor=anchor, items=ngrams, item_unit="n-gram", params=params, settings=settings)

    add_load(
        "kenlm.Model (probing binary)",
        lambda: kenlm.Model(files["probing"]),
        {"bytes": os.path.getsize(files["probing"])},
        anchor=True,
    )
    for kind, _, _ in BINARY_TYPES:
        size = os.path.getsize(files[kind])
        ours_size = os.path.getsize(os.path.join(work, f"{name}.{kind}.bin"))
        if kind != "probing":
            add_load(f"kenlm.Model ({kind} binary)", lambda k=kind: kenlm.Model(files[k]), {"bytes": size})
        add_load(
            f"NgramModel.load ({kind} binary)",
            lambda k=kind: NgramModel.load(files[k]),
            {"bytes": ours_size, "kenlm_bytes": size, "size_ratio": round(ours_size / size, 4)},
        )
    add_load("NgramModel.load (ARPA)", lambda: NgramModel.load(arpa), {"bytes": arpa_bytes})

    tokens = sum(len(s.split()) + 1 for s in heldout)
    for kind, _, _ in BINARY_TYPES:
        theirs, ours = kenlm.Model(files[kind]), NgramModel.load(files[kind])
        probes = sum(s.ngram_length for sentence in heldout for s in ours.full_scores(sentence))
        expected = np.array([theirs.score(s) for s in heldout])
        if not np.array_equal(ours.score_batch(heldout), expected):
            raise RuntimeError(f"{name} {kind}: scores differ from kenlm's; not timing a wrong result")
        case = f"query {name} {kind}"
        suite.add(
            case,
            "python loop over kenlm.Model.score",
            lambda m=theirs: [m.score(s) for s in heldout],
            anchor=True,
            items=tokens,
            item_unit="word",
        )
        suite.add(
            case, "python loop over NgramModel.score", lambda m=ours: [m.score(s) for s in heldout], items=tokens,
            item_unit="word",
        )  # fmt: skip
        for threads in (1, os.cpu_count() or 1):
            row = suite.add(
                case,
                f"score_batch {threads} thread{'s' * (threads > 1)}",
                lambda m=ours, t=threads: m.score_batch(heldout, num_threads=t),
                items=tokens,
                item_unit="word",
                params={"num_threads": threads, "chase_latency_ns": latency},
            )
            _per_core(row, tokens, probes)


def _per_core(row: dict, tokens: int, probes: int) -> None:
    """ns per word and per table probe of a score_batch row, from its CPU time (all threads)."""
    core_ns = row["cpu_median_ms"] * 1e6
    row["params"]["core_ns_per_word"] = round(core_ns / tokens, 1)
    row["params"]["core_ns_per_probe"] = round(core_ns / probes, 1)


def run(suite: Suite, quick: bool) -> None:
    kenlm = _kenlm()
    from speechdecode.lm.model import NgramModel

    verses = kjv_sentences()
    work = tempfile.mkdtemp(prefix="speechdecode-bench-lm-")
    try:
        if quick:
            order, train, heldout = 3, verses[1000:1400], verses[1400:1500]
        else:
            order, train, heldout = ORDER, verses[:-2000], verses[-2000:]
        kjv_path = os.path.join(work, "kjv.txt")
        words = _write_text(kjv_path, train)
        once = {"warmup": 0, "repeats": 1 if quick else 3, "min_seconds": 0}
        _build_case(
            suite, "kjv", kjv_path, words, order, work, {"warmup": 1, "repeats": 1 if quick else 5, "min_seconds": 0}
        )
        if not quick:
            mixed = verses + fortune_sentences()
            per_copy = sum(len(s.split()) for s in mixed)
            large_path = os.path.join(work, "large.txt")
            large_words = _write_text(large_path, mixed, repeat=-(-LARGE_WORDS // per_copy))
            _build_case(suite, "kjv+fortunes x17", large_path, large_words, order, work, once)

        arpa = os.path.join(work, "kjv.arpa")
        subprocess.run(_build_command(kjv_path, arpa, order), check=True, capture_output=True)
        ours, theirs = NgramModel.from_arpa(arpa), kenlm.Model(arpa)
        ngrams = int(sum(ours.counts))
        suite.add(
            "load ARPA",
            "kenlm.Model",
            lambda: kenlm.Model(arpa),
            anchor=True,
            items=ngrams,
            item_unit="n-gram",
            settings=once,
        )
        suite.add(
            "load ARPA",
            "NgramModel.from_arpa",
            lambda: NgramModel.from_arpa(arpa),
            items=ngrams,
            item_unit="n-gram",
            params={"bytes_per_ngram": round(ours.bytes_per_ngram, 2)},
            settings=once,
        )

        latency = {
            "model_tables_ns": round(pointer_chase_ns(ours.memory_bytes), 1),
            "dram_1gib_ns": round(pointer_chase_ns(1 << 30), 1),
        }
        _binary_cases(suite, kenlm, "kjv", arpa, heldout, work, once, latency)
        if not quick:
            large_text = os.path.join(work, "kjv+fortunes.txt")
            _write_text(large_text, verses[:-2000] + fortune_sentences())
            large_arpa = os.path.join(work, "kjv+fortunes.arpa")
            subprocess.run(_build_command(large_text, large_arpa, order), check=True, capture_output=True)
            _binary_cases(suite, kenlm, "kjv+fortunes", large_arpa, heldout, work, once, latency)

        tokens = sum(len(s.split()) + 1 for s in heldout)
        expected = np.array([theirs.score(s) for s in heldout])
        if not np.allclose(ours.score_batch(heldout), expected, atol=1e-4):
            raise RuntimeError("score_batch differs from kenlm; not timing a wrong result")
        suite.add(
            "score_batch",
            "python loop over kenlm.Model.score",
            lambda: [theirs.score(s) for s in heldout],
            anchor=True,
            items=tokens,
            item_unit="word",
        )
        probes = sum(s.ngram_length for sentence in heldout for s in ours.full_scores(sentence))
        suite.note(
            f"score_batch: pointer-chase latency {latency['model_tables_ns']} ns over {ours.memory_bytes >> 20} MiB "
            f"(the model's size), {latency['dram_1gib_ns']} ns over 1 GiB; {probes / tokens:.2f} probes per word"
        )
        for threads in (1, os.cpu_count() or 1):
            row = suite.add(
                "score_batch",
                f"score_batch {threads} thread{'s' * (threads > 1)}",
                lambda t=threads: ours.score_batch(heldout, num_threads=t),
                items=tokens,
                item_unit="word",
                params={"num_threads": threads, "chase_latency_ns": latency},
            )
            _per_core(row, tokens, probes)

        sequence = [w for s in heldout for w in s.split()][: 20000 if not quick else 2000]
        ids = np.array([ours.word_id(w) for w in sequence], dtype=np.int32)

        def kenlm_states():
            state, out, total = kenlm.State(), kenlm.State(), 0.0
            theirs.BeginSentenceWrite(state)
            for w in sequence:
                total += theirs.BaseScore(state, w, out)
                state, out = out, state
            return total

        def our_states():
            state, total = ours.begin_state(), 0.0
            for i in ids.tolist():
                score, state = ours.score_word(state, i)
                total += score
            return total

        # the same words scored from a batch of states at once (a decoder's beam)
        rows = np.full((len(ids), max(order - 1, 1)), -1, dtype=np.int32)
        state = ours.begin_state()
        for r, i in enumerate(ids.tolist()):
            rows[r, : len(state)] = state
            state = ours.score_word(state, i)[1]
        if abs(kenlm_states() - our_states()) > 1e-3 * len(ids):
            raise RuntimeError("state API differs from kenlm; not timing a wrong result")
        suite.add(
            "state API", "python loop over kenlm BaseScore", kenlm_states, anchor=True, items=len(ids), item_unit="word"
        )
        suite.add("state API", "python loop over score_word", our_states, items=len(ids), item_unit="word")
        suite.add(
            "state API",
            "score_words (vectorized, 1 thread)",
            lambda: ours.score_words(rows, ids, num_threads=1),
            items=len(ids),
            item_unit="word",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
