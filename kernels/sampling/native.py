"""Sampling, batched torch (CPU or CUDA): one sort of the whole batch, no Python loop over rows.

Same definition as :mod:`reference`; see :func:`speechdecode.kernels.sampling.sample`.
"""

from __future__ import annotations

import torch


def sample(logits, temperature, top_k, top_p, min_p, uniforms) -> torch.Tensor:
    V = logits.shape[1]
    raw = logits.float()
    greedy = (raw == raw.max(dim=1, keepdim=True).values).int().argmax(dim=1)  # first max
    greedy_row = temperature == 0
    t = torch.where(greedy_row, torch.ones_like(temperature), temperature)
    x = raw / t[:, None]
    e = torch.exp(x - x.max(dim=1, keepdim=True).values)
    ordered, _ = torch.sort(e, dim=1, descending=True)  # the one sort
    kth = ordered.gather(1, (top_k - 1)[:, None])
    zero = torch.zeros((), dtype=e.dtype, device=e.device)
    w = torch.where(e >= kth, e, zero)
    # top-k zeroes a suffix of the sorted row, so the sorted kept weights stay sorted
    ordered = torch.where(ordered >= kth, ordered, zero)
    before = torch.cumsum(ordered, 1) - ordered
    keep = (before < top_p[:, None] * w.sum(dim=1, keepdim=True)) | (top_p[:, None] >= 1)
    last = keep.sum(dim=1) - 1  # keep is a prefix; its last value is the threshold
    threshold = ordered.gather(1, last[:, None])
    w = torch.where(w >= threshold, w, zero)
    w = torch.where(e >= min_p[:, None] * e.max(dim=1, keepdim=True).values, w, zero)
    c = torch.cumsum(w, 1)
    idx = (c <= (uniforms * w.sum(dim=1))[:, None]).sum(dim=1)
    o_v = torch.arange(V, device=e.device)
    last_kept = torch.where(w > 0, o_v, -1).max(dim=1).values
    idx = torch.where(idx >= V, last_kept, idx)
    return torch.where(greedy_row, greedy, idx).to(torch.int64)
