"""Plain-torch CTC greedy decoding: the oracle for the native and Triton paths."""

from __future__ import annotations

import torch

from speechdecode.errors import TensorError


def check_finite(log_probs: torch.Tensor, valid: torch.Tensor) -> None:
    """Raise TensorError naming the first NaN / +inf score inside the valid frames."""
    x = log_probs.float()
    bad = (torch.isnan(x) | (x == float("inf"))) & valid[..., None]
    if bool(bad.any()):
        b, t, v = (int(i) for i in bad.nonzero()[0])
        kind = "NaN" if bool(torch.isnan(x[b, t, v])) else "+inf"
        raise TensorError("log_probs", "finite log-probabilities or -inf", f"{kind} at [{b}, {t}, {v}]")


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int):
    """log_probs [B, T, V] float, lengths [B] int64 -> packed (tokens, frames, offsets)."""
    batch, frames, _ = log_probs.shape
    valid = torch.arange(frames, device=log_probs.device)[None, :] < lengths[:, None]
    check_finite(log_probs, valid)
    best = log_probs.float().argmax(dim=-1)  # first maximum on ties
    previous = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    keep = valid & (best != blank) & (best != previous)
    tokens = best[keep]
    token_frames = keep.nonzero()[:, 1]
    offsets = torch.zeros(batch + 1, dtype=torch.int64, device=log_probs.device)
    offsets[1:] = keep.sum(dim=1).cumsum(0)
    return tokens, token_frames, offsets
