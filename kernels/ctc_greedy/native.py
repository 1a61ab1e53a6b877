"""The native (C++) CTC greedy decoder: csrc/decoding/ctc_greedy.h through ``_native.ctc_greedy``."""

from __future__ import annotations

import torch

from speechdecode import _backend


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, num_threads: int | None):
    """log_probs [B, T, V] CPU float tensor, lengths [B] int64 -> packed (tokens, frames, offsets)."""
    if log_probs.stride(2) != 1:
        log_probs = log_probs.contiguous()
    score_type = str(log_probs.dtype).removeprefix("torch.")
    if log_probs.dtype == torch.bfloat16:  # numpy has no bfloat16: pass the bit patterns
        log_probs = log_probs.view(torch.int16)
    packed = _backend.native().ctc_greedy(
        log_probs.numpy(), lengths.numpy(), blank, score_type=score_type, num_threads=num_threads or 0
    )
    return tuple(torch.from_numpy(a) for a in packed)
