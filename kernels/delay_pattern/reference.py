"""Plain-torch delay pattern (audiocraft's DelayedPatternProvider): the oracle, loops allowed.

Step 0 of a sequence is all special; codebook k of frame t sits at step t + 1 + d_k.
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
        for t in range(steps):
            source = t - 1 - d
            if 0 <= source < frames:
                sequence[:, k, t] = codes[:, k, source]
                valid[k, t] = True
    return sequence, valid


def revert(sequence: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """sequence [B, K, S] -> codes [B, K, S - 1 - max(delays)] with z[b, k, t] = s[b, k, t + 1 + d_k]."""
    batch, num_k, steps = sequence.shape
    frames = steps - 1 - max(delays)
    codes = torch.empty((batch, num_k, frames), dtype=sequence.dtype, device=sequence.device)
    for k, d in enumerate(delays):
        for t in range(frames):
            codes[:, k, t] = sequence[:, k, t + 1 + d]
    return codes


def revert_logits(logits: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """logits [B, K, S, V] -> [B, K, S - 1 - max(delays), V], out[:, k, t] = logits[:, k, t + d_k].

    Logits at step t predict the sequence at step t + 1, and z[k, t] sits at step t + 1 + d_k.
    """
    batch, num_k, steps, vocab = logits.shape
    frames = steps - 1 - max(delays)
    out = torch.empty((batch, num_k, frames, vocab), dtype=logits.dtype, device=logits.device)
    for k, d in enumerate(delays):
        for t in range(frames):
            out[:, k, t] = logits[:, k, t + d]
    return out
