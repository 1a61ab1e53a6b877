"""Batch decoding of many posteriors shards on a Ray cluster (the ``ray`` extra).

:func:`decode_shards` gives each ``.npz`` shard (``log_probs`` [B, T, V], ``lengths``,
``utt_ids``, as :func:`speechdecode.decoding.posteriors.save_posteriors` writes) to a pool of
Ray actors, one per worker slot. Each actor builds its decoder once (``make_decoder()``: the LM
or graph is loaded, memory-mapped where the format allows, and shared by the decoder's threads)
and writes one JSON Lines file per shard, ``OUT/<shard name>.jsonl``, atomically: a file there
is complete. A re-run skips the shards whose file exists, so an interrupted run resumes.
:func:`decode_dataset` decodes a Ray Dataset of utterances instead.

>>> from speechdecode.decoding import CtcPrefixBeamSearch
>>> make = lambda: CtcPrefixBeamSearch(tokens, lm="G.arpa")  # doctest: +SKIP
>>> decode_shards("posteriors/*.npz", "transcripts", make)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from speechdecode._io import atomic_write, output_folder
from speechdecode._progress import progress as progress_bar
from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.decoding.posteriors import load_posteriors
from speechdecode.errors import InputFileError, InvalidArgumentError

__all__ = ["DecodeReport", "decode_dataset", "decode_shards", "result_row", "shard_paths"]

LOCK_NAME = ".speechdecode-decode.lock"
Decoder = Callable[[np.ndarray, np.ndarray], Sequence[Sequence[Hypothesis]]]


@dataclass
class DecodeReport:
    """What :func:`decode_shards` did."""

    shards: int  # decoded by this run
    skipped: int  # already done by an earlier run
    utterances: int
    audio_hours: float
    seconds: float
    unreadable: list[str] = field(default_factory=list)  # shards skipped (skip_unreadable), with why


def result_row(utt_id: str, nbest: Sequence[Hypothesis]) -> dict:
    """One utterance's JSON object: the best hypothesis, its scores and frames, and the n-best."""
    best = nbest[0]
    return {
        "utt_id": utt_id,
        "text": best.text,
        "tokens": list(best.tokens),
        "frames": list(best.token_frames),
        "score": best.score,
        "am_score": best.am_score,
        "lm_score": best.lm_score,
        "word_frames": [list(f) for f in best.word_frames],
        "nbest": [{"text": h.text, "score": h.score} for h in nbest],
    }


def shard_paths(log_probs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """The shards: a folder's ``*.npz`` files, a glob's matches, or the paths given (sorted for the
    first two). Raises InvalidArgumentError when there are none or two share a file name."""
    if isinstance(log_probs, str | os.PathLike):
        pattern = os.fspath(log_probs)
        if os.path.isdir(pattern):
            paths = sorted(glob.glob(os.path.join(glob.escape(pattern), "*.npz")))
        elif glob.has_magic(pattern):
            paths = sorted(glob.glob(pattern))
        else:
            paths = [pattern]
    else:
        paths = [os.fspath(p) for p in log_probs]
    if not paths:
        raise InvalidArgumentError("log_probs", "a folder of .npz shards, a glob matching some, or paths", log_probs)
    names = {}
    for path in paths:
        name = os.path.basename(path)
        if name in names:
            raise InvalidArgumentError("log_probs", "shards with distinct file names", f"{names[name]} and {path}")
        names[name] = path
    return paths


def decode_file(decoder: Decoder, shard: str, out: str, frame_shift: float, skip: bool = False) -> tuple:
    """Decode one shard into ``out`` (JSON Lines, atomic); returns (utterances, audio hours, None),
    or (0, 0.0, why) for a shard that cannot be read when ``skip``."""
    try:
        posteriors = load_posteriors(shard)
    except (InputFileError, OSError) as exc:
        if not skip:
            raise
        return 0, 0.0, str(exc)
    results = decoder(posteriors.log_probs, posteriors.lengths)
    with atomic_write(out) as handle:
        for utt_id, nbest in zip(posteriors.utt_ids, results, strict=True):
            handle.write(json.dumps(result_row(utt_id, nbest), ensure_ascii=False) + "\n")
    return len(results), float(posteriors.lengths.sum()) * frame_shift / 3600, None


class _ShardWorker:
    """A Ray actor: one decoder, many shards."""

    def __init__(self, make_decoder: Callable[[], Decoder], frame_shift: float, skip: bool):
        self.decoder = make_decoder()
        self.frame_shift, self.skip = frame_shift, skip

    def decode(self, shard: str, out: str) -> tuple:
        return decode_file(self.decoder, shard, out, self.frame_shift, self.skip)


@contextlib.contextmanager
def _exclusive(folder: str):
    """Hold the output folder's lock: a second run writing into it fails at once, named."""
    path = os.path.join(folder, LOCK_NAME)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            expected = "an output folder no other run is writing"
            raise InvalidArgumentError("out", expected, f"{folder} is in use (locked)") from None
        yield
    finally:
        handle.close()


def decode_shards(
    log_probs: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    make_decoder: Callable[[], Decoder],
    *,
    address: str | None = None,
    workers: int | None = None,
    frame_shift: float = 0.02,
    progress: bool = False,
    skip_unreadable: bool = False,
    inline: bool = False,
) -> DecodeReport:
    """Decode every shard into ``out/<shard file name>.jsonl`` (one JSON object per utterance,
    :func:`result_row`), on Ray actors; shards already done are skipped.

    Args:
        log_probs: a folder of ``.npz`` shards, a glob, or a list of paths (:func:`shard_paths`).
        out: the output folder (created if missing; its parent must exist). A lock in it makes a
            second run on the same folder fail instead of interleaving.
        make_decoder: called once per worker; returns a decoder of the ``Decoder`` protocol
            (:class:`~speechdecode.decoding.CtcPrefixBeamSearch`,
            :class:`~speechdecode.decoding.WfstDecoder`); sent to the workers pickled (Ray's
            cloudpickle: a lambda or ``functools.partial`` works).
        address: the Ray cluster (see :func:`speechdecode._ray.connect`); None starts a local one.
        workers: actors (default: the cluster's CPU slots).
        frame_shift: seconds per log-prob frame, for the audio hours reported.
        progress: a progress bar of shards and audio hours on stderr.
        skip_unreadable: leave out shards that cannot be read (listed in the report, no output
            file: a later run tries them again) instead of failing.
        inline: decode here, one shard after another, without Ray.

    Returns:
        a :class:`DecodeReport`.

    Raises:
        InvalidArgumentError: no shards, two with one file name, ``out`` in use by another run.
        InputFileError: a shard that cannot be read (named); shards done before it keep their files.
        BackendUnavailableError: Ray is not installed, or the cluster does not answer.
    """
    started = time.perf_counter()
    if not callable(make_decoder):
        raise InvalidArgumentError("make_decoder", "a callable returning a decoder", type(make_decoder).__name__)
    if not frame_shift > 0:
        raise InvalidArgumentError("frame_shift", "seconds per frame > 0", frame_shift)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidArgumentError("workers", "an integer >= 1", repr(workers))
    shards = [os.path.abspath(s) for s in shard_paths(log_probs)]  # workers may have another cwd
    folder = os.path.abspath(output_folder(out))
    with _exclusive(folder):
        targets = {s: os.path.join(folder, os.path.basename(s) + ".jsonl") for s in shards}
        pending = [s for s in shards if not os.path.exists(targets[s])]
        report = DecodeReport(len(pending), len(shards) - len(pending), 0, 0.0, 0.0)
        bar = progress_bar(desc="decode", total=len(pending), unit="shard") if progress else None

        def done(utterances: int, hours: float, unreadable: str | None) -> None:
            if unreadable is not None:
                report.unreadable.append(unreadable)
            report.utterances += utterances
            report.audio_hours += hours
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{report.audio_hours:.2f} h audio")

        try:
            if inline or not pending:
                decoder = make_decoder() if pending else None
                for shard in pending:
                    done(*decode_file(decoder, shard, targets[shard], frame_shift, skip_unreadable))
            else:
                worker = (make_decoder, frame_shift, skip_unreadable)
                _decode_on_ray(pending, targets, worker, address, workers, done)
        finally:
            if bar is not None:
                bar.close()
    report.seconds = time.perf_counter() - started
    return report


def _decode_on_ray(pending, targets, worker_args, address, workers, done) -> None:
    from speechdecode import _ray

    ray = _ray.connect(address)
    count = min(len(pending), workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
    actor = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(_ShardWorker)
    pool = [actor.remote(*worker_args) for _ in range(count)]
    queue = list(pending)
    running = {}
    try:
        while queue or running:
            for worker in pool:
                if queue and worker not in running.values():
                    shard = queue.pop(0)
                    running[worker.decode.remote(shard, targets[shard])] = worker
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                running.pop(ref)
                try:
                    done(*ray.get(ref))
                except ray.exceptions.RayTaskError as exc:
                    raise _ray.unwrap(exc) from None
    finally:
        for worker in pool:
            ray.kill(worker)


class _DatasetDecoder:
    """A Ray Data actor: pads a batch of utterances to [B, T, V] and decodes it."""

    def __init__(self, make_decoder: Callable[[], Decoder]):
        self.decoder = make_decoder()

    def __call__(self, batch: dict) -> dict:
        items = list(batch["log_probs"])
        lengths = np.array([len(x) for x in items], dtype=np.int64)
        vocab = items[0].shape[1]
        padded = np.zeros((len(items), int(lengths.max(initial=0)), vocab), dtype=np.float32)
        for b, x in enumerate(items):
            padded[b, : len(x)] = x
        results = self.decoder(padded, lengths)
        rows = [result_row(str(u), n) for u, n in zip(batch["utt_id"], results, strict=True)]
        return {key: [row[key] for row in rows] for key in ("utt_id", "text", "score", "am_score", "lm_score")}


def decode_dataset(dataset, make_decoder: Callable[[], Decoder], *, workers: int = 1, batch_size: int = 16):
    """Decode a Ray Dataset of utterances (columns ``utt_id`` and ``log_probs`` [T, V]) on
    ``workers`` actors, each with one decoder; returns a Dataset with columns ``utt_id``,
    ``text``, ``score``, ``am_score``, ``lm_score`` (lazy, as Ray Data is: consume it to run)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError("workers", "an integer >= 1", repr(workers))
    missing = {"utt_id", "log_probs"} - set(dataset.columns())
    if missing:
        raise InvalidArgumentError("dataset", "columns utt_id and log_probs", f"no {', '.join(sorted(missing))}")
    return dataset.map_batches(
        _DatasetDecoder,
        fn_constructor_kwargs={"make_decoder": make_decoder},
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=workers,
    )
