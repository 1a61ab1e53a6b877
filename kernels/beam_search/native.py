"""Beam-search step, batched torch (CPU or CUDA): one stable sort of the whole batch.

Same definition as :mod:`reference`; see :func:`speechdecode.kernels.beam_search.beam_search_step`.
"""

from __future__ import annotations

import torch

from speechdecode.kernels.beam_search.reference import candidates


def beam_search_step(log_probs, beam_scores, finished, beam: int, eos: int, denom: float):
    R, V = log_probs.shape
    B = R // beam
    cand = candidates(log_probs, beam_scores, finished, eos).reshape(B, beam * V)
    key = cand / torch.tensor(denom, dtype=torch.float32, device=cand.device)
    order = torch.sort(-key, dim=1, stable=True).indices[:, :beam]
    return order % V, order // V, cand.gather(1, order)
