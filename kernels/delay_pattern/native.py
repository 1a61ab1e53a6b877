"""Vectorized delay pattern: a strided copy of the codes, the special cells from a cached index.

This is the ``native`` backend of this op. There is no C++ for it on purpose: the op is a
pure strided copy, which torch already does at memory speed; a C++ kernel would add a build
dependency and a numpy round trip without being faster.

:func:`build` writes every output cell once: the layout (the [K, S] validity mask and the flat
positions of the special cells) depends only on (delays, T, device) and is cached; the special
cells are set with one indexed write, and the codes land with one copy through a skewed view
when the delays are evenly spaced (MusicGen's 0..K-1 among them), else one slice copy per codebook.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=64)
def _layout(delays: tuple[int, ...], frames: int, device: torch.device):
    """(valid [K, S] bool, flat positions of the special cells in a [K, S] row) for these delays."""
    steps = frames + delays[-1] + 1
    first = torch.tensor(delays, device=device)[:, None] + 1
    col = torch.arange(steps, device=device)[None, :]
    valid = (col >= first) & (col < first + frames)
    return valid, (~valid).reshape(-1).nonzero()[:, 0]


def build(codes: torch.Tensor, delays: list[int], special: int):
    """codes [B, K, T] int64 -> (sequence [B, K, T + max(delays) + 1], valid [K, same])."""
    batch, num_k, frames = codes.shape
    valid, special_at = _layout(tuple(delays), frames, codes.device)
    steps = valid.shape[1]
    sequence = torch.empty((batch, num_k, steps), dtype=torch.int64, device=codes.device)
    sequence.view(batch, num_k * steps)[:, special_at] = special
    gap = delays[1] - delays[0] if num_k > 1 else 0
    if all(d == delays[0] + k * gap for k, d in enumerate(delays)):
        # codebook k starts gap steps later than k-1: a row stride of S + gap lines them all up
        view = sequence.as_strided((batch, num_k, frames), (num_k * steps, steps + gap, 1), 1 + delays[0])
        view.copy_(codes)
    else:
        for k, d in enumerate(delays):
            sequence[:, k, 1 + d : 1 + d + frames] = codes[:, k]
    return sequence, valid.clone()


def revert(sequence: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """sequence [B, K, S] -> codes [B, K, S - 1 - max(delays)]."""
    frames = sequence.shape[2] - 1 - max(delays)
    return torch.stack([sequence[:, k, 1 + d : 1 + d + frames] for k, d in enumerate(delays)], dim=1)


def revert_logits(logits: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """logits [B, K, S, V] -> [B, K, S - 1 - max(delays), V], out[:, k, t] = logits[:, k, t + d_k]."""
    frames = logits.shape[2] - 1 - max(delays)
    return torch.stack([logits[:, k, d : d + frames] for k, d in enumerate(delays)], dim=1)
