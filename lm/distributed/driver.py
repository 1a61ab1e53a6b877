"""``speechdecode lm build --ray``: modified Kneser-Ney estimated by Ray tasks, written as the
single-process build writes it, byte for byte.

Stages (each a Ray task per shard or partition; data moves between them as Ray objects, which
Ray keeps in its object store and spills to disk; the driver sees only small facts and, at the
end, the ARPA text of one partition and order at a time):

1. ``count``     per text shard: the native counter (its table ``memory`` less COUNT_OVERHEAD,
                 spilling sorted runs), its counts written to temporary files, then yielded in
                 blocks of ``memory`` / BLOCKS_PER_MEMORY bytes (a Ray streaming generator);
2. ``split``     per shard: block by block to global word ids, cut by key (last word, and the
                 word before it where one word ends too many rows) into a temporary file, then
                 yielded one partition's piece at a time;
3. ``merge``     per partition: sum the shards' counts, adjusted counts, count-of-counts, partial
                 context totals (:func:`.partition.merge_partition`);
   driver        global count-of-counts (+ lmplz's quirk) -> discounts; unigram totals; the
                 split words' unigrams;
4. ``contexts``  per partition: sum the context totals sent to it, gamma (:func:`.partition.reduce_contexts`);
5. ``estimate``  per partition: probabilities order by order, joined with the suffix's
                 probability, formatted as ARPA lines (:func:`.partition.estimate_partition`);
   driver        header, then every order's partitions in partition order, into one atomic file.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from speechdecode import _args, _backend
from speechdecode._io import atomic_write
from speechdecode.errors import InputFileError, InvalidArgumentError, SpeechdecodeError
from speechdecode.lm import counting
from speechdecode.lm.counts import WORD_BOUNDARY
from speechdecode.lm.distributed import partition as P
from speechdecode.lm.methods._common import prune_thresholds
from speechdecode.lm.methods.kneser_ney import (
    LMPLZ_FALLBACK,
    DiscountFallbackWarning,
    discounts_from_tallies,
    fallback_discounts,
    fallback_needed,
)
from speechdecode.lm.vocab import Vocabulary

__all__ = ["BuildReport", "UnreadableShardWarning", "build"]

# Bytes a partition task (merge, contexts, estimate) grows by per n-gram row it receives: at most
# 165 measured (the merge; 2.1M sampled words, order 5, 4-34 partitions): the default partition
# count keeps this times a partition's rows within ``memory``.
BYTES_PER_NGRAM = 256
# A word ending more rows than a partition may hold is cut by its second-to-last words: each
# count task reports its rows per (last, second-to-last) pair for the words that end at least
# 1 / PAIR_SHARE of a partition's rows over the number of shards in it (their rows in other shards
# are placed with the word's unigram, a partition's cut words off by at most 2 / PAIR_SHARE of
# its rows, which the packing leaves free).
PAIR_SHARE = 16
# The count tasks pass their counts on, and the split tasks read them, in blocks of
# memory / BLOCKS_PER_MEMORY bytes (MIN_BLOCK_BYTES at least): splitting a block holds it about 4
# times over (global ids, partition numbers, their sort, the sorted rows).
BLOCKS_PER_MEMORY = 16
MIN_BLOCK_BYTES = 1 << 16
# What a count task holds beside the native counter's table (its budget is memory less this):
# the text reader's buffers (~10 MiB), the counts' output buffers (32,768 rows per order: 3.3 MB
# at order 5) and the vocabulary (a few MiB for 10^5 words).
COUNT_OVERHEAD = 20 << 20
# The context shuffle moves P x P objects each way: beyond this many partitions, scheduling them
# costs more than the partitions save (raise --memory instead).
MAX_PARTITIONS = 4096
# The native ARPA writer's gzip layout (csrc/lm/arpa_writer.cc): kRowsPerChunk rows per member,
# each member a complete gzip stream (deflate's windowBits 15, + 16 for the gzip wrapper).
ROWS_PER_MEMBER = 1 << 15
GZIP_WBITS = 15 + 16


class UnreadableShardWarning(UserWarning):
    """A shard that could not be read was left out (``skip_unreadable=True``)."""


@dataclass
class BuildReport:
    """What a distributed build did: sizes, timings and data moved per stage."""

    arpa: str
    order: int
    partitions: int
    vocabulary: int
    tokens: int
    ngrams: list[int]
    written_ngrams: list[int]
    seconds: dict[str, float] = field(default_factory=dict)
    shuffled_bytes: dict[str, int] = field(default_factory=dict)
    # Per stage, the largest of its tasks': peak resident memory (VmHWM, reset as each task starts:
    # Ray runs many tasks in one worker process; it includes the worker's ~170 MiB of code and
    # the object-store pages it maps), and growth: that peak less the private RSS the task
    # started with and the object-store pages mapped when its stretch began (what the task itself
    # allocated and touched, its inputs included; a streaming task's yields start new stretches:
    # see _Meter). Inline: no reset, no growth.
    task_peak_rss: dict[str, int] = field(default_factory=dict)
    task_growth: dict[str, int] = field(default_factory=dict)
    partition_rows: list[int] = field(default_factory=list)  # n-gram rows sent to each partition
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable shards left out (skip_unreadable)


def build(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    arpa: str | os.PathLike,
    order: int,
    *,
    prune: Sequence[int] | None = None,
    discount_fallback: float | Sequence[float] | None = LMPLZ_FALLBACK,
    float64: bool = False,
    units: str = "word",
    word_boundary: str = WORD_BOUNDARY,
    limit_vocab: str | os.PathLike | Iterable[str] | None = None,
    partitions: int | None = None,
    memory: int | str = "1G",
    tmp_dir: str | os.PathLike | None = None,
    encoding_errors: str = "strict",
    address: str | None = None,
    skip_unreadable: bool = False,
    inline: bool = False,
) -> BuildReport:
    """Count text shards and write their modified Kneser-Ney model as an ARPA file, on Ray.

    The file is byte for byte what ``count_files`` + ``estimate(counts, "mkn")`` +
    ``write_arpa`` write in one process (and so what KenLM's ``lmplz`` writes), whatever the
    number of partitions. A ``.gz`` path gets the same text, gzip-compressed.

    Args:
        paths: text shards (plain or gzip), one sentence per line, counted as one corpus in the
            order given; each is counted by one task.
        arpa: the output; written atomically (no partial file on any failure).
        order, prune, discount_fallback, float64: as :func:`speechdecode.lm.estimate.estimate_arpa`
            with ``"mkn"``: a fallback discount warns with ``DiscountFallbackWarning``, or, with
            ``discount_fallback=None`` (lmplz's rule), fails before anything is written.
        units, word_boundary, limit_vocab, encoding_errors: as :func:`speechdecode.lm.counting.count_files`.
        partitions: how many partitions (ranges of keys: last words, and within a word that
            ends more than 1 / PAIR_SHARE of a partition's rows in a shard, second-to-last words;
            cut at equal n-gram rows) estimate the model; partitions may be empty. Default:
            consecutive keys packed into partitions of at most ``memory`` / BYTES_PER_NGRAM
            rows (two per worker slot at least): a word that ends more rows than that is cut
            between second-to-last words; a pair of last words that alone ends more gets its
            own partition and a warning naming it.
        memory: per task: the memory Ray reserves for each task (so no more tasks run at once
            than fit) and what each task holds: a count task's table gets ``memory`` less
            COUNT_OVERHEAD (20 MiB, its buffers) and spills beyond it to ``tmp_dir``; counts
            move in blocks of ``memory`` / BLOCKS_PER_MEMORY bytes; the default partitions
            bound the partition tasks (but not below one pair of last words).
        tmp_dir: where the count tasks spill sorted runs and write their counts, and the split
            tasks their partitions' rows (default: the system's temporary folder); the files are
            unlinked as they are created. A failed write (a full disk) raises a RuntimeError
            naming the stage, the shard and the folder.
        address: the Ray cluster (``host:port``, ``ray://...``, ``"auto"``); None starts a
            local one on loopback (:func:`speechdecode._ray.connect`); an existing ``ray.init``
            is used as it is.
        skip_unreadable: leave out a shard that cannot be read (missing, invalid UTF-8 under
            ``"strict"``, ``<s>`` in the text, ...) with an :class:`UnreadableShardWarning`
            naming it, instead of failing; the model is then that of the other shards.
        inline: run every task in this process, one after another, without Ray (the same
            computation; for debugging and tests).

    Returns:
        a :class:`BuildReport`.

    Raises:
        InvalidArgumentError, InputFileError: as ``count_files`` and ``estimate`` (an unreadable
            shard is named; nothing is written).
        BackendUnavailableError: Ray is not installed (names the extra), or a cluster that does
            not answer (:class:`speechdecode._ray.ClusterUnavailableError`).
    """
    started = time.perf_counter()
    options = counting.count_options(
        order,
        units=units,
        word_boundary=word_boundary,
        limit_vocab=limit_vocab,
        memory=memory,
        tmp_dir=None if tmp_dir is None else os.path.abspath(tmp_dir),  # workers may have another cwd
        encoding_errors=encoding_errors,
    )
    order, memory_bytes = options.order, options.memory_bytes
    partitions = None if partitions is None else _args.integer(partitions, "partitions", 1, MAX_PARTITIONS)
    float64 = _args.boolean(float64, "float64")
    thresholds = prune_thresholds(prune, order, unigrams=True)
    fallback = fallback_discounts(LMPLZ_FALLBACK if discount_fallback is None else discount_fallback)
    names = [os.path.abspath(n) for n in _shard_names(paths, skip_unreadable)]  # workers may run elsewhere
    real = np.float64 if float64 else np.float32

    _backend.native()  # the counter and the ARPA writer are native: fail here if it is not built
    runner = _Runner(address, memory_bytes, inline)
    report = BuildReport(os.fspath(arpa), order, 0, 0, 0, [], [])
    clock = _Clock(report.seconds)

    block_bytes = max(MIN_BLOCK_BYTES, memory_bytes // BLOCKS_PER_MEMORY)
    budget = max(1, memory_bytes // BYTES_PER_NGRAM)  # rows a partition task may receive
    pair_rows = max(1, budget // (PAIR_SHARE * len(names)))  # a shard's words ending this many: by pairs
    counted = runner.collect(
        [runner.stream(_count_task, n, options, skip_unreadable, block_bytes, pair_rows) for n in names]
    )
    shard_facts = runner.get([c[-1] for c in counted])
    report.shuffled_bytes["count"] = _tally(report, "count", shard_facts)
    for f in shard_facts:
        if "skipped" in f:
            report.skipped.append(f["skipped"])
            warnings.warn(f"skipped an unreadable shard: {f['skipped']}", UnreadableShardWarning, stacklevel=2)
    counted = [c[:-1] for c, f in zip(counted, shard_facts, strict=True) if "skipped" not in f]
    shard_facts = [f for f in shard_facts if "skipped" not in f]
    clock.lap("count")

    vocab = Vocabulary()
    global_ids = [np.array([vocab.add(w) for w in f["words"]], dtype=np.int32) for f in shard_facts]
    vocab_size = len(vocab)
    report.vocabulary, report.tokens = vocab_size, sum(f["tokens"] for f in shard_facts)
    if report.tokens == 0:
        raise InvalidArgumentError("paths", "a corpus with at least one token", f"none in {', '.join(names)}")
    keys, mass = _key_mass(global_ids, shard_facts, vocab_size)
    if partitions is None:  # within the budget, and two per worker slot at least
        slack = 2 * len(names) * (pair_rows - 1)  # a cut word's rows placed with its unigram
        target = min(max(1, budget - slack), -(-int(mass.sum()) // (2 * runner.slots)))
        bounds = _pack(keys, mass, target, vocab_size)
    else:
        bounds = _bounds(keys, mass, partitions, vocab_size)
    parts = len(bounds) - 1
    report.partitions = parts

    split = runner.collect(
        [
            runner.stream(_split_task, blocks, ids, bounds, vocab_size, order, options.tmp_dir, name)
            for blocks, ids, name in zip(counted, global_ids, [f["path"] for f in shard_facts], strict=True)
        ]
    )
    del counted
    split_facts = runner.get([s[-1] for s in split])
    report.shuffled_bytes["split"] = _tally(report, "split", split_facts)
    report.partition_rows = np.sum([f["rows"] for f in split_facts], axis=0, dtype=np.int64).tolist()
    if partitions is None and max(report.partition_rows) > budget:
        heaviest = int(np.argmax(mass))
        last, second = divmod(int(keys[heaviest]), vocab_size + 1)
        name = vocab.words[last] if second == 0 else f"{vocab.words[second - 1]} {vocab.words[last]}"
        message = (
            f"a partition receives {max(report.partition_rows):,} n-gram rows, more than the "
            f"{budget:,} that memory={memory_bytes:,} bytes allows ({BYTES_PER_NGRAM} bytes each): "
            f"{name!r} alone ends {int(mass[heaviest]):,}; its tasks may use more than memory"
        )
        report.warnings.append(message)
        warnings.warn(message, stacklevel=2)
    clock.lap("split")

    merged = [
        runner.submit(
            _merge_task,
            parts + 2,
            order,
            int(bounds[p]),
            int(bounds[p + 1]),
            vocab_size,
            thresholds,
            bounds,
            *[s[p] for s in split],
        )
        for p in range(parts)
    ]
    del split
    merge_facts = runner.get([m[0] for m in merged])
    report.shuffled_bytes["contexts"] = _tally(report, "merge", merge_facts)
    clock.lap("merge")

    split_adjusted, split_unigrams = P.split_unigrams(np.concatenate([f["split"] for f in merge_facts]), thresholds)
    tallies = [sum(f["count_of_counts"][n] for f in merge_facts) for n in range(order)]
    tallies[0] = tallies[0] + split_unigrams["count_of_counts"]
    if not float64:
        P.apply_quirk(tallies, [f["quirk"] for f in merge_facts], split_adjusted, split_unigrams["raw"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DiscountFallbackWarning)
        discounts = [np.asarray(d, dtype=real) for d in discounts_from_tallies(tallies, fallback, float64)]
    for w in caught:
        if discount_fallback is None:
            raise fallback_needed(str(w.message).split("; using the fallback")[0])
        report.warnings.append(str(w.message))
        warnings.warn(w.message, stacklevel=2)
    kept = [sum(f["kept"][n] for f in merge_facts) for n in range(order)]
    kept[0] += split_unigrams["kept"]
    unigram_totals = sum(f["unigram_totals"] for f in merge_facts) + split_unigrams["unigram_totals"]
    gamma = P.gammas(discounts[0], unigram_totals[None, :], real)[0]
    uniform = real(1.0 / float(real(kept[0] - 1)))
    report.ngrams = [sum(f["ngrams"][n] for f in merge_facts) for n in range(order)]
    report.written_ngrams = kept

    reduced = [
        runner.submit(_contexts_task, parts + 2, merged[p][1], discounts, real, *[m[p + 2] for m in merged])
        for p in range(parts)
    ]
    report.shuffled_bytes["join"] = _tally(report, "contexts", runner.get([r[0] for r in reduced]))
    clock.lap("contexts")

    words = runner.put(list(vocab.words))
    unigram_context = (int(unigram_totals[P.TOTAL]), gamma, uniform)
    estimated = [
        runner.submit(
            _estimate_task,
            order + 1,
            merged[p][1],
            discounts,
            unigram_context,
            split_adjusted,
            real,
            words,
            reduced[p][1],
            *[r[p + 2] for r in reduced],
        )
        for p in range(parts)
    ]
    del merged, reduced
    report.shuffled_bytes["arpa"] = _tally(report, "estimate", runner.get([e[0] for e in estimated]))
    clock.lap("estimate")

    _write(os.fspath(arpa), kept, [e[1:] for e in estimated], runner)
    clock.lap("write")
    report.seconds["total"] = time.perf_counter() - started
    return report


def _shard_names(paths, skip_unreadable: bool) -> list[str]:
    """The shards as given; missing ones fail here unless they are to be skipped (by their task)."""
    if not skip_unreadable:
        return counting.input_files(paths)
    names = [paths] if isinstance(paths, str | bytes | os.PathLike) else list(paths)
    if not names:
        raise InvalidArgumentError("paths", "at least one file", "none")
    return [os.fsdecode(n) for n in names]


def _tally(report: BuildReport, stage: str, facts: list[dict]) -> int:
    """Bytes the tasks of one stage passed on; records the largest peak memory of its tasks."""
    report.task_peak_rss[stage] = max([0, *(f["peak"] for f in facts)])
    report.task_growth[stage] = max([0, *(f["growth"] for f in facts)])
    return sum(f["bytes"] for f in facts)


def _write(path: str, kept: list[int], texts: list[list], runner: _Runner) -> None:
    """The header, then each order's text from every partition in turn (one in memory at a time)."""
    with atomic_write(path, "wb") as raw:
        out = _GzipMembers(raw) if path.endswith(".gz") else _Plain(raw)
        out.piece(b"\\data\\\n" + "".join(f"ngram {n}={k}\n" for n, k in enumerate(kept, start=1)).encode())
        for n in range(len(kept)):
            out.piece(f"\n\\{n + 1}-grams:\n".encode())
            for chunks in texts:
                out.rows(runner.get(chunks[n]))
            out.end_rows()
        out.piece(b"\n\\end\\\n")


class _Plain:
    def __init__(self, raw):
        self.raw = raw

    def piece(self, data: bytes) -> None:
        self.raw.write(data)

    rows = piece

    def end_rows(self) -> None:
        pass


class _GzipMembers:
    """The single-process writer's gzip layout (csrc/lm/arpa_writer.cc), so the ``.gz`` file is
    byte for byte the one ``lm build`` writes: each piece of text (the header, a section title,
    the end) and each run of ``ROWS_PER_MEMBER`` rows of an order is one gzip member, compressed
    by zlib at its default level with a header of mtime 0, no file name and OS Unix."""

    def __init__(self, raw):
        self.raw, self.pending, self.lines = raw, [], 0

    def piece(self, data: bytes) -> None:
        self.raw.write(zlib.compress(data, zlib.Z_DEFAULT_COMPRESSION, GZIP_WBITS))

    def rows(self, data: bytes) -> None:
        """Lines of the current order, in order; a member is written each ROWS_PER_MEMBER lines."""
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
        start = 0
        for cut in ends[ROWS_PER_MEMBER - self.lines - 1 :: ROWS_PER_MEMBER]:
            self.pending.append(data[start : cut + 1])
            self.piece(b"".join(self.pending))
            self.pending, self.lines, start = [], 0, int(cut) + 1
        if start < len(data):
            self.pending.append(data[start:])
            self.lines += int(np.count_nonzero(ends >= start))

    def end_rows(self) -> None:
        if self.pending:
            self.piece(b"".join(self.pending))
        self.pending, self.lines = [], 0


def _key_mass(global_ids: list[np.ndarray], shard_facts: list[dict], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram rows of all shards by key (:func:`.partition.keys_of`), ascending keys and
    their rows: one entry per word (its unigram key) and, for the words a shard reported by
    pairs, one per (last, second-to-last) pair; a word's entry holds its rows not reported by pair."""
    ends = np.zeros(vocab_size, dtype=np.int64)  # rows (all shards, all orders) per last word
    pair_keys, pair_mass = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for ids, f in zip(global_ids, shard_facts, strict=True):
        np.add.at(ends, ids, f["ends"])
        last, second, rows = f["pairs"]
        pair_keys.append(P.keys_of(np.column_stack([ids[second], ids[last]]), vocab_size))
        pair_mass.append(rows)
    pair_keys, where = np.unique(np.concatenate(pair_keys), return_inverse=True)
    pair_mass = np.bincount(where, weights=np.concatenate(pair_mass).astype(np.float64), minlength=len(pair_keys))
    pair_mass = pair_mass.astype(np.int64)
    np.subtract.at(ends, pair_keys // (vocab_size + 1), pair_mass)
    keys = np.concatenate([np.arange(vocab_size, dtype=np.int64) * (vocab_size + 1), pair_keys])
    mass = np.concatenate([ends, pair_mass])
    order = np.argsort(keys, kind="stable")
    return keys[order], mass[order]


def _bounds(keys: np.ndarray, mass: np.ndarray, parts: int, vocab_size: int) -> np.ndarray:
    """Partition boundaries over keys with about equal ``mass`` (rows per key entry) in each."""
    cumulative = np.cumsum(mass)
    targets = cumulative[-1] * np.arange(1, parts) / parts
    inner = np.searchsorted(cumulative, targets, side="right")
    return _key_bounds(keys, np.concatenate([[0], inner, [len(mass)]]), vocab_size)


def _pack(keys: np.ndarray, mass: np.ndarray, target: int, vocab_size: int) -> np.ndarray:
    """Partition boundaries over keys, each partition as many consecutive entries as fit in
    ``target`` (an entry heavier than that alone); ``target`` doubles until at most MAX_PARTITIONS."""
    cumulative = np.cumsum(mass)
    while True:
        bounds, start = [0], 0
        while start < len(mass):
            before = int(cumulative[start - 1]) if start else 0
            end = max(start + 1, int(np.searchsorted(cumulative, before + target, side="right")))
            bounds.append(min(end, len(mass)))
            start = bounds[-1]
        if len(bounds) - 1 <= MAX_PARTITIONS:
            return _key_bounds(keys, np.array(bounds), vocab_size)
        target *= 2


def _key_bounds(keys: np.ndarray, entries: np.ndarray, vocab_size: int) -> np.ndarray:
    """Boundaries between key entries as keys (the last: past every key)."""
    return np.append(keys, vocab_size * (vocab_size + 1))[entries].astype(np.int64)


class _Clock:
    def __init__(self, seconds: dict):
        self.seconds, self.last = seconds, time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self.last
        self.last = now


class _Runner:
    """Runs the stage functions as Ray tasks, or in this process when ``inline``."""

    def __init__(self, address: str | None, memory_bytes: int, inline: bool):
        self.ray = None
        self.slots = 1
        self.options = {}
        if inline:
            return
        from speechdecode import _ray

        self.ray = _ray.connect(address)
        self.slots = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        available = self.ray.cluster_resources().get("memory", 0)
        if memory_bytes and available:
            self.options["memory"] = min(memory_bytes, int(available))

    def submit(self, function, returns: int, *args):
        if self.ray is None:
            return function(*args)
        remote = self.ray.remote(_measured).options(num_returns=returns, name=function.__name__, **self.options)
        return remote.remote(function, *args)

    def stream(self, function, *args):
        """A generator stage function as a Ray streaming generator task: each value it yields is
        stored as it comes (not all held until the task ends). :meth:`collect` lists them."""
        if self.ray is None:
            return list(function(*args))
        remote = self.ray.remote(_measured_stream).options(name=function.__name__, **self.options)
        return remote.remote(function, *args)

    def collect(self, streams: list) -> list[list]:
        """The values (refs on Ray) each of :meth:`stream`'s tasks yielded, in order."""
        return [list(s) for s in streams]

    def put(self, value):
        return value if self.ray is None else self.ray.put(value)

    def get(self, refs):
        if self.ray is None:
            return refs
        from speechdecode._ray import unwrap

        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as exc:
            raise unwrap(exc) from None


def _fetch(value):
    """A value a task was given inside a list (so Ray did not resolve it): itself when inline,
    what it refers to when it is a Ray object reference."""
    ray = sys.modules.get("ray")
    return ray.get(value) if ray is not None and isinstance(value, ray.ObjectRef) else value


class _Meter:
    """The peak memory of the task this worker runs, its own.

    Ray runs many tasks in one worker process: as a task starts, the heap earlier tasks freed is
    given back to the system (glibc's malloc_trim) and VmHWM is reset to the current RSS (5
    written to /proc/self/clear_refs). The task's growth is its peak less its private resident
    memory at the start (VmRSS - RssShmem) and less the object-store pages (shared memory,
    RssShmem) mapped when the current stretch began: a generator task starts a new stretch after
    each value it yields (Ray then writes the value into the object store: the store's memory,
    which Ray bounds and spills, not the task's). Object-store pages a task reads within a stretch
    count as its growth (an upper bound). Where the reset fails, the peak is the process's and
    the growth an upper bound."""

    def __init__(self):
        self.running, self.private, self.shared, self.peak, self.growth = False, 0, 0, 0, 0

    def start(self) -> None:
        self.running = True
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass
        rss, shared = _status("VmRSS", "RssShmem")
        self.private, self.peak, self.growth = rss - shared, 0, 0
        self.stretch()

    def stretch(self) -> None:
        """A new stretch begins: VmHWM reset, the object-store pages mapped now noted (in a Ray
        worker only: inline, the driver's own peak is left alone)."""
        if not self.running:
            return
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            pass
        (self.shared,) = _status("RssShmem")

    def lap(self) -> None:
        """The stretch so far counts towards the peak and the growth."""
        (peak,) = _status("VmHWM")
        self.peak = max(self.peak, peak)
        if self.running:  # inline (in the driver, no reset): no growth
            self.growth = max(self.growth, peak - self.shared - self.private)


_METER = _Meter()


def _measured(function, *args):
    """``function(*args)`` in a Ray worker, its peak memory its own (:class:`_Meter`)."""
    _METER.start()
    return function(*args)


def _measured_stream(function, *args):
    """``function(*args)``, a generator, in a Ray worker: yields what it yields (:class:`_Meter`)."""
    _METER.start()
    for value in function(*args):
        _METER.lap()
        yield value
        _METER.stretch()


def _status(*fields: str) -> list[int]:
    """Fields of /proc/self/status (VmRSS, VmHWM, RssShmem, ...), in bytes (0 where absent)."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in fields:
                found[name] = int(value.split()[0]) * 1024
    return [found.get(f, 0) for f in fields]


def _facts(moved: int, **facts) -> dict:
    """A task's report to the driver: bytes it passes on, its peak and growth (:class:`_Meter`)."""
    _METER.lap()
    return {"bytes": int(moved), "peak": _METER.peak, "growth": _METER.growth, **facts}


class _SpillFile:
    """A task's temporary file in ``folder``, unlinked as it is created (nothing is left behind,
    even by a killed worker): arrays appended, read back by offset. A failure to create or write
    it (a full disk) is raised as a RuntimeError naming the stage, what the task works on and
    the folder."""

    def __init__(self, folder: str, stage: str, subject: str):
        self.folder, self.stage, self.subject, self.size = folder, stage, subject, 0
        with self.named():
            self.handle = tempfile.TemporaryFile(dir=folder, prefix=f"speechdecode-{stage}-")

    @contextlib.contextmanager
    def named(self):
        """OSError (and the native counter's RuntimeError) as an error naming stage and folder."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, SpeechdecodeError):
                raise
            reason = f"cannot write: {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else str(exc)
            where = f"{self.stage} stage ({self.subject}), temporary files in {self.folder}"
            raise RuntimeError(f"{where}: {reason}") from exc

    def fileno(self) -> int:
        return self.handle.fileno()

    def append(self, array: np.ndarray) -> int:
        """Writes ``array``'s bytes at the end; returns their offset."""
        offset = self.size
        with self.named():
            self.handle.write(np.ascontiguousarray(array).data)
        self.size += array.nbytes
        return offset

    def read(self, offset: int, out: np.ndarray) -> None:
        """Fills ``out`` (C-contiguous) with the bytes from ``offset``."""
        with self.named():
            self.handle.flush()
        if os.preadv(self.handle.fileno(), [out.reshape(-1).view(np.uint8)], offset) != out.nbytes:
            raise RuntimeError(f"{self.stage} stage ({self.subject}): a temporary file in {self.folder} ended early")

    def close(self) -> None:
        self.handle.close()


def _count_task(path, options, skip, block_bytes, pair_rows):
    """Counts one shard under ``options.memory_bytes`` (the native counter spills sorted runs and
    writes its counts to temporary files), then yields them in blocks ``(n, ids, counts)`` of
    about ``block_bytes``, order by order, and last its facts: with its rows per last word and,
    for the words that may end ``pair_rows`` rows or more (by their count), per (last,
    second-to-last) pair."""
    folder = options.tmp_dir or tempfile.gettempdir()
    memory = options.memory_bytes  # the table gets what COUNT_OVERHEAD leaves, if at least its minimum
    table = max(min(memory, _backend.native().count_min_memory(options.order)), memory - COUNT_OVERHEAD)
    options = dataclasses.replace(options, tmp_dir=folder, memory_bytes=table)
    files = []
    try:
        for _ in range(2 * options.order):
            files.append(_SpillFile(folder, "count", path))
        try:
            with files[0].named():
                vocab, rows, tokens = counting.count_native_to([path], options, [f.fileno() for f in files])
        except InputFileError as exc:
            if not skip:
                raise
            yield _facts(0, skipped=str(exc), path=path)
            return

        def blocks(n: int):
            grams, counts = files[2 * n - 2], files[2 * n - 1]
            step = max(1, block_bytes // (4 * n + 8))
            for first in range(0, rows[n - 1], step):
                size = min(step, rows[n - 1] - first)
                ids, values = np.empty((size, n), dtype=np.int32), np.empty(size, dtype=np.int64)
                grams.read(4 * n * first, ids)
                counts.read(8 * first, values)
                yield ids, values

        span = len(vocab)
        ends, unigrams = np.zeros(span, dtype=np.int64), np.zeros(span, dtype=np.int64)
        pairs, pair_count = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)  # second + span * last
        moved = 0
        for n in range(1, options.order + 1):
            if n == 2:  # a word counted c times ends at most 1 + (order - 1) c rows: the others, fewer
                heavy = (options.order - 1) * unigrams + 1 >= pair_rows
            for ids, values in blocks(n):
                ends += np.bincount(ids[:, -1], minlength=span)
                if n == 1:
                    unigrams[ids[:, 0]] = values
                else:
                    chosen = ids[heavy[ids[:, -1]]]
                    found, times = np.unique(chosen[:, -1].astype(np.int64) * span + chosen[:, -2], return_counts=True)
                    pairs, where = np.unique(np.concatenate([pairs, found]), return_inverse=True)
                    pair_count = np.bincount(where, weights=np.concatenate([pair_count, times]), minlength=len(pairs))
                    pair_count = pair_count.astype(np.int64)
                moved += ids.nbytes + values.nbytes
                yield n, ids, values
        last, second = np.divmod(pairs, span)
        yield _facts(moved, words=vocab.words, tokens=tokens, ends=ends, pairs=(last, second, pair_count), path=path)
    finally:
        for f in files:
            f.close()


def _split_task(blocks, global_ids, bounds, vocab_size, order, tmp_dir, path):
    """One shard's counted blocks to global word ids, cut by the partition of their key
    (:func:`.partition.keys_of`): yields each partition's :class:`.partition.Piece` in turn, then
    the facts (with the rows sent to each partition). The blocks are
    read one at a time; each one's rows go to a temporary file by partition, and a piece is read
    back from there when it is yielded."""
    parts = len(bounds) - 1
    # per partition and order: (offset of the rows, offset of the counts, row count) of each segment
    where = [[[] for _ in range(order)] for _ in range(parts)]
    spill = _SpillFile(tmp_dir or tempfile.gettempdir(), "split", path)
    try:
        for block in blocks:
            n, ids, counts = _fetch(block)
            rows = global_ids[ids]
            part = P.partition_of(bounds, P.keys_of(rows, vocab_size))
            by_part = np.argsort(part, kind="stable")
            cuts = np.searchsorted(part[by_part], np.arange(parts + 1))
            rows, counts = rows[by_part], counts[by_part]
            for p in np.flatnonzero(np.diff(cuts)):
                a, b = cuts[p], cuts[p + 1]
                where[p][n - 1].append((spill.append(rows[a:b]), spill.append(counts[a:b]), int(b - a)))
            del n, ids, counts, rows, part, by_part, block
            _METER.lap()  # each block's object-store pages in its own stretch
            _METER.stretch()
        moved, sent = 0, np.zeros(parts, dtype=np.int64)
        for p in range(parts):
            piece = P.Piece([], [])
            for n in range(1, order + 1):
                segments = where[p][n - 1]
                rows = np.empty((sum(k for _, _, k in segments), n), dtype=np.int32)
                counts = np.empty(len(rows), dtype=np.int64)
                done = 0
                for at_rows, at_counts, k in segments:
                    spill.read(at_rows, rows[done : done + k])
                    spill.read(at_counts, counts[done : done + k])
                    done += k
                piece.rows.append(rows)
                piece.counts.append(counts)
            moved += piece.nbytes
            sent[p] = sum(len(r) for r in piece.rows)
            yield piece
            del piece
        yield _facts(moved, rows=sent)
    finally:
        spill.close()


def _merge_task(order, key_lo, key_hi, vocab_size, thresholds, bounds, *pieces):
    facts, part, outgoing = P.merge_partition(list(pieces), order, key_lo, key_hi, vocab_size, thresholds, bounds)
    return (_facts(sum(r.nbytes + t.nbytes for q in outgoing for r, t in q), **facts), part, *outgoing)


def _contexts_task(part, discounts, real, *incoming):
    own, *aligned = P.reduce_contexts(part, discounts, real, *incoming)
    return (_facts(sum(t.nbytes + g.nbytes for q in aligned for t, g in q)), own, *aligned)


def _estimate_task(part, discounts, unigram, split, real, words, own, *aligned):
    rows, log10_probs, backoffs = P.estimate_partition(part, discounts, unigram, split, real, own, *aligned)
    columns = zip(rows, log10_probs, backoffs, strict=True)
    texts = [_arpa_lines(words, n, part.order, *c) for n, c in enumerate(columns, start=1)]
    return (_facts(sum(len(t) for t in texts)), *texts)


def _arpa_lines(words: list[str], n: int, order: int, rows, log10_probs, backoffs) -> bytes:
    """The lines of order ``n``'s n-grams ``rows``, exactly as the ARPA writer prints them.

    The native ARPA writer formats them (a model whose only n-grams are these, written to a
    memory file, of which the section's lines are kept): the code that writes the single-process file.
    """
    if len(rows) == 0:
        return b""
    ngrams = [np.zeros((0, k), dtype=np.int32) for k in range(1, order + 1)]
    probs = [np.zeros(0) for _ in range(order)]
    backs = [np.zeros(0) for _ in range(order)]
    ngrams[n - 1], probs[n - 1], backs[n - 1] = rows, log10_probs, backoffs
    fd = os.memfd_create("arpa-lines")
    try:
        _backend.native().write_arpa(fd, b"<partition>", False, words, ngrams, probs, backs, 1)
        data = os.pread(fd, os.lseek(fd, 0, os.SEEK_END), 0)
    finally:
        os.close(fd)
    begin = data.index(f"\n\\{n}-grams:\n".encode()) + len(f"\n\\{n}-grams:\n")
    return data[begin : data.index(b"\n\\", begin)]  # up to the empty line before the next section
