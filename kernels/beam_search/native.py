"""Beam-search step, batched torch (CPU or CUDA): a ``topk`` per beam row, then a small merge.

Same definition as :mod:`reference`; see :func:`speechdecode.kernels.beam_search.beam_search_step`.
``score + log_prob`` (float32) and the length-penalty division never reverse the order of two
log-probs of one row, so an item's best ``beam`` candidates come from the best ``beam + 1``
log-probs of each of its rows: one ``topk`` over [B*beam, V] (no [B*beam, V] sums), then the
definition's order (key descending, flat index ascending) by two stable sorts of the
B x beam*(beam+1) survivors. The merge is exact when every row's last survivor is strictly below
the item's beam-th key (nothing left out, and no -inf stand-in of a finished row, can reach or
tie it); an item where it is not (e.g. fewer than ``beam`` finite candidates, so -inf ties
decide) is redone with one stable sort of its full candidate row.
"""

from __future__ import annotations

import torch


def _full_candidates(log_probs, beam_scores, finished, eos: int) -> torch.Tensor:
    """cand [rows, V] float32: beam score + log prob; a finished row keeps only (eos, its score)."""
    cand = beam_scores[:, None] + log_probs.float()
    eos_column = torch.where(finished, beam_scores, cand[:, eos])
    cand.masked_fill_(finished[:, None], float("-inf"))
    cand[:, eos] = eos_column
    return cand


def _ordered(key: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Positions that sort each row by (key descending, index ascending)."""
    by_index = torch.sort(index, dim=1).indices
    by_key = torch.sort(-key.gather(1, by_index), dim=1, stable=True).indices
    return by_index.gather(1, by_key)


def beam_search_step(log_probs, beam_scores, finished, beam: int, eos: int, denom: float):
    R, V = log_probs.shape
    B = R // beam
    dev = log_probs.device
    take = min(beam + 1, V)
    top, token = torch.topk(log_probs, take, dim=1)  # per row, log-prob descending
    cand = beam_scores[:, None] + top.float()
    any_finished = bool(finished.any())
    if any_finished:
        # a finished row's one candidate is (eos, its score); its other survivors drop to -inf
        # (their tokens are then arbitrary: only -inf ties can reach them, and the check below
        # sends those items to the exact path)
        cand = cand.masked_fill(finished[:, None], float("-inf"))
        cand[:, 0] = torch.where(finished, beam_scores, cand[:, 0])
        token[:, 0] = torch.where(finished, eos, token[:, 0])
    divisor = torch.tensor(denom, dtype=torch.float32, device=dev)
    # x / 1.0 == x exactly, so the division only runs for a real length penalty
    key = cand if denom == 1.0 else cand / divisor
    flat = (torch.arange(beam, device=dev)[None, :, None] * V + token.view(B, beam, take)).view(B, beam * take)
    key, cand = key.view(B, beam * take), cand.view(B, beam * take)
    pick = _ordered(key, flat)[:, :beam]
    order, scores = flat.gather(1, pick), cand.gather(1, pick)
    if take < V or any_finished:
        cut = key.gather(1, pick[:, -1:])
        inexact = (key.view(B, beam, take)[:, :, -1] >= cut).any(dim=1)
        if bool(inexact.any()):
            items = inexact.nonzero()[:, 0]
            rows = (items[:, None] * beam + torch.arange(beam, device=dev)[None, :]).reshape(-1)
            full = _full_candidates(log_probs[rows], beam_scores[rows], finished[rows], eos).view(len(items), -1)
            full_key = full if denom == 1.0 else full / divisor
            exact = torch.sort(-full_key, dim=1, stable=True).indices[:, :beam]
            order[items], scores[items] = exact, full.gather(1, exact)
    return order % V, order // V, scores
