"""Scale benchmarks: the single-process ``lm build`` against the Ray build (1, 2 and 4 workers),
and decoding on Ray (1 vs 2 workers).

* ``mkn order 5, <N> words``: ``speechdecode lm build`` (the anchor) and
  :func:`speechdecode.lm.distributed.build` on a local Ray cluster with 1, 2 and 4 worker
  slots, each in its own child process on the same text shards: wall time, peak RSS of the
  driver, per stage the largest task's peak RSS and growth over the RSS it started with
  (``--memory 1G``), bytes moved per stage (row params). Every ARPA must be byte-identical to
  the anchor's before a row is kept.
* ``decode <S> shards``: :func:`speechdecode.decoding.distributed.decode_shards` of S = 240
  posteriors shards (8 simulated utterances each, character CTC, a prefix search with the
  order-3 LM of the first text shard, one thread per decoder): in this process (the anchor) vs
  Ray with 1 and 2 actors; utterances/s, and every JSON Lines file equal to the anchor's.
* The corpus is distinct text, not one text repeated: sentences sampled from the trigram
  distribution of the King James Bible + the fortunes package (Debian packages), by
  :func:`sample_corpus`, cut into shards. ``SPEECHDECODE_SCALE_WORDS`` sets its size (default
  100M words, the issue's target; quick mode 200k).
"""

from __future__ import annotations

import filecmp
import functools
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from speechdecode.bench.harness import BenchmarkMismatchError, Suite
from speechdecode.lm.counting import count_files
from speechdecode.lm.vocab import BOS_ID, EOS_ID
from speechdecode.testing.corpora import fortune_sentences, kjv_sentences

WORDS_ENV = "SPEECHDECODE_SCALE_WORDS"
DEFAULT_WORDS = 100_000_000
QUICK_WORDS = 200_000
ORDER = 5
SHARDS = 16
WORKERS = (1, 2, 4)
DECODE_SHARDS = 240
UTTERANCES_PER_SHARD = 8
MAX_SENTENCE = 60


def sample_corpus(folder: str, words: int, shards: int, seed: int = 0) -> tuple[list[str], int]:
    """Write about ``words`` words of sentences sampled from the KJV + fortunes trigram model
    (maximum likelihood, each sentence started from ``<s>``, ended at ``</s>`` or after
    ``MAX_SENTENCE`` words) into ``shards`` files; returns the paths and the word count."""
    training = os.path.join(folder, "training.txt")
    with open(training, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kjv_sentences() + fortune_sentences()) + "\n")
    counts = count_files(training, 3)
    vocab = np.array(counts.vocab.words, dtype=object)
    size = len(vocab)
    bigrams, trigrams = counts.ngrams[1], counts.ngrams[2]
    starts = bigrams[:, 0] == BOS_ID
    first_words, first_cum = bigrams[starts, 1], np.cumsum(counts.counts[1][starts])
    keys = trigrams[:, 0].astype(np.int64) * size + trigrams[:, 1]
    prefixes, begin = np.unique(keys, return_index=True)
    end = np.append(begin[1:], len(keys))
    cum = np.concatenate([[0], np.cumsum(counts.counts[2])])
    rng = np.random.default_rng(seed)
    paths = [os.path.join(folder, f"shard{i:03d}.txt") for i in range(shards)]
    handles = [open(p, "w", encoding="utf-8") for p in paths]
    written = batch_index = 0
    try:
        while written < words:
            batch = int(min(100_000, max(1_000, (words - written) // 12)))  # sentences average ~14 words
            ids = np.full((batch, MAX_SENTENCE), EOS_ID, dtype=np.int32)
            ids[:, 0] = first_words[np.searchsorted(first_cum, rng.random(batch) * first_cum[-1], side="right")]
            previous = np.full(batch, BOS_ID, dtype=np.int64)
            alive = ids[:, 0] != EOS_ID
            for t in range(1, MAX_SENTENCE):
                rows = np.flatnonzero(alive)
                if not len(rows):
                    break
                state = np.searchsorted(prefixes, previous[rows] * size + ids[rows, t - 1])
                lo, hi = cum[begin[state]], cum[end[state]]
                pick = np.searchsorted(cum, lo + rng.random(len(rows)) * (hi - lo), side="right") - 1
                ids[rows, t] = trigrams[pick, 2]
                previous[rows] = ids[rows, t - 1]
                alive[rows] = ids[rows, t] != EOS_ID
            lengths = np.argmax(ids == EOS_ID, axis=1)
            lengths[(ids != EOS_ID).all(axis=1)] = MAX_SENTENCE
            text = [" ".join(vocab[row[:n]]) for row, n in zip(ids.tolist(), lengths.tolist(), strict=True)]
            handles[batch_index % shards].write("\n".join(text) + "\n")
            written += int(lengths.sum())
            batch_index += 1
    finally:
        for handle in handles:
            handle.close()
    os.unlink(training)
    return paths, written


# A child process per build: each starts its own cluster, and its peak memory is its own.
_RAY_CHILD = """
import json, sys
from speechdecode import _ray
from speechdecode._args import peak_memory
from speechdecode.lm.distributed import build
workers, arpa, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
_ray.connect(None, num_cpus=workers, object_store_memory=2 << 30)
report = build(paths, arpa, 5, memory="1G", discount_fallback=None)
print(json.dumps({"report": report.__dict__, "driver_peak": peak_memory()}))
"""


def _run_json(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def run(suite: Suite, quick: bool) -> None:
    words = QUICK_WORDS if quick else int(os.environ.get(WORDS_ENV, DEFAULT_WORDS))
    once = {"warmup": 0, "repeats": 1, "min_seconds": 0}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as work:
        paths, written = sample_corpus(work, words, SHARDS)
        case = f"mkn order {ORDER}, {written / 1e6:.1f}M words"
        anchor_arpa = os.path.join(work, "single.arpa")
        result = {}

        def single():
            command = [sys.executable, "-m", "speechdecode", "lm", "build", "--json", "--text", *paths]
            result.update(_run_json([*command, "-o", str(ORDER), "--arpa", anchor_arpa]))

        suite.add(case, "lm build (1 process)", single, anchor=True, items=written, item_unit="word", settings=once)
        suite.rows[-1]["params"] = {"peak_rss_mb": result["peak_rss_mb"], "ngrams": result["written_ngrams"]}
        for workers in WORKERS:
            arpa = os.path.join(work, f"ray{workers}.arpa")

            def distributed(workers=workers, arpa=arpa):
                child = [sys.executable, "-c", _RAY_CHILD, str(workers), arpa, *paths]
                result.update(_run_json(child))

            impl = f"Ray, {workers} worker{'s' if workers > 1 else ''}"
            suite.add(case, impl, distributed, items=written, item_unit="word", settings=once)
            report = result["report"]
            if not filecmp.cmp(arpa, anchor_arpa, shallow=False):  # streamed: the files are GBs
                raise BenchmarkMismatchError(f"{case}: {impl} wrote an ARPA that differs from lm build's")
            os.unlink(arpa)
            suite.rows[-1]["params"] = {
                "byte_identical": True,
                "partitions": report["partitions"],
                "driver_peak_rss_mb": round(result["driver_peak"] / 2**20, 1),
                "max_partition_rows": max(report["partition_rows"]),
                "task_peak_rss_mb": {k: round(v / 2**20, 1) for k, v in report["task_peak_rss"].items()},
                "task_growth_mb": {k: round(v / 2**20, 1) for k, v in report["task_growth"].items()},
                "shuffled_bytes": report["shuffled_bytes"],
                "stage_seconds": {k: round(v, 2) for k, v in report["seconds"].items()},
            }
        suite.note(
            f"{written} words of sampled text in {SHARDS} shards; one run per row (each minutes long); "
            "the Ray rows start their own local cluster (a few seconds) inside the timed run."
        )
        _decode_cases(suite, work, paths[0], quick, once)


def _decode_cases(suite: Suite, work: str, text: str, quick: bool, once: dict) -> None:
    """Decoding 1 vs 2 Ray workers against one process, on simulated posteriors shards."""
    from speechdecode import _ray
    from speechdecode.decoding import CtcPrefixBeamSearch
    from speechdecode.decoding.distributed import decode_shards
    from speechdecode.decoding.posteriors import save_posteriors
    from speechdecode.graphs import char_lexicon, char_tokens
    from speechdecode.lm.distributed import build
    from speechdecode.testing import CtcPosteriorSimulator

    shards = 24 if quick else DECODE_SHARDS
    with open(text, encoding="utf-8") as handle:
        lines = itertools.islice(handle, shards * UTTERANCES_PER_SHARD * 2)
        sentences = [words[:12] for words in (line.split() for line in lines) if words]
    sentences = sentences[: shards * UTTERANCES_PER_SHARD]
    words = sorted({w for s in sentences for w in s})
    tokens, lexicon = char_tokens(words), char_lexicon(words)
    lm = os.path.join(work, "decode.arpa")
    build([text], lm, 3, inline=True, discount_fallback=None)
    simulator = CtcPosteriorSimulator(len(tokens), blank=0, seed=1, confusion=0.1)
    folder = os.path.join(work, "posteriors")
    os.mkdir(folder)
    for i in range(shards):
        batch = sentences[i * UTTERANCES_PER_SHARD : (i + 1) * UTTERANCES_PER_SHARD]
        labels = [tokens.encode([t for w in s for t in lexicon[w][0].tokens]) for s in batch]
        log_probs, lengths = simulator.simulate(labels)
        save_posteriors(
            os.path.join(folder, f"p{i:04d}.npz"), log_probs, lengths, [f"p{i}u{j}" for j in range(len(batch))]
        )
    symbols = [tokens.symbol(i) for i in range(len(tokens))]
    make = functools.partial(CtcPrefixBeamSearch, symbols, lm=lm, beam=16, num_threads=1)
    case = f"decode {shards} shards"
    utterances = len(sentences)
    outputs = {}

    def run_decode(name: str, **options) -> None:
        out = os.path.join(work, f"decoded-{name}")
        shutil.rmtree(out, ignore_errors=True)
        decode_shards(folder, out, make, **options)
        outputs[name] = {f: pathlib.Path(out, f).read_bytes() for f in sorted(os.listdir(out)) if f.endswith(".jsonl")}

    suite.add(
        case,
        "1 process",
        lambda: run_decode("inline", inline=True),
        anchor=True,
        items=utterances,
        item_unit="utt",
        settings=once,
    )
    _ray.connect(None, num_cpus=2)
    try:
        for workers in (1, 2):
            impl = f"Ray, {workers} worker{'s' if workers > 1 else ''}"
            suite.add(
                case,
                impl,
                lambda w=workers: run_decode(f"ray{w}", workers=w),
                items=utterances,
                item_unit="utt",
                settings=once,
            )
            if outputs[f"ray{workers}"] != outputs["inline"]:
                raise BenchmarkMismatchError(f"{case}: {impl} wrote transcripts that differ from one process's")
            suite.rows[-1]["params"] = {"same_transcripts": True, "shards": shards}
    finally:
        _ray.require_ray().shutdown()
