"""Repetition-aware sampling, one row at a time: the oracle (definitions in
:mod:`speechdecode.kernels.ras.api` and docs/DEFINITIONS.md section 4)."""

from __future__ import annotations

import dataclasses

import torch


def ras(t, h, u, options) -> torch.Tensor:
    """Row-by-row RAS in plain Python control flow on checked inputs (float [B, V] logits, int64
    [B, L] history, float32 [B, 2] uniforms, a ``RasOptions``); every other backend must match it
    exactly."""
    window, threshold, top_k, top_p, preset = dataclasses.astuple(options)
    out = []
    for b in range(t.shape[0]):
        p = torch.softmax(t[b].float(), dim=-1)
        sorted_p, order = torch.sort(p, descending=True, stable=True)
        inclusive = torch.cumsum(sorted_p, dim=-1)
        kept = torch.zeros_like(p)
        for rank in range(p.shape[0]):
            if top_k is not None and rank >= top_k:
                break
            if preset == "flashcosyvoice":
                ok = rank == 0 or float(inclusive[rank]) <= top_p
            else:
                ok = float(inclusive[rank] - sorted_p[rank]) < top_p
            if not ok:
                break
            kept[order[rank]] = p[order[rank]]
        candidate = _draw(kept, u[b, 0])

        codes = [c for c in h[b].tolist() if c >= 0][-window:]
        count = codes.count(candidate)
        if preset == "paper":
            fire = count / window > threshold
        elif preset == "cosyvoice":
            fire = count >= window * threshold
        else:
            fire = bool(codes) and count / len(codes) >= threshold
        if fire:
            full = p.clone()
            if preset == "cosyvoice":
                full[candidate] = 0.0
            if float(full.sum()) > 0:
                candidate = _draw(full, u[b, 1])
        out.append(candidate)
    return torch.tensor(out, dtype=torch.int64, device=t.device)


def _draw(q: torch.Tensor, u: torch.Tensor) -> int:
    c = torch.cumsum(q, dim=-1)
    x = u * c[-1]
    for i in range(q.shape[0]):
        if c[i] > x:
            return i
    return max(i for i in range(q.shape[0]) if q[i] > 0)
