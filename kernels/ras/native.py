"""RAS fast paths: the fused C++ kernel for CPU inputs (csrc/decoding/sampling.cc), and batched
torch for any device (a partial sort of the batch, no loop over rows). Same definition as
:mod:`reference`; the options come checked from :mod:`speechdecode.kernels.ras.api`.
"""

from __future__ import annotations

import dataclasses

import torch

from speechdecode import _backend
from speechdecode.kernels.sampling.native import float32_rows

# The nucleus almost always lies among a row's few hundred most probable tokens: a partial sort
# of that prefix replaces a full sort of V (71% of a step at B=64, V=4096 before this).
_PREFIX = 512


def _stable_prefix(probs: torch.Tensor, k: int):
    """The ``k`` largest probabilities per row and their ids, in the order a stable descending
    sort gives (ties: lower id first); None when a tie straddles position k (then only a full
    sort is exact)."""
    vocab = probs.shape[-1]
    values, ids = torch.topk(probs, min(k + 1, vocab), dim=-1)
    if k < vocab:
        if bool((values[..., k - 1] == values[..., k]).any()):
            return None
        values, ids = values[..., :k], ids[..., :k]
    by_id = torch.sort(ids, dim=-1).indices
    values, ids = values.gather(-1, by_id), ids.gather(-1, by_id)
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices
    return values.gather(-1, order), ids.gather(-1, order)


def _nucleus_mask(probs: torch.Tensor, top_k, top_p: float, preset: str) -> torch.Tensor:
    """Boolean mask [B, V] of the kept tokens, in vocabulary order."""
    vocab = probs.shape[-1]
    prefix = _stable_prefix(probs, min(top_k or _PREFIX, vocab))
    if prefix is not None and top_k is None and bool((prefix[0].sum(dim=-1) < top_p).any()):
        prefix = None  # some row's nucleus reaches past the prefix
    if prefix is None:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    else:
        sorted_p, order = prefix
    inclusive = torch.cumsum(sorted_p, dim=-1)
    if preset == "flashcosyvoice":
        keep = inclusive <= top_p
        keep[..., 0] = True
    else:
        keep = (inclusive - sorted_p) < top_p
    if top_k is not None:
        keep[..., top_k:] = False
    return torch.zeros(probs.shape, dtype=torch.bool, device=probs.device).scatter(-1, order, keep)


def _inverse_cdf(q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """First id whose cumulative q exceeds u * sum(q), per row; q >= 0 with positive sum."""
    c = torch.cumsum(q, dim=-1)
    x = u * c[..., -1]
    idx = (c <= x.unsqueeze(-1)).sum(dim=-1)
    # u * total can round up to the total itself: fall back to the last token with mass.
    last = q.shape[-1] - 1 - torch.argmax((q.flip(-1) > 0).to(torch.int8), dim=-1)
    return torch.where(idx >= q.shape[-1], last, idx)


def _recent(history: torch.Tensor, window: int) -> torch.Tensor:
    """Mask of each row's last ``window`` valid entries (entries != -1, most recent last)."""
    valid = history >= 0
    from_end = torch.flip(torch.cumsum(torch.flip(valid, [1]).to(torch.int64), dim=1), [1])
    return valid & (from_end <= window)


def _trigger(count: torch.Tensor, length: torch.Tensor, window: int, threshold: float, preset: str):
    c = count.to(torch.float64)
    if preset == "paper":
        return c / window > threshold
    if preset == "cosyvoice":
        return c >= window * threshold
    return (length > 0) & (c / length.clamp(min=1).to(torch.float64) >= threshold)


def ras_cpp(t, h, u, options, guidance=None) -> torch.Tensor:
    """The fused C++ kernel (csrc/decoding/sampling.cc): one pass per row, rows on threads; with
    ``guidance`` (uncond, cond2, s, s2, center, temperature) each row is guided first."""
    o, extra = options, {}
    if guidance is not None:
        uncond, cond2, scale, scale2, center, temperature = guidance
        second = None if cond2 is None else float32_rows(cond2).numpy()
        extra = {"uncond": float32_rows(uncond).numpy(), "cond2": second, "scale": scale, "scale2": scale2,
                 "center": center, "temperature": temperature}  # fmt: skip
    out = _backend.native().repetition_aware_sample(
        float32_rows(t).numpy(), h.numpy(), o.window, o.threshold, o.top_k or 0, o.top_p, o.preset, u.numpy(), **extra
    )
    return torch.from_numpy(out)


def ras_torch(t, h, u, options) -> torch.Tensor:
    """Batched torch (any device): a partial sort of the batch, no loop over rows."""
    window, threshold, top_k, top_p, preset = dataclasses.astuple(options)
    probs = torch.softmax(t.float(), dim=-1)
    kept = torch.where(_nucleus_mask(probs, top_k, top_p, preset), probs, torch.zeros_like(probs))
    candidate = _inverse_cdf(kept, u[:, 0])

    recent = _recent(h, window)
    count = (recent & (h == candidate.unsqueeze(1))).sum(dim=1)
    fire = _trigger(count, recent.sum(dim=1), window, threshold, preset)

    full = probs
    if preset == "cosyvoice":
        full = probs.scatter(1, candidate.unsqueeze(1), 0.0)
        fire = fire & (full.sum(dim=1) > 0)
        full = torch.where(fire.unsqueeze(1), full, probs)
    redraw = _inverse_cdf(full, u[:, 1])
    return torch.where(fire, redraw, candidate)
