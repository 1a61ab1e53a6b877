"""Vectorized CPU delay pattern: one slice copy per codebook, no Python loop over time.

This is the ``native`` backend of this op. There is no C++ for it on purpose: the op is a
pure strided copy (K slices), which torch already does at memory speed; a C++ kernel would
add a build dependency and a numpy round trip without being faster.
"""

from __future__ import annotations

import torch


def build(codes: torch.Tensor, delays: list[int], special: int):
    """codes [B, K, T] int64 -> (sequence [B, K, T + max(delays) + 1], valid [K, same])."""
    batch, num_k, frames = codes.shape
    steps = frames + max(delays) + 1
    sequence = torch.full((batch, num_k, steps), special, dtype=torch.int64, device=codes.device)
    valid = torch.zeros((num_k, steps), dtype=torch.bool, device=codes.device)
    for k, d in enumerate(delays):
        sequence[:, k, 1 + d : 1 + d + frames] = codes[:, k]
        valid[k, 1 + d : 1 + d + frames] = True
    return sequence, valid


def revert(sequence: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """sequence [B, K, S] -> codes [B, K, S - 1 - max(delays)]."""
    frames = sequence.shape[2] - 1 - max(delays)
    return torch.stack([sequence[:, k, 1 + d : 1 + d + frames] for k, d in enumerate(delays)], dim=1)


def revert_logits(logits: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """logits [B, K, S, V] -> [B, K, S - 1 - max(delays), V], out[:, k, t] = logits[:, k, t + d_k]."""
    frames = logits.shape[2] - 1 - max(delays)
    return torch.stack([logits[:, k, d : d + frames] for k, d in enumerate(delays)], dim=1)
