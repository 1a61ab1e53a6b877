"""Beam-search step, plain torch, one batch item at a time with a stable sort: the oracle.

Inputs are validated by :func:`speechdecode.kernels.beam_search.beam_search_step`:
``log_probs`` [B*beam, V] float, ``beam_scores`` float32 [B*beam], ``finished`` bool [B*beam],
``eos`` an int in [0, V), ``denom`` the float32-exact length-penalty divisor (1.0 for none).
"""

from __future__ import annotations

import torch


def candidates(log_probs, beam_scores, finished, eos: int) -> torch.Tensor:
    """cand [B*beam, V] float32: beam score + log prob; a finished row keeps only (eos, its score)."""
    cand = beam_scores[:, None] + log_probs.float()
    fin_row = torch.full_like(cand, float("-inf"))
    fin_row[:, eos] = beam_scores
    return torch.where(finished[:, None], fin_row, cand)


def beam_search_step(log_probs, beam_scores, finished, beam: int, eos: int, denom: float):
    R, V = log_probs.shape
    B = R // beam
    dev = log_probs.device
    cand = candidates(log_probs, beam_scores, finished, eos).reshape(B, beam * V)
    key = cand / torch.tensor(denom, dtype=torch.float32, device=dev)
    tokens = torch.empty((B, beam), dtype=torch.int64, device=dev)
    parents = torch.empty((B, beam), dtype=torch.int64, device=dev)
    scores = torch.empty((B, beam), dtype=torch.float32, device=dev)
    for b in range(B):
        # stable sort of -key: equal keys keep flat-index order, so the lower flat index wins
        order = torch.sort(-key[b], stable=True).indices[:beam]
        tokens[b] = order % V
        parents[b] = order // V
        scores[b] = cand[b, order]
    return tokens, parents, scores
