"""Duration-guided attention masks (RALL-E) and VoiceCraft's rearrangement against Python loops.

Anchors, written here from the published semantics:

* dense mask construction in Python (RALL-E, docs/DEFINITIONS.md section 6): for every row, a loop over speech
  frames that advances the phoneme pointer l(t) = min{l : cumsum(d)_l > t} and fills the frame's
  row of the [B, T, L] mask with True over phonemes l(t)-k .. l(t)+k (numpy slice assignment).
  Ours: :func:`~speechdecode.kernels.duration_mask.dense_mask` (searchsorted + one comparison),
  :func:`additive_bias` (the same mask as a 0/-inf float bias; checked against the anchor's mask
  turned into a bias), and :func:`block_mask` (FlexAttention's ``BlockMask`` over the whole
  [phonemes | speech] sequence, uncompiled ``create_block_mask``; a larger object than the
  anchor's, so its row is context rather than a like-for-like ratio; batch 1 only, it
  materializes the [B, L+T, L+T] mask).
* VoiceCraft rearrangement as its training code runs it: a Python loop over rows and segments
  (slice, append end tokens, delay each codebook with a slice copy, insert mask columns, concatenate,
  pad the batch). Ours: :func:`~speechdecode.kernels.voicecraft.causal_mask_rearrange` (native:
  one batched scatter) and :func:`causal_mask_inverse` (one gather), against the same loop
  reading segments back.

Every implementation's output is checked equal to its anchor's before it is timed. The suite
runs torch on one intra-op thread (:func:`single_thread`): on a small machine shared with other
jobs, ops large enough for torch to split across threads stall on the busy cores, which measures
the neighbours rather than the op; anchor and implementations run under the same setting.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from speechdecode.bench.harness import Suite, check_equal
from speechdecode.kernels import duration_mask, voicecraft

K_CODEBOOKS = 4
SINGLE_THREAD_NOTE = (
    "torch ran on one intra-op thread (torch.set_num_threads(1)) for anchors and implementations alike."
)


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread inside the block, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def python_dense_mask(durations: np.ndarray, k: int, num_frames: int) -> np.ndarray:
    """bool [B, T, L], a Python loop per frame (the anchor)."""
    batch, phonemes = durations.shape
    out = np.zeros((batch, num_frames, phonemes), dtype=bool)
    for b in range(batch):
        row = durations[b].tolist()
        total = sum(row)
        ph, end, owner = -1, 0, 0
        for t in range(num_frames):
            if t < total:  # frames past the row's total keep the last owner
                while end <= t:
                    ph += 1
                    end += row[ph]
                owner = ph
            out[b, t, max(0, owner - k) : owner + k + 1] = True
    return out


def loop_rearrange(codes: torch.Tensor, lengths: list[int], spans: list[list[tuple[int, int]]]) -> torch.Tensor:
    """VoiceCraft's rearrangement row by row, segment by segment (the anchor)."""
    batch, num_k, _ = codes.shape
    rows = []
    for b in range(batch):
        n = len(spans[b])
        cuts = [0] + [e for _, e in spans[b]]
        stops = [s for s, _ in spans[b]] + [lengths[b]]
        ends = [None] * n + [voicecraft.EOS] + [voicecraft.EOG] * n
        segments = [codes[b, :, a:z] for a, z in zip(cuts, stops, strict=True)] + [
            codes[b, :, a:z] for a, z in spans[b]
        ]
        masks = list(range(n)) * 2
        pieces = []
        for j, (segment, end) in enumerate(zip(segments, ends, strict=True)):
            if end is not None:
                segment = torch.cat([segment, segment.new_full((num_k, 1), end)], dim=1)
            delayed = segment.new_full((num_k, segment.shape[1] + num_k), voicecraft.EMPTY)
            for k in range(num_k):
                delayed[k, 1 + k : 1 + k + segment.shape[1]] = segment[k]
            pieces.append(delayed)
            if j < len(masks):
                pieces.append(segment.new_full((num_k, 1), voicecraft.MASK_BASE + masks[j]))
        rows.append(torch.cat(pieces, dim=1))
    out = codes.new_full((batch, num_k, max(r.shape[1] for r in rows)), voicecraft.PAD)
    for b, r in enumerate(rows):
        out[b, :, : r.shape[1]] = r
    return out


def loop_inverse(sequence: torch.Tensor, lengths: list[int], spans, frames: int) -> torch.Tensor:
    """Codes back from the rearranged sequence, row by row and segment by segment (the anchor)."""
    batch, num_k, _ = sequence.shape
    out = sequence.new_full((batch, num_k, frames), voicecraft.PAD)
    for b in range(batch):
        n = len(spans[b])
        cuts = [0] + [e for _, e in spans[b]]
        stops = [s for s, _ in spans[b]] + [lengths[b]]
        sources = list(zip(cuts, stops, strict=True)) + list(spans[b])
        step = 0
        for j, (a, z) in enumerate(sources):
            for k in range(num_k):
                out[b, k, a:z] = sequence[b, k, step + 1 + k : step + 1 + k + z - a]
            end = 1 if j >= n else 0  # the last unmasked stretch and every span carry an end token
            step += (z - a) + end + num_k + (1 if j < 2 * n else 0)
    return out


def add_rows(suite: Suite, case: str, rows, **common) -> None:
    """Add ``rows`` = [(impl, fn)] to ``case``, the first one as its anchor; ``common`` goes to every row."""
    for i, (impl, fn) in enumerate(rows):
        suite.add(case, impl, fn, anchor=i == 0, **common)


def _mask_cases(suite: Suite, quick: bool, gen: torch.Generator) -> None:
    sizes = [(1, 50, 1), (4, 80, 3)] if quick else [(b, 150, k) for b in (1, 16, 64) for k in (1, 3)] + [(16, 50, 3)]
    for batch, phonemes, k in sizes:
        durations = torch.randint(5, 36, (batch, phonemes), generator=gen)  # ~20 frames per phoneme
        frames = int(durations.sum(dim=1).max())
        d_np = durations.numpy()
        want = python_dense_mask(d_np, k, frames)
        check_equal("masks", "dense_mask", [duration_mask.dense_mask(durations, k)], [want])
        bias = np.where(want, np.float32(0), np.float32("-inf"))
        check_equal("masks", "additive_bias", [duration_mask.additive_bias(durations, k)], [bias])
        case = f"mask B={batch} L={phonemes} T={frames} k={k}"
        params = {"batch": batch, "phonemes": phonemes, "frames": frames, "k": k}
        rows = [
            ("Python loop per frame", lambda d=d_np, kk=k, t=frames: python_dense_mask(d, kk, t)),
            ("duration_mask.dense_mask", lambda d=durations, kk=k: duration_mask.dense_mask(d, kk)),
            ("duration_mask.additive_bias (float32)", lambda d=durations, kk=k: duration_mask.additive_bias(d, kk)),
        ]
        add_rows(suite, case, rows, bytes_processed=want.size, params=params)  # one byte per mask cell
        if batch == 1:
            suite.add(
                case,
                "duration_mask.block_mask (whole sequence, uncompiled)",
                lambda d=durations, kk=k: duration_mask.block_mask(d, kk),
                params=params,
                settings={"warmup": 1, "repeats": 3, "min_seconds": 0.0},
            )


def _voicecraft_cases(suite: Suite, quick: bool, gen: torch.Generator) -> None:
    sizes = [(1, 300), (4, 300)] if quick else [(1, 3000), (16, 3000), (64, 3000)]
    for batch, frames in sizes:
        lengths = torch.randint(frames // 2, frames + 1, (batch,), generator=gen)
        lengths[0] = frames
        row_lengths = lengths.tolist()
        spans = [voicecraft.sample_mask_spans(n, gen, max_len=frames // 5) for n in row_lengths]
        codes = torch.randint(0, 2048, (batch, K_CODEBOOKS, frames), generator=gen)
        want = loop_rearrange(codes, row_lengths, spans)
        got, layout = voicecraft.causal_mask_rearrange(codes, spans, lengths=lengths)
        check_equal("voicecraft", "causal_mask_rearrange", [got], [want])
        inside = torch.arange(frames)[None, None, :] < lengths[:, None, None]
        original = torch.where(inside, codes, voicecraft.PAD)
        check_equal("voicecraft", "loop_inverse", [loop_inverse(want, row_lengths, spans, frames)], [original])
        check_equal("voicecraft", "causal_mask_inverse", [voicecraft.causal_mask_inverse(got, layout)], [original])
        common = {
            "bytes_processed": codes.numel() * codes.element_size(),
            "params": {"batch": batch, "codebooks": K_CODEBOOKS, "frames": frames, "spans": sum(map(len, spans))},
        }
        shape = f"B={batch} K={K_CODEBOOKS} T={frames}"
        rows = [
            ("Python loop per row and segment", lambda c=codes, n=row_lengths, s=spans: loop_rearrange(c, n, s)),
            (
                "causal_mask_rearrange (native)",
                lambda c=codes, n=lengths, s=spans: voicecraft.causal_mask_rearrange(c, s, lengths=n),
            ),
        ]
        add_rows(suite, f"voicecraft rearrange {shape}", rows, **common)
        rows = [
            (
                "Python loop per row and segment",
                lambda q=want, n=row_lengths, s=spans, t=frames: loop_inverse(q, n, s, t),
            ),
            ("causal_mask_inverse (native)", lambda q=got, lay=layout: voicecraft.causal_mask_inverse(q, lay)),
        ]
        add_rows(suite, f"voicecraft inverse {shape}", rows, **common)


def run(suite: Suite, quick: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    suite.note(SINGLE_THREAD_NOTE)
    with single_thread():
        _mask_cases(suite, quick, gen)
        _voicecraft_cases(suite, quick, gen)
