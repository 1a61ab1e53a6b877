"""VoiceCraft rearrangement, batched torch: one index for the whole batch, no loop over steps or codes.

Frame f, codebook k of row b goes to step ``pos[b, f] + k``, where ``pos[b, f]`` = its segment's
start + 1 + (f - the segment's first frame). The per-row layout is a handful of numbers per span
(where each segment and mask column starts), worked out in Python from the Python span lists;
``pos`` for every frame of the batch then comes from one batched ``searchsorted`` of the frames
over the segments' first frames. Through a skewed view of the output
(``view[b, k, t] = sequence[b, k, t + k]``) that one [B, T] index serves all K codebooks:
:func:`rearrange` pre-fills the output with empty/pad, scatters the codes through it and writes
the few end tokens and mask columns; :func:`inverse` gathers through it. The bulk is that fill
plus one scatter (or gather), which torch runs at memory speed on CPU and CUDA alike, so there
is no C++ or Triton for it.
"""

from __future__ import annotations

import torch


def _row_layout(length: int, spans: list[tuple[int, int]], num_k: int):
    """One row: (segments, mask columns, steps).

    segments: (first frame, frames, start step, end kind) in sequence order U_0..U_n, S_0..S_{n-1};
    end kind 0 none, 1 the utterance's end (eos, or eog without eos), 2 eog. mask columns:
    (step, span index) in sequence order.
    """
    n = len(spans)
    cuts = [0] + [e for _, e in spans]
    stops = [s for s, _ in spans] + [length]
    sources = [(cuts[j], stops[j] - cuts[j], 1 if j == n else 0) for j in range(n + 1)]
    sources += [(s, e - s, 2) for s, e in spans]
    masks_after = list(range(n)) * 2
    segments, masks, step = [], [], 0
    for j, (first, frames, end) in enumerate(sources):
        segments.append((first, frames, step, end))
        step += frames + (end > 0) + num_k
        if j < 2 * n:
            masks.append((step, masks_after[j]))
            step += 1
    return segments, masks, step


def _frame_steps(firsts: list[list[int]], starts: list[list[int]], lengths: torch.Tensor, frames: int):
    """pos [B, T]: the step, in codebook 0, of frame min(f, row length - 1); and that frame [B, T].

    ``firsts`` / ``starts``: per row, the segments' first frames in frame order and their start steps.
    """
    dev = lengths.device
    width = max(len(r) for r in firsts)
    first = torch.tensor([r + [frames + 1] * (width - len(r)) for r in firsts], dtype=torch.int64, device=dev)
    start = torch.tensor([r + [0] * (width - len(r)) for r in starts], dtype=torch.int64, device=dev)
    # frames past a row's end stand in for its last frame, so every index stays inside the row
    frame = torch.minimum(torch.arange(frames, device=dev)[None, :], lengths[:, None] - 1).contiguous()
    seg = torch.searchsorted(first, frame, right=True) - 1
    return start.gather(1, seg) + 1 + frame - first.gather(1, seg), frame


def _in_frame_order(segments):
    """Segments sorted by first frame (U_0, S_0, U_1, ...): (first frames, start steps)."""
    ordered = sorted(segments, key=lambda s: (s[0], s[3] == 2))  # an empty U_j before the span at its frame
    return [s[0] for s in ordered], [s[2] for s in ordered]


def _skewed(flat: torch.Tensor, batch: int, num_k: int, steps: int) -> torch.Tensor:
    """A [B, K, S-K+1] view of a [B, K, S] storage with ``view[b, k, t] = sequence[b, k, t + k]``:
    in it every codebook of a frame sits at the same index, so one [B, T] index serves all K."""
    return flat.as_strided((batch, num_k, steps - num_k + 1), (num_k * steps, steps + 1, 1))


def _padded(rows: list[list[int]], width: int, device) -> torch.Tensor:
    return torch.tensor([r + [-1] * (width - len(r)) for r in rows], dtype=torch.int64, device=device).reshape(
        len(rows), width
    )


def rearrange(codes: torch.Tensor, lengths: list[int], spans, tokens):
    """-> (sequence [B, K, S], sequence_lengths [B], segment_starts [B, 2N+1], mask_positions [B, 2N])."""
    batch, num_k, frames = codes.shape
    dev = codes.device
    rows = [_row_layout(lengths[b], spans[b], num_k) for b in range(batch)]
    steps = max(r[2] for r in rows)
    most = max(len(s) for s in spans)
    end_ids = [0, tokens.eog if tokens.eos is None else tokens.eos, tokens.eog]
    # special cells (row, step of codebook 0, id, codebook shift): end tokens shift with k, masks do not
    cells = [(b, st + 1 + n, end_ids[e], 1) for b, r in enumerate(rows) for _, n, st, e in r[0] if e]
    cells += [(b, st, tokens.masks[i], 0) for b, r in enumerate(rows) for st, i in r[1]]

    seq_lengths = torch.tensor([r[2] for r in rows], dtype=torch.int64, device=dev)
    flat = torch.empty(batch * num_k * steps, dtype=torch.int64, device=dev)
    sequence = flat.view(batch, num_k, steps)
    # empty inside each row, pad after it
    fill = torch.where(torch.arange(steps, device=dev)[None, :] < seq_lengths[:, None], tokens.empty, tokens.pad)
    sequence.copy_(fill[:, None, :].expand(batch, num_k, steps))

    lens = torch.tensor(lengths, dtype=torch.int64, device=dev)
    order = [_in_frame_order(r[0]) for r in rows]
    pos, frame = _frame_steps([o[0] for o in order], [o[1] for o in order], lens, frames)
    if min(lengths) < frames:  # ragged: frames past the end rewrite the last frame
        codes = codes.gather(2, frame[:, None, :].expand(batch, num_k, frames))
    _skewed(flat, batch, num_k, steps).scatter_(2, pos[:, None, :].expand(batch, num_k, frames), codes)

    table = torch.tensor(cells, dtype=torch.int64, device=dev).reshape(-1, 4)
    k = torch.arange(num_k, device=dev)[None, :]
    at = (table[:, :1] * num_k + k) * steps + table[:, 1:2] + k * table[:, 3:4]
    flat.scatter_(0, at.reshape(-1), table[:, 2:3].expand(-1, num_k).reshape(-1))

    segment_starts = _padded([[s[2] for s in r[0]] for r in rows], 2 * most + 1, dev)
    mask_positions = _padded([[m[0] for m in r[1]] for r in rows], 2 * most, dev)
    return sequence, seq_lengths, segment_starts, mask_positions


def inverse(sequence: torch.Tensor, lengths: list[int], spans, segment_starts: torch.Tensor, frames: int, pad: int):
    """sequence [B, K, S] (the layout of :func:`rearrange`) -> codes [B, K, frames], pad past each row's length."""
    batch, num_k, steps = sequence.shape
    dev = sequence.device
    starts = segment_starts.tolist()
    firsts, ordered_starts = [], []
    for b in range(batch):
        n = len(spans[b])
        cuts = [0] + [e for _, e in spans[b]]
        segments = [(cuts[j], 0, starts[b][j], 0) for j in range(n + 1)]
        segments += [(s, 0, starts[b][n + 1 + i], 2) for i, (s, _) in enumerate(spans[b])]
        first, start = _in_frame_order(segments)
        firsts.append(first)
        ordered_starts.append(start)
    lens = torch.tensor(lengths, dtype=torch.int64, device=dev)
    pos, _ = _frame_steps(firsts, ordered_starts, lens, frames)
    codes = _skewed(sequence.contiguous(), batch, num_k, steps).gather(2, pos[:, None, :].expand(batch, num_k, frames))
    return torch.where((torch.arange(frames, device=dev)[None, :] < lens[:, None])[:, None, :], codes, pad)


def revert_segments(segments: torch.Tensor) -> torch.Tensor:
    """[..., K, L] -> [..., K, L - K], out[..., k, t] = segments[..., k, t + k]."""
    num_k, length = segments.shape[-2:]
    frames = length - num_k
    return torch.stack([segments[..., k, k : k + frames] for k in range(num_k)], dim=-2)
