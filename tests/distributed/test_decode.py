"""Batch decoding of posteriors shards (decoding/distributed.py): inline and on the Ray cluster of
conftest.py, against the decoder called directly on each shard."""

from __future__ import annotations

import fcntl
import functools
import json
import os

import numpy as np
import pytest

from speechdecode.cli import main as cli_main
from speechdecode.decoding import CtcPrefixBeamSearch
from speechdecode.decoding.distributed import LOCK_NAME, decode_dataset, decode_shards, result_row
from speechdecode.decoding.posteriors import load_posteriors, save_posteriors
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.graphs import char_lexicon, char_tokens
from speechdecode.lm.distributed import build
from speechdecode.lm.methods.kneser_ney import DiscountFallbackWarning
from speechdecode.testing import CtcPosteriorSimulator, write_corpus

WORDS = ["ab", "ba", "bad", "cab", "dab", "add"]
SHARDS = 23  # a prime: workers get uneven shares


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A token table, an order-3 LM (the distributed build's), and SHARDS posteriors files of
    1..4 noisy utterances each."""
    tmp = tmp_path_factory.mktemp("decode")
    rng = np.random.default_rng(8)
    corpus = [" ".join(rng.choice(WORDS, size=rng.integers(1, 4))) for _ in range(200)]
    tokens, lexicon = char_tokens(WORDS), char_lexicon(WORDS)
    tokens.write(tmp / "tokens.txt")
    write_corpus(tmp / "train.txt", corpus)
    with pytest.warns(DiscountFallbackWarning):  # six words: no unigram has adjusted count 1
        build([tmp / "train.txt"], tmp / "lm.arpa", 3, partitions=2, inline=True)
    simulator = CtcPosteriorSimulator(len(tokens), blank=0, seed=2, confusion=0.3)
    (tmp / "in").mkdir()
    for i in range(SHARDS):
        sentences = corpus[200 - 4 * (i + 1) : 200 - 4 * (i + 1) + 1 + i % 4]
        labels = [tokens.encode([t for w in s.split() for t in lexicon[w][0].tokens]) for s in sentences]
        log_probs, lengths = simulator.simulate(labels)
        save_posteriors(tmp / "in" / f"s{i:02d}.npz", log_probs, lengths, [f"s{i}u{j}" for j in range(len(labels))])
    symbols = [tokens.symbol(i) for i in range(len(tokens))]
    make = functools.partial(CtcPrefixBeamSearch, symbols, lm=str(tmp / "lm.arpa"), beam=8, num_threads=1)
    return tmp, make


def expected_rows(folder, make) -> dict[str, list[dict]]:
    """Per shard file name, the rows of the decoder called on the shard in this process."""
    search = make()
    rows = {}
    for name in sorted(os.listdir(folder)):
        p = load_posteriors(folder / name)
        rows[name] = [result_row(u, n) for u, n in zip(p.utt_ids, search(p.log_probs, p.lengths), strict=True)]
    return rows


def read_rows(out) -> dict[str, list[dict]]:
    rows = {}
    for name in sorted(n for n in os.listdir(out) if n.endswith(".jsonl")):
        with open(out / name, encoding="utf-8") as handle:
            rows[name.removesuffix(".jsonl")] = [json.loads(line) for line in handle]
    return rows


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_decoding_equals_one_process_and_resumes(cluster, shards, tmp_path, workers):
    tmp, make = shards
    expected = expected_rows(tmp / "in", make)
    report = decode_shards(tmp / "in", tmp_path / "out", make, workers=workers)
    assert (report.shards, report.skipped, report.utterances) == (SHARDS, 0, sum(map(len, expected.values())))
    assert read_rows(tmp_path / "out") == expected
    os.unlink(tmp_path / "out" / "s05.npz.jsonl")
    again = decode_shards(str(tmp / "in" / "*.npz"), tmp_path / "out", make, workers=workers)
    assert (again.shards, again.skipped) == (1, SHARDS - 1)
    assert read_rows(tmp_path / "out") == expected


def test_inline_and_cli_write_the_same_files(cluster, shards, tmp_path, capsys):
    tmp, make = shards
    decode_shards(tmp / "in", tmp_path / "inline", make, inline=True)
    argv = ["decode", "--ray", "--log-probs", str(tmp / "in"), "--out", str(tmp_path / "cli"), "--json"]
    options = ["--tokens", str(tmp / "tokens.txt"), "--arpa", str(tmp / "lm.arpa"), "--beam", "8", "--num-threads", "1"]
    assert cli_main([*argv, *options]) in (0, None)
    assert json.loads(capsys.readouterr().out)["shards"] == SHARDS
    assert read_rows(tmp_path / "cli") == read_rows(tmp_path / "inline") == expected_rows(tmp / "in", make)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray Data's own use of its deprecated settings
def test_ray_dataset_of_utterances(cluster, shards):
    tmp, make = shards
    ray = pytest.importorskip("ray")
    expected = [row for rows in expected_rows(tmp / "in", make).values() for row in rows]
    items = []
    for name in sorted(os.listdir(tmp / "in")):
        p = load_posteriors(tmp / "in" / name)
        items += [{"utt_id": u, "log_probs": p.log_probs[b, : p.lengths[b]]} for b, u in enumerate(p.utt_ids)]
    decoded = decode_dataset(ray.data.from_items(items), make, workers=2, batch_size=5).take_all()
    got = {r["utt_id"]: (r["text"], r["score"]) for r in decoded}
    assert got == {r["utt_id"]: (r["text"], r["score"]) for r in expected}


def test_second_run_on_one_output_folder_is_refused(shards, tmp_path):
    tmp, make = shards
    (tmp_path / "out").mkdir()
    with open(tmp_path / "out" / LOCK_NAME, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(InvalidArgumentError, match="in use"):
            decode_shards(tmp / "in", tmp_path / "out", make, inline=True)
    assert os.listdir(tmp_path / "out") == [LOCK_NAME]


def test_unreadable_shard_is_named_and_leaves_no_partial_file(cluster, shards, tmp_path):
    tmp, make = shards
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("s00.npz", "s01.npz"):
        (folder / name).write_bytes((tmp / "in" / name).read_bytes())
    (folder / "s02.npz").write_bytes((tmp / "in" / "s02.npz").read_bytes()[:-40])  # cut short
    with pytest.raises(InputFileError, match=r"s02\.npz"):
        decode_shards(folder, tmp_path / "out", make, workers=2)
    left = sorted(os.listdir(tmp_path / "out"))
    assert "s02.npz.jsonl" not in left and all(n.endswith(".jsonl") or n == LOCK_NAME for n in left)


def test_unreadable_shards_are_skipped_when_asked(shards, tmp_path):
    tmp, make = shards
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "s00.npz").write_bytes((tmp / "in" / "s00.npz").read_bytes())
    (folder / "s01.npz").write_bytes(b"not a zip")
    report = decode_shards(folder, tmp_path / "out", make, skip_unreadable=True, inline=True)
    assert report.shards == 2 and len(report.unreadable) == 1 and "s01.npz" in report.unreadable[0]
    assert read_rows(tmp_path / "out") == {"s00.npz": expected_rows(tmp / "in", make)["s00.npz"]}
