"""Sampling, plain torch, one row at a time with a sort: the oracle the other backends must match.

Inputs are already validated by :func:`speechdecode.kernels.sampling.sample`: ``logits`` [B, V]
float, ``temperature``/``top_p``/``min_p``/``uniforms`` float32 [B], ``top_k`` int64 [B] (already
clamped to [1, V]), all on the logits' device.
"""

from __future__ import annotations

import torch


def sample(logits, temperature, top_k, top_p, min_p, uniforms) -> torch.Tensor:
    B, V = logits.shape
    out = torch.empty(B, dtype=torch.int64, device=logits.device)
    for b in range(B):
        raw = logits[b].float()
        t = float(temperature[b])
        if t == 0.0:  # greedy: the first index of the largest logit
            out[b] = int((raw == raw.max()).nonzero()[0, 0])
            continue
        x = raw / temperature[b]
        e = torch.exp(x - x.max())  # unnormalized probabilities, max exactly 1
        # top-k: keep every token at least as likely as the k-th most likely (ties kept)
        ordered, _ = torch.sort(e, descending=True)
        kth = ordered[int(top_k[b]) - 1]
        w = torch.where(e >= kth, e, torch.zeros_like(e))
        # top-p: keep token i when the mass of tokens strictly more likely than i is < top_p
        if float(top_p[b]) < 1.0:
            ordered, _ = torch.sort(w, descending=True)
            before = torch.cumsum(ordered, 0) - ordered
            keep = before < top_p[b] * w.sum()
            threshold = ordered[keep].min()  # keep is a prefix of the sorted order
            w = torch.where(w >= threshold, w, torch.zeros_like(w))
        # min-p: keep tokens with p >= min_p * p_max
        w = torch.where(e >= min_p[b] * e.max(), w, torch.zeros_like(w))
        # inverse CDF in vocabulary order: first index whose cumulative weight exceeds u * total
        c = torch.cumsum(w, 0)
        idx = int((c <= uniforms[b] * w.sum()).sum())
        if idx >= V:  # u * total rounded up past the last cumulative value
            idx = int((w > 0).nonzero()[-1, 0])
        out[b] = idx
    return out
