"""Streaming CTC speech units (LLaMA-Omni): our stateful streamer vs re-decoding every step.

LLaMA-Omni's reference decodes its unit logits by taking the argmax of *all* frames so far,
collapsing, and emitting the units past those already sent, at every LLM step (O(N^2) over a
response, batch 1). The anchor here is that loop in numpy (argmax + vectorized collapse), one row
at a time; ours is :class:`speechdecode.decoding.CtcUnitStreamer` over the whole batch, which
decodes only the new frames. Each step adds lambda = 25 frames per row (one LLM hidden state),
V = 1001 (1000 units + blank), chunks of Omega = 40 units.
"""

from __future__ import annotations

import numpy as np

from speechdecode.bench.harness import Suite
from speechdecode.decoding import CtcUnitStreamer

UPSAMPLE, UNITS, CHUNK = 25, 1000, 40


def _logits(batch: int, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = steps * UPSAMPLE
    x = rng.standard_normal((batch, frames, UNITS + 1), dtype=np.float32)
    peaks = np.repeat(rng.integers(0, UNITS + 1, size=(batch, (frames + 1) // 2)), 2, axis=1)[:, :frames]
    np.put_along_axis(x, peaks[..., None], 8.0, axis=2)
    return x


def redecode_every_step(logits: np.ndarray) -> list[list[int]]:
    """The anchor: per row, per step, decode all frames so far and emit the units not yet sent."""
    out = []
    for row in logits:
        sent: list[int] = []
        for end in range(UPSAMPLE, row.shape[0] + 1, UPSAMPLE):
            best = row[:end].argmax(-1)
            keep = (best != UNITS) & (best != np.concatenate([[-1], best[:-1]]))
            units = best[keep]
            sent.extend(units[len(sent) :].tolist())
        out.append(sent)
    return out


def streamed(logits: np.ndarray) -> list[list[int]]:
    streamer = CtcUnitStreamer(blank=UNITS, chunk_size=CHUNK)
    units: list[list[int]] = [[] for _ in range(logits.shape[0])]
    chunks = []
    for start in range(0, logits.shape[1], UPSAMPLE):
        chunks += streamer.accept(logits[:, start : start + UPSAMPLE])
    chunks += streamer.finish()
    for chunk in chunks:
        units[chunk.row].extend(chunk.units.tolist())
    return units


def run(suite: Suite, quick: bool) -> None:
    cases = [(1, 20), (16, 20)] if quick else [(1, 100), (16, 100), (64, 100), (1, 400)]
    for batch, steps in cases:
        logits = _logits(batch, steps)
        if streamed(logits) != redecode_every_step(logits):
            raise RuntimeError("streamer output differs from re-decoding; not timing a wrong result")
        case = f"B={batch}, {steps} steps"
        params = {"batch": batch, "steps": steps, "frames_per_step": UPSAMPLE, "vocab": UNITS + 1, "chunk": CHUNK}
        items = batch * steps
        suite.add(
            case,
            "re-decode every step (numpy, per row)",
            lambda x=logits: redecode_every_step(x),
            anchor=True,
            items=items,
            item_unit="step",
            params=params,
        )
        suite.add(case, "CtcUnitStreamer", lambda x=logits: streamed(x), items=items, item_unit="step", params=params)
