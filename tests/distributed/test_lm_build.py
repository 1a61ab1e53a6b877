"""The distributed modified Kneser-Ney build, run inline (every stage in this process): its ARPA
is byte for byte the single-process build's (count_files + estimate + write_arpa) and lmplz's."""

from __future__ import annotations

import gzip
import os
import pickle
import socket
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest

from speechdecode import _ray
from speechdecode._args import peak_memory
from speechdecode._backend import native
from speechdecode._ray import ClusterUnavailableError
from speechdecode.errors import BackendUnavailableError, InputFileError, InvalidArgumentError
from speechdecode.lm.arpa import write_arpa
from speechdecode.lm.counting import count_files
from speechdecode.lm.distributed import UnreadableShardWarning, build
from speechdecode.lm.distributed.driver import BYTES_PER_NGRAM
from speechdecode.lm.distributed.partition import Piece, merge_partition, sort_keys
from speechdecode.lm.estimate import estimate, estimate_arpa
from speechdecode.lm.methods.kneser_ney import DiscountFallbackWarning
from speechdecode.lm.vocab import EOS_ID

LMPLZ = "tests/data/lmplz"
# Small random corpora often need the fallback discounts (both builds use them alike).
pytestmark = pytest.mark.filterwarnings("ignore::speechdecode.lm.methods.kneser_ney.DiscountFallbackWarning")


def random_shards(folder, seed: int, sizes: list[int], vocab: int = 60) -> list[str]:
    """Text shards of Zipf-distributed words, ``sizes[i]`` lines each (0: an empty file); some
    lines empty, lengths 0..11, the last line of each file without its newline."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab + 1)
    weights /= weights.sum()
    paths = []
    for i, size in enumerate(sizes):
        lines = []
        for _ in range(size):
            words = rng.choice(vocab, size=int(rng.integers(0, 12)), p=weights)
            lines.append(" ".join(f"w{w}" for w in words))
        path = folder / f"shard{i}.txt"
        path.write_text("\n".join(lines))
        paths.append(str(path))
    return paths


def zipf_shards(folder, seed: int, lines: int, shards: int, vocab: int) -> list[str]:
    """``shards`` files of ``lines`` lines of Zipf words each (vectorized: large inputs quickly)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab + 1)
    names = np.array([f"w{i}" for i in range(vocab)])
    paths = []
    for i in range(shards):
        lengths = rng.integers(0, 12, size=lines)
        words = names[rng.choice(vocab, size=int(lengths.sum()), p=weights / weights.sum())]
        ends = np.cumsum(lengths)
        path = folder / f"big{i}.txt"
        path.write_text("\n".join(" ".join(words[e - n : e]) for n, e in zip(lengths, ends, strict=True)) + "\n")
        paths.append(str(path))
    return paths


def single_process(paths, out, order, *, limit_vocab=None, **options) -> bytes:
    counts = count_files(paths, order, limit_vocab=limit_vocab)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        write_arpa(out, estimate(counts, "mkn", **options))
    return out.read_bytes()


@pytest.mark.parametrize(
    ("order", "prune", "partitions"),
    [
        (1, None, 1),
        (1, [1], 3),
        (2, None, 2),
        (2, [0, 1], 5),
        (3, None, 1),
        (3, [0, 1, 1], 4),
        (3, [1, 1, 2], 13),
        (4, None, 7),
        (4, [0, 0, 1, 2], 2),
        (5, None, 3),
        (5, [0, 1, 1, 1, 3], 97),
    ],
)
def test_random_corpus_matches_single_process(tmp_path, order, prune, partitions):
    paths = random_shards(tmp_path, seed=order * 100 + partitions, sizes=[37, 0, 1, 211, 5])
    expected = single_process(paths, tmp_path / "single.arpa", order, prune=prune)
    report = build(paths, tmp_path / "dist.arpa", order, prune=prune, partitions=partitions, inline=True)
    assert (tmp_path / "dist.arpa").read_bytes() == expected
    assert report.partitions == partitions
    assert report.written_ngrams == [int(line.split("=")[1]) for line in expected.decode().splitlines()[1 : order + 1]]


def test_more_partitions_than_words_leaves_some_empty(tmp_path):
    paths = random_shards(tmp_path, seed=5, sizes=[50, 3], vocab=6)
    expected = single_process(paths, tmp_path / "single.arpa", 3)
    build(paths, tmp_path / "dist.arpa", 3, partitions=40, inline=True)  # 9 words: most partitions empty
    assert (tmp_path / "dist.arpa").read_bytes() == expected


@pytest.mark.parametrize(("order", "name"), [(2, "o2"), (3, "o3"), (5, "o5"), (3, "o3.prune11"), (4, "o4.prune123")])
def test_lmplz_oracle(tmp_path, order, name):
    """The files KenLM's lmplz wrote for 400 KJV verses (tests/data/lmplz), from 3 shards."""
    with open(f"{LMPLZ}/kjv400.txt", encoding="utf-8") as handle:
        lines = handle.read().splitlines(keepends=True)
    cuts = [0, 1, 150, len(lines)]  # a one-line shard and two uneven ones
    paths = []
    for i in range(3):
        path = tmp_path / f"part{i}.txt"
        path.write_text("".join(lines[cuts[i] : cuts[i + 1]]))
        paths.append(path)
    prune = {"o3.prune11": [1, 1], "o4.prune123": [1, 2, 3]}.get(name)
    build(paths, tmp_path / "dist.arpa", order, prune=prune, partitions=6, inline=True)
    with gzip.open(f"{LMPLZ}/kjv400.{name}.arpa.gz", "rb") as handle:
        assert (tmp_path / "dist.arpa").read_bytes() == handle.read()


@pytest.mark.parametrize("memory", ["1G", "24k"])
def test_limit_vocab_float64_and_gzip(tmp_path, memory):
    paths = random_shards(tmp_path, seed=11, sizes=[80, 40])
    limit = tmp_path / "vocab.txt"
    limit.write_text("w0 w1 w2 w3\nw5 w8 w13 w21 nowhere\n")
    expected = single_process(paths, tmp_path / "single.arpa", 4, limit_vocab=limit, float64=True)
    build(
        paths, tmp_path / "dist.arpa.gz", 4, limit_vocab=limit, float64=True, partitions=3, memory=memory, inline=True
    )
    with gzip.open(tmp_path / "dist.arpa.gz", "rb") as handle:
        assert handle.read() == expected
    assert b"<unk>" in expected and b"\tw4\t" not in expected
    single_process(paths, tmp_path / "single.arpa.gz", 4, limit_vocab=limit, float64=True)
    assert (tmp_path / "dist.arpa.gz").read_bytes() == (tmp_path / "single.arpa.gz").read_bytes()


def gzip_members(data: bytes) -> int:
    """How many gzip members ``data`` holds."""
    members = 0
    while data:
        stream = zlib.decompressobj(zlib.MAX_WBITS | 16)
        stream.decompress(data)
        assert stream.eof
        data, members = stream.unused_data, members + 1
    return members


@pytest.mark.parametrize("partitions", [1, 7])
def test_gzip_output_is_the_single_process_file(tmp_path, partitions):
    """A .gz ARPA is byte for byte the one `lm build` writes (same gzip members, headers and
    compression), here with orders of more than 2 x 32768 rows, so members cut across partitions."""
    paths = zipf_shards(tmp_path, seed=3, lines=12_000, shards=2, vocab=8_000)
    estimate_arpa(tmp_path / "single.arpa.gz", count_files(paths, 3), "mkn")
    report = build(paths, tmp_path / "dist.arpa.gz", 3, partitions=partitions, inline=True)
    assert max(report.written_ngrams) > 2 * 32768
    single = (tmp_path / "single.arpa.gz").read_bytes()
    assert (tmp_path / "dist.arpa.gz").read_bytes() == single
    assert gzip_members(single) > 2 + len(report.written_ngrams)  # header, titles, end, and rows in several


def test_default_partitions_hold_at_most_the_memory_budget(tmp_path):
    """Without ``partitions``, consecutive last words are packed into partitions of at most
    memory / BYTES_PER_NGRAM n-gram rows (the rows their tasks receive from all shards)."""
    paths = zipf_shards(tmp_path, seed=9, lines=4000, shards=2, vocab=3000)
    expected = single_process(paths, tmp_path / "single.arpa", 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = build(paths, tmp_path / "dist.arpa", 3, memory="4M", inline=True)
    assert (tmp_path / "dist.arpa").read_bytes() == expected
    budget = 4 * 2**20 // BYTES_PER_NGRAM
    counted = sum(len(g) for p in paths for g in count_files(p, 3).ngrams)  # rows of the shards together
    assert sum(report.partition_rows) == counted
    assert max(report.partition_rows) <= budget
    assert report.partitions >= counted / budget > 2
    assert not [w for w in caught if "partition receives" in str(w.message)]


def test_a_word_ending_more_rows_than_the_budget_is_cut_by_the_word_before(tmp_path):
    """'</s>' ends more rows than a partition may hold at 256k: its rows are cut by their
    second-to-last word into several partitions (its unigram's adjusted count and probability
    put together from them), each within the budget, and the file is the single-process one."""
    paths = zipf_shards(tmp_path, seed=9, lines=4000, shards=2, vocab=3000)
    expected = single_process(paths, tmp_path / "single.arpa", 3)
    budget = 256 * 1024 // BYTES_PER_NGRAM
    ends = sum(int(np.count_nonzero(g[:, -1] == EOS_ID)) for p in paths for g in count_files(p, 3).ngrams)
    assert ends > 4 * budget
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = build(paths, tmp_path / "dist.arpa", 3, memory="256k", inline=True)
    assert (tmp_path / "dist.arpa").read_bytes() == expected
    assert not [w for w in caught if "partition receives" in str(w.message)]
    assert max(report.partition_rows) <= budget


def test_a_pair_that_alone_exceeds_the_budget_is_named(tmp_path):
    """At 64k (256 rows) the pair 'w0 </s>' alone ends more rows than a partition may hold: it
    gets a partition of its own, and a warning names it."""
    paths = zipf_shards(tmp_path, seed=9, lines=4000, shards=2, vocab=3000)
    expected = single_process(paths, tmp_path / "single.arpa", 3)
    with pytest.warns(UserWarning, match=r"'w0 </s>' alone ends [\d,]+; its tasks may use more than memory") as caught:
        report = build(paths, tmp_path / "dist.arpa", 3, memory="64k", inline=True)
    assert (tmp_path / "dist.arpa").read_bytes() == expected
    message = next(str(w.message) for w in caught if "alone ends" in str(w.message))
    ends = int(message.split("alone ends ")[1].split(";")[0].replace(",", ""))
    shards = [count_files(p, 3) for p in paths]
    pairs = [(c.vocab.id("w0"), g) for c in shards for g in c.ngrams[1:]]
    assert ends == sum(int(np.count_nonzero((g[:, -2] == w0) & (g[:, -1] == EOS_ID))) for w0, g in pairs)
    assert ends > 64 * 1024 // BYTES_PER_NGRAM
    assert ends in report.partition_rows  # the pair has a partition of its own: nothing more is added to it


@pytest.mark.parametrize(
    ("order", "prune", "partitions", "memory"),
    [
        (1, [1], None, "12k"),
        (2, None, None, "16k"),
        (3, [0, 1, 1], None, "20k"),
        (3, None, 40, "20k"),
        (4, [0, 0, 1, 2], 7, "24k"),
        (5, None, None, "28k"),
        (5, [0, 1, 1, 1, 3], 97, "28k"),
    ],
)
def test_cut_words_match_single_process(tmp_path, order, prune, partitions, memory):
    """With a budget of 48-112 rows per partition most words (and '</s>' in every case) end more
    rows than that: they are cut by their second-to-last word, with and without pruning, with
    packed or equal partitions, some partitions holding no n-grams."""
    paths = random_shards(tmp_path, seed=order * 7 + 1, sizes=[60, 0, 1, 211, 5])
    expected = single_process(paths, tmp_path / "single.arpa", order, prune=prune)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a pair may alone exceed the budget
        report = build(
            paths, tmp_path / "dist.arpa", order, prune=prune, partitions=partitions, memory=memory, inline=True
        )
    assert (tmp_path / "dist.arpa").read_bytes() == expected
    assert report.written_ngrams == [int(line.split("=")[1]) for line in expected.decode().splitlines()[1 : order + 1]]


def test_lmplz_last_ngram_ending_in_a_cut_word(tmp_path):
    """lmplz's count-of-counts quirk takes the unigram counts of its stream's last n-gram's
    last word; here that word ('zz', the highest id) is cut into several partitions and the
    last of them holds at most 4 of its bigrams: the quirk must use the word's whole counts."""
    paths = random_shards(tmp_path, seed=3, sizes=[200, 50])
    last = tmp_path / "last.txt"
    last.write_text(" ".join(f"v{j}" for j in range(200)) + "\nyy zz\n" + "\n".join(f"v{j} zz" for j in range(129)))
    paths.append(str(last))
    expected = single_process(paths, tmp_path / "single.arpa", 2)
    report = build(paths, tmp_path / "dist.arpa", 2, memory="16k", inline=True)
    assert (tmp_path / "dist.arpa").read_bytes() == expected
    assert 1 <= report.partition_rows[-1] <= 4  # of the 131 rows ending in 'zz': it was cut


def test_fallback_discounts_warn_as_single_process(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("a b\n")
    with pytest.warns(DiscountFallbackWarning, match="order 1"):
        build([path], tmp_path / "dist.arpa", 2, partitions=2, inline=True)
    expected = single_process([path], tmp_path / "single.arpa", 2)
    assert (tmp_path / "dist.arpa").read_bytes() == expected


def test_inline_build_leaves_the_callers_peak_memory_alone(tmp_path):
    """The tasks reset VmHWM to measure their own peaks in Ray workers; inline, in the caller's
    process, they must not: its peak (a 256 MiB array, touched then freed) is still reported."""
    np.ones(32 << 20)  # 256 MiB, freed at once (munmap: the RSS falls back, the peak stays)
    before = peak_memory()
    assert before > 256 << 20
    paths = random_shards(tmp_path, seed=2, sizes=[40, 30])
    build(paths, tmp_path / "out.arpa", 3, partitions=2, inline=True)
    assert peak_memory() >= before


def test_unreadable_shard_is_named_and_nothing_written(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("a b c\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"a b\n\xff\xfe c\n")
    out = tmp_path / "out.arpa"
    with pytest.raises(InputFileError, match=r"bad\.txt:2"):
        build([good, bad], out, 3, inline=True)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt"]  # no temporary left


# A build (every stage in one process) under a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored):
# a write past it fails with EFBIG, as a write to a full disk fails with ENOSPC.
FILE_SIZE_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from speechdecode.lm.distributed import build
build(sys.argv[5:], sys.argv[2], 3, memory=sys.argv[3], tmp_dir=sys.argv[4], inline=True)
"""


@pytest.mark.parametrize("stage", ["count", "split"])
def test_a_full_disk_names_the_stage_shard_and_folder(tmp_path, stage):
    """A temporary file that cannot be written fails the build with an error naming the stage,
    the shard and the folder, leaving no ARPA and no temporary file. The count stage: the native
    counter spills runs under its smallest budget. The split stage: the counts pass through the
    count stage (a file per order and column, each under the limit) and fail in the split
    task's one file of every partition's rows (all of them, larger than the limit)."""
    (path,) = random_shards(tmp_path, seed=4, sizes=[3000], vocab=3000)
    spill = tmp_path / "spill"
    spill.mkdir()
    counts = count_files(path, 3)
    largest = max(max(4 * n * len(c), 8 * len(c)) for n, c in enumerate(counts.counts, start=1))
    every = sum((4 * n + 8) * len(c) for n, c in enumerate(counts.counts, start=1))
    assert every > 2 * largest
    limit, memory = (
        (64 << 10, str(native().count_min_memory(3))) if stage == "count" else ((largest + every) // 2, "1G")
    )
    arpa = tmp_path / "out.arpa"
    command = [sys.executable, "-c", FILE_SIZE_LIMITED, str(limit), str(arpa), memory, str(spill), path]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"RuntimeError: {stage} stage ({path}), temporary files in {spill}: "), error
    assert error.endswith("File too large"), error
    assert not arpa.exists() and os.listdir(spill) == []


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"order": 0}, "order"),
        ({"partitions": 0}, "partitions"),
        ({"partitions": 4097}, "partitions"),
        ({"prune": [2, 1]}, "prune"),
        ({"memory": "lots"}, "memory"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, argument):
    path = tmp_path / "a.txt"
    path.write_text("a b\n")
    options = {"order": 2, **kwargs}
    with pytest.raises(InvalidArgumentError, match=argument):
        build([path], tmp_path / "out.arpa", inline=True, **options)


def test_errors_cross_process_boundaries_as_themselves():
    """Ray sends a task's exception to the driver pickled: ours must come back as they were."""
    for error in (InputFileError("shard.txt", 7, "invalid UTF-8"), InvalidArgumentError("order", "1..16", 0)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


def test_address_that_does_not_answer_names_address_and_timeout(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a process not yet connected
    with socket.socket() as listener:  # a port that is bound but never accepts: no answer
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        with pytest.raises(ClusterUnavailableError, match=rf"127\.0\.0\.1:{port} did not answer within the 0\.5 s"):
            _ray.connect(f"127.0.0.1:{port}", timeout=0.5)


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"speechdecode\[ray\]"):
        _ray.require_ray()


def test_unreadable_shards_are_skipped_only_when_asked(tmp_path):
    paths = random_shards(tmp_path, seed=13, sizes=[60, 25])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"w1 w2\nw3 \xff\n")
    missing = tmp_path / "missing.txt"
    expected = single_process(paths, tmp_path / "single.arpa", 3)
    with pytest.warns(UnreadableShardWarning) as caught:
        report = build([paths[0], bad, missing, paths[1]], tmp_path / "skip.arpa", 3, skip_unreadable=True, inline=True)
    assert (tmp_path / "skip.arpa").read_bytes() == expected
    assert len(report.skipped) == 2 and "bad.txt:2" in report.skipped[0] and "missing.txt" in report.skipped[1]
    assert len([w for w in caught if issubclass(w.category, UnreadableShardWarning)]) == 2
    with pytest.raises(InputFileError, match=r"missing\.txt"):
        build([paths[0], missing], tmp_path / "fail.arpa", 3, inline=True)


def test_character_units_match_single_process(tmp_path):
    paths = random_shards(tmp_path, seed=17, sizes=[40, 9])
    counts = count_files(paths, 4, units="char", word_boundary="_")
    write_arpa(tmp_path / "single.arpa", estimate(counts, "mkn"))
    build(paths, tmp_path / "dist.arpa", 4, units="char", word_boundary="_", partitions=3, inline=True)
    assert (tmp_path / "dist.arpa").read_bytes() == (tmp_path / "single.arpa").read_bytes()
    assert b"\t_\t" in (tmp_path / "dist.arpa").read_bytes()  # the boundary is a unigram


def test_fallback_refused_without_discount_fallback(tmp_path):
    """lmplz's rule with discount_fallback=None: an order that needs the fallback fails, before
    anything is written."""
    path = tmp_path / "tiny.txt"
    path.write_text("a b\n")
    with pytest.raises(InvalidArgumentError, match=r"discount_fallback.*order 1"):
        build([path], tmp_path / "out.arpa", 2, discount_fallback=None, inline=True)
    assert not (tmp_path / "out.arpa").exists()


@pytest.mark.parametrize("base", [7, 60_000, 2**40])
def test_sort_keys_sort_as_the_rows_do(base):
    """The partitions' int64 sort keys order rows as numpy's lexicographic sort does, also where
    the digits would overflow int64 and are ranked (base 2**40: before every column after the
    first; 60,000: before the fourth)."""
    rng = np.random.default_rng(base % 1000)
    rows = rng.integers(0, base, size=(5000, 5), dtype=np.int64)
    rows[::3, :3] = rows[0, :3]  # ties in the leading columns
    rows[1::7] = rows[2]  # equal rows
    keys = sort_keys(rows, base)
    expected = rows[np.lexsort(rows[:, ::-1].T)]
    assert (rows[np.argsort(keys, kind="stable")] == expected).all()
    assert len(np.unique(keys)) == len(np.unique(rows, axis=0))


def test_a_pickled_partition_leaves_out_raw_counts_and_keys_and_finds_the_same_rows(tmp_path):
    """What travels to the contexts and estimate stages: the merge's tables without the raw
    counts and lookup keys (rebuilt on first use), which find every n-gram where they did."""
    (path,) = random_shards(tmp_path, seed=21, sizes=[300])
    counts = count_files(path, 4)
    piece = Piece([g.astype(np.int32) for g in counts.ngrams], list(counts.counts))
    size = len(counts.vocab)
    bounds = np.array([0, size * (size + 1)])
    _, part, _ = merge_partition([piece], 4, 0, int(bounds[1]), size, np.zeros(4, dtype=np.int64), bounds)
    sent = pickle.dumps(part)
    kept = pickle.loads(sent)
    assert kept.raw is None and kept.keys[1:] == [None] * 3
    left_out = sum(a.nbytes for a in [*part.raw, *part.keys[1:]])
    assert len(pickle.dumps(part.__dict__)) - len(sent) >= left_out > 0
    for n in range(2, 5):
        assert (kept.locate(part.rows[n - 1]) == np.arange(len(part.rows[n - 1]))).all()
        assert (kept.locate(part.rows[n - 1][:, ::-1]) == part.locate(part.rows[n - 1][:, ::-1])).all()
