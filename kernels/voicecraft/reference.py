"""VoiceCraft rearrangement written segment by segment with Python loops: the oracle.

Inputs are validated by :mod:`speechdecode.kernels.voicecraft`: ``codes`` [B, K, T] int64,
``lengths`` a list of B ints, ``spans`` a list of B lists of sorted, non-overlapping, non-empty
``(start, end)`` frame intervals inside the row, ``tokens`` a
:class:`~speechdecode.kernels.voicecraft.Tokens`.
"""

from __future__ import annotations

import torch


def _delayed(segment: torch.Tensor, empty: int) -> torch.Tensor:
    """[K, L] -> [K, L + K]: audiocraft's delay pattern, s[k, t] = segment[k, t - 1 - k], else empty."""
    num_k, length = segment.shape
    out = torch.full((num_k, length + num_k), empty, dtype=torch.int64, device=segment.device)
    for k in range(num_k):
        for t in range(length):
            out[k, t + 1 + k] = segment[k, t]
    return out


def _column(num_k: int, token: int, device) -> torch.Tensor:
    return torch.full((num_k, 1), token, dtype=torch.int64, device=device)


def rearrange(codes: torch.Tensor, lengths: list[int], spans: list[list[tuple[int, int]]], tokens):
    """-> (sequence [B, K, S], sequence_lengths [B], segment_starts [B, 2N+1], mask_positions [B, 2N])."""
    batch, num_k, _ = codes.shape
    dev = codes.device
    most = max((len(s) for s in spans), default=0)
    end_token = tokens.eog if tokens.eos is None else tokens.eos
    rows, seg_rows, mask_rows = [], [], []
    for b in range(batch):
        row_spans = spans[b]
        n = len(row_spans)
        cuts = [0] + [e for _, e in row_spans]
        stops = [s for s, _ in row_spans] + [lengths[b]]
        unmasked = [codes[b, :, cuts[j] : stops[j]] for j in range(n + 1)]
        masked = [codes[b, :, s:e] for s, e in row_spans]
        unmasked[n] = torch.cat([unmasked[n], _column(num_k, end_token, dev)], dim=1)
        masked = [torch.cat([m, _column(num_k, tokens.eog, dev)], dim=1) for m in masked]
        segments = unmasked + masked
        # the mask token after segment j: spans 1..n after U_0..U_{n-1}, then 1..n again before S_1..S_n
        masks_after = list(range(n)) + list(range(n))
        pieces, seg_starts, mask_pos, step = [], [], [], 0
        for j, segment in enumerate(segments):
            seg_starts.append(step)
            pieces.append(_delayed(segment, tokens.empty))
            step += pieces[-1].shape[1]
            if j < len(masks_after):
                mask_pos.append(step)
                pieces.append(_column(num_k, tokens.masks[masks_after[j]], dev))
                step += 1
        rows.append(torch.cat(pieces, dim=1))
        seg_rows.append(seg_starts + [-1] * (2 * most + 1 - len(seg_starts)))
        mask_rows.append(mask_pos + [-1] * (2 * most - len(mask_pos)))
    steps = max(r.shape[1] for r in rows)
    sequence = torch.full((batch, num_k, steps), tokens.pad, dtype=torch.int64, device=dev)
    for b, r in enumerate(rows):
        sequence[b, :, : r.shape[1]] = r
    seq_lengths = torch.tensor([r.shape[1] for r in rows], dtype=torch.int64, device=dev)
    seg_starts = torch.tensor(seg_rows, dtype=torch.int64, device=dev).reshape(batch, 2 * most + 1)
    mask_positions = torch.tensor(mask_rows, dtype=torch.int64, device=dev).reshape(batch, 2 * most)
    return sequence, seq_lengths, seg_starts, mask_positions


def inverse(
    sequence: torch.Tensor, lengths: list[int], spans: list[list[tuple[int, int]]], segment_starts, frames, pad
):
    """sequence [B, K, S] (the layout of :func:`rearrange`) -> codes [B, K, frames], pad past each row's length."""
    batch, num_k, _ = sequence.shape
    out = torch.full((batch, num_k, frames), pad, dtype=torch.int64, device=sequence.device)
    for b in range(batch):
        cuts = [0] + [e for _, e in spans[b]]
        stops = [s for s, _ in spans[b]] + [lengths[b]]
        sources = list(zip(cuts, stops, strict=True)) + list(spans[b])
        for j, (first, stop) in enumerate(sources):
            start = int(segment_starts[b, j])
            for k in range(num_k):
                for f in range(first, stop):
                    out[b, k, f] = sequence[b, k, start + 1 + k + f - first]
    return out


def revert_segments(segments: torch.Tensor) -> torch.Tensor:
    """[..., K, L] -> [..., K, L - K], out[..., k, t] = segments[..., k, t + k]."""
    num_k, length = segments.shape[-2:]
    out = torch.empty((*segments.shape[:-1], length - num_k), dtype=segments.dtype, device=segments.device)
    for k in range(num_k):
        for t in range(length - num_k):
            out[..., k, t] = segments[..., k, t + k]
    return out
