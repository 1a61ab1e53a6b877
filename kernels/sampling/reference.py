"""Sampling, plain torch, one row at a time with a sort: the oracle the other backends must match.

Inputs are already validated by :func:`speechdecode.kernels.sampling.sample`: ``logits`` [B, V]
float, ``temperature``/``top_p``/``min_p``/``uniforms`` float32 [B], ``top_k`` int64 [B] (already
clamped to [1, V]), all on the logits' device.
"""

from __future__ import annotations

import torch


def _row_keep(raw: torch.Tensor, temperature, top_k, top_p, min_p) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept mask, unnormalized probabilities e) of one float32 row; temperature > 0."""
    x = raw / temperature
    e = torch.exp(x - x.max())  # unnormalized probabilities, max exactly 1
    # top-k: keep every token at least as likely as the k-th most likely (ties kept)
    ordered, _ = torch.sort(e, descending=True)
    keep = e >= ordered[int(top_k) - 1]
    # top-p: keep token i when the mass of tokens strictly more likely than i is < top_p
    if float(top_p) < 1.0:
        w = torch.where(keep, e, torch.zeros_like(e))
        ordered, _ = torch.sort(w, descending=True)
        before = torch.cumsum(ordered, 0) - ordered
        threshold = ordered[before < top_p * w.sum()].min()  # the kept set is a sorted prefix
        keep = keep & (w >= threshold)
    # min-p: keep tokens with p >= min_p * p_max
    return keep & (e >= min_p * e.max()), e


def _first_max(raw: torch.Tensor) -> int:
    return int((raw == raw.max()).nonzero()[0, 0])


def keep_mask(logits, temperature, top_k, top_p, min_p) -> torch.Tensor:
    B, V = logits.shape
    out = torch.zeros(B, V, dtype=torch.bool, device=logits.device)
    for b in range(B):
        raw = logits[b].float()
        if float(temperature[b]) == 0.0:
            out[b, _first_max(raw)] = True
        else:
            out[b] = _row_keep(raw, temperature[b], top_k[b], top_p[b], min_p[b])[0]
    return out


def sample(logits, temperature, top_k, top_p, min_p, uniforms) -> torch.Tensor:
    B, V = logits.shape
    out = torch.empty(B, dtype=torch.int64, device=logits.device)
    for b in range(B):
        raw = logits[b].float()
        if float(temperature[b]) == 0.0:  # greedy: the first index of the largest logit
            out[b] = _first_max(raw)
            continue
        keep, e = _row_keep(raw, temperature[b], top_k[b], top_p[b], min_p[b])
        w = torch.where(keep, e, torch.zeros_like(e))
        # inverse CDF in vocabulary order: first index whose cumulative weight exceeds u * total
        c = torch.cumsum(w, 0)
        idx = int((c <= uniforms[b] * w.sum()).sum())
        if idx >= V:  # u * total rounded up past the last cumulative value
            idx = int((w > 0).nonzero()[-1, 0])
        out[b] = idx
    return out


def guide(cond, uncond, cond2, scale: float, scale2: float, center: str) -> torch.Tensor:
    """Classifier-free-guided float32 logits, in transformers' order of operations; a token
    that is -inf in any input stays -inf."""
    c, u = cond.float(), uncond.float()
    masked = torch.isneginf(c) | torch.isneginf(u)
    c2 = None if cond2 is None else cond2.float()
    if c2 is not None:
        masked |= torch.isneginf(c2)
        c2 = c2.masked_fill(masked, 0.0)
    c, u = c.masked_fill(masked, 0.0), u.masked_fill(masked, 0.0)  # -inf - -inf would be NaN
    if center == "cond":
        g = c + (c - u) * scale
    else:
        g = u + (c - u) * scale
        if c2 is not None:
            g = g + (c2 - u) * scale2
    return g.masked_fill(masked, float("-inf"))


def guided_sample(cond, uncond, cond2, scale, scale2, center, temperature, top_k, top_p, min_p, uniforms):
    return sample(guide(cond, uncond, cond2, scale, scale2, center), temperature, top_k, top_p, min_p, uniforms)
