"""Synthesize and featurize the acoustic model's training and development speech.

Training utterances: training KJV verses of 4 to 28 words. Each draws its engine first -- flite
with probability ``--flite-share`` (default one half), else espeak-ng -- then one of that engine's
voices uniformly: one of 5 flite voices (``FLITE_TRAIN_VOICES``) at a random rate (130-230
words/min, flite's duration stretch) and sox pitch shift (-400 to 400 cents), or one of 231
espeak-ng accents x variants (``ESPEAK_TRAIN_VOICES``) at a random rate (130-210) and pitch
(20-80). Drawing the voice uniformly over all 236 would give flite's few voices about 2% of the
data. Then sox tempo (0.85-1.15) and, for 30% of them, reverberation; then in torch a random gain
(-26 to 0 dB) and, for two thirds of them, white or low-passed noise at 30, 20, 15 or 10 dB SNR.
Development utterances: development verses spoken cleanly by each of ``SEEN_VOICES`` in turn.
Every utterance draws from its own generator seeded by (seed, index), so the output does not
depend on ``--jobs``. Writes ``train.pt`` and ``dev.pt`` (log-mel features as float16, texts,
voices).

    python recipes/acoustic_model/synthesize.py --out /work/am-data --utterances 10000 --seed 0
"""

from __future__ import annotations

import argparse
import multiprocessing
import os

import numpy as np
import torch

from speechdecode._io import atomic_write
from speechdecode.models.audio import log_mel
from speechdecode.testing.speech import (
    ESPEAK_TRAIN_VOICES,
    FLITE_TRAIN_VOICES,
    SEEN_VOICES,
    Rendition,
    kjv_split,
    synthesize,
)

SNRS = (30.0, 20.0, 15.0, 10.0)


def training_rendition(rng: np.random.Generator, flite_share: float) -> Rendition:
    """The engine first (flite with probability ``flite_share``), then one of its voices."""
    if rng.random() < flite_share:
        return Rendition(
            FLITE_TRAIN_VOICES[rng.integers(len(FLITE_TRAIN_VOICES))],
            rate=int(rng.integers(130, 231)),
            tempo=float(np.round(rng.uniform(0.85, 1.15), 3)),
            cents=int(rng.integers(-400, 401)),
            reverb=int(rng.integers(20, 61)) if rng.random() < 0.3 else 0,
        )
    return Rendition(
        ESPEAK_TRAIN_VOICES[rng.integers(len(ESPEAK_TRAIN_VOICES))],
        rate=int(rng.integers(130, 211)),
        pitch=int(rng.integers(20, 81)),
        tempo=float(np.round(rng.uniform(0.85, 1.15), 3)),
        reverb=int(rng.integers(20, 61)) if rng.random() < 0.3 else 0,
    )


def corrupt(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gain, then (two times in three) white or low-passed noise at a random SNR."""
    x = samples * 10.0 ** (rng.uniform(-26.0, 0.0) / 20.0)
    if rng.random() < 2 / 3:
        noise = rng.standard_normal(len(x))
        if rng.random() < 0.5:  # one-pole low-pass: more energy in the speech band
            noise = torch.from_numpy(noise)
            kernel = 0.95 ** torch.arange(200, dtype=torch.float64)
            noise = torch.nn.functional.conv1d(noise[None, None], kernel.flip(0)[None, None], padding=199)
            noise = noise[0, 0, : len(x)].numpy()
        snr = SNRS[rng.integers(len(SNRS))]
        power = max(float(np.mean(x**2)), 1e-12)
        x = x + noise * np.sqrt(power / 10.0 ** (snr / 10.0) / max(float(np.mean(noise**2)), 1e-12))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def train_item(job):
    seed, index, text, flite_share = job
    rng = np.random.default_rng([seed, index])
    rendition = training_rendition(rng, flite_share)
    samples = corrupt(synthesize(text, rendition), rng)
    return log_mel(torch.from_numpy(samples)).half(), text, rendition.voice


def dev_item(job):
    text, voice = job
    return log_mel(torch.from_numpy(synthesize(text, voice))).half(), text, voice


def _init():
    torch.set_num_threads(1)


def write_set(path: str, items) -> None:
    feats, texts, voices = zip(*items, strict=True)
    lengths = torch.tensor([f.shape[0] for f in feats])
    with atomic_write(path, "wb") as handle:
        torch.save({"features": torch.cat(feats), "lengths": lengths, "texts": texts, "voices": voices}, handle)
    print(f"{path}: {len(texts)} utterances, {int(lengths.sum()) / 100 / 3600:.2f} h", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for train.pt and dev.pt (must exist)")
    parser.add_argument("--utterances", type=int, default=10000)
    parser.add_argument("--dev-verses", type=int, default=40, help="development verses per seen voice")
    parser.add_argument("--flite-share", type=float, default=0.5, help="fraction of utterances spoken by flite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    split = kjv_split()
    verses = [v for v in split["train"] if 4 <= len(v.split()) <= 28]
    order = np.random.default_rng(args.seed).permutation(len(verses))
    if not 0.0 <= args.flite_share <= 1.0:
        parser.error(f"--flite-share: expected a fraction in [0, 1], got {args.flite_share}")
    jobs = [(args.seed, i, verses[order[i % len(verses)]], args.flite_share) for i in range(args.utterances)]
    dev_jobs = [(text, voice) for text in split["dev"][: args.dev_verses] for voice in SEEN_VOICES]
    with multiprocessing.Pool(args.jobs, initializer=_init) as pool:
        write_set(os.path.join(args.out, "dev.pt"), pool.imap(dev_item, dev_jobs, chunksize=8))
        write_set(os.path.join(args.out, "train.pt"), pool.imap(train_item, jobs, chunksize=16))


if __name__ == "__main__":
    main()
