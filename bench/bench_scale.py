"""Scale benchmarks: the single-process ``lm build`` against the Ray build (1, 2 and 4 workers),
and decoding on Ray (1 vs 2 workers).

* ``mkn order 5, <N> words``: ``speechdecode lm build`` (the anchor) and
  :func:`speechdecode.lm.distributed.build` on a local Ray cluster with 1, 2 and 4 worker
  slots, each in its own child process on the same text shards: wall time, peak RSS of the
  driver and of the largest task process, bytes moved per stage (row params). Every ARPA must
  be byte-identical to the anchor's before a row is kept.
* The corpus is distinct text, not one text repeated: sentences sampled from the trigram
  distribution of the King James Bible + the fortunes package (Debian packages), by
  :func:`sample_corpus`, cut into shards. ``SPEECHDECODE_SCALE_WORDS`` sets its size (default
  100M words, the issue's target; quick mode 200k).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from speechdecode.bench.harness import BenchmarkMismatchError, Suite
from speechdecode.lm.corpora import fortune_sentences, kjv_sentences
from speechdecode.lm.count import count_files
from speechdecode.lm.vocab import BOS_ID, EOS_ID

WORDS_ENV = "SPEECHDECODE_SCALE_WORDS"
DEFAULT_WORDS = 100_000_000
QUICK_WORDS = 200_000
ORDER = 5
SHARDS = 16
WORKERS = (1, 2, 4)
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
            batch = 100_000
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
_ray.connect(None, num_cpus=workers)
report = build(paths, arpa, 5, memory="1G", discount_fallback=None)
print(json.dumps({"report": report.__dict__, "driver_peak": peak_memory()}))
"""


def _run_json(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
        with open(anchor_arpa, "rb") as handle:
            expected = handle.read()
        for workers in WORKERS:
            arpa = os.path.join(work, f"ray{workers}.arpa")

            def distributed(workers=workers, arpa=arpa):
                child = [sys.executable, "-c", _RAY_CHILD, str(workers), arpa, *paths]
                result.update(_run_json(child))

            impl = f"Ray, {workers} worker{'s' if workers > 1 else ''}"
            suite.add(case, impl, distributed, items=written, item_unit="word", settings=once)
            report = result["report"]
            with open(arpa, "rb") as handle:
                if handle.read() != expected:
                    raise BenchmarkMismatchError(f"{case}: {impl} wrote an ARPA that differs from lm build's")
            os.unlink(arpa)
            suite.rows[-1]["params"] = {
                "byte_identical": True,
                "partitions": report["partitions"],
                "driver_peak_rss_mb": round(result["driver_peak"] / 2**20, 1),
                "task_peak_rss_mb": round(report["task_peak_rss"] / 2**20, 1),
                "shuffled_bytes": report["shuffled_bytes"],
                "stage_seconds": {k: round(v, 2) for k, v in report["seconds"].items()},
            }
        suite.note(
            f"{written} words of sampled text in {SHARDS} shards; one run per row (each minutes long); "
            "the Ray rows start their own local cluster (a few seconds) inside the timed run."
        )
