"""Beam-search step in Triton: one program per batch item, ``beam`` passes of max-extraction.

Pass k scans the item's beam*V candidates in blocks and picks the best one ordered strictly
after pass k-1's pick in the order (key descending, flat index ascending), so the k-th pass
finds the k-th best, ties to the lower flat index. Work is O(beam^2 * V): meant for small
beams (at most MAX_BEAM).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from speechdecode.errors import InvalidArgumentError

MAX_BEAM = 16
MAX_BLOCK = 1024


@triton.jit
def _beam_step_kernel(
    p_lp,
    stride_r,
    stride_v,
    p_scores,
    p_finished,
    p_tokens,
    p_parents,
    p_out_scores,
    V,
    eos,
    denom,
    BEAM: tl.constexpr,
    BLOCK: tl.constexpr,
):
    i_b = tl.program_id(0)
    N = BEAM * V
    row0 = i_b.to(tl.int64) * BEAM
    prev_key = tl.full([], float("inf"), tl.float32)
    prev_idx = tl.full([], -1, tl.int32)
    for k in tl.static_range(BEAM):
        best_key = tl.full([], float("-inf"), tl.float32)
        best_idx = tl.full([], 2147483647, tl.int32)
        for start in range(0, N, BLOCK):
            o = start + tl.arange(0, BLOCK)
            m = o < N
            r = o // V
            v = o - r * V
            lp = tl.load(p_lp + (row0 + r) * stride_r + v.to(tl.int64) * stride_v, mask=m, other=0.0)
            bs = tl.load(p_scores + row0 + r, mask=m, other=0.0)
            fin = tl.load(p_finished + row0 + r, mask=m, other=0) != 0
            cand = tl.where(fin, tl.where(v == eos, bs, float("-inf")), bs + lp.to(tl.float32))
            key = cand / denom
            ok = m & ((key < prev_key) | ((key == prev_key) & (o > prev_idx)))
            blk_key = tl.max(tl.where(ok, key, float("-inf")), axis=0)
            blk_idx = tl.min(tl.where(ok & (key == blk_key), o, 2147483647), axis=0)
            better = (blk_idx < 2147483647) & ((blk_key > best_key) | ((blk_key == best_key) & (blk_idx < best_idx)))
            best_key = tl.where(better, blk_key, best_key)
            best_idx = tl.where(better, blk_idx, best_idx)
        r = best_idx // V
        v = best_idx - r * V
        lp = tl.load(p_lp + (row0 + r) * stride_r + v.to(tl.int64) * stride_v)
        bs = tl.load(p_scores + row0 + r)
        fin = tl.load(p_finished + row0 + r) != 0
        cand = tl.where(fin, tl.where(v == eos, bs, float("-inf")), bs + lp.to(tl.float32))
        tl.store(p_tokens + i_b * BEAM + k, v.to(tl.int64))
        tl.store(p_parents + i_b * BEAM + k, r.to(tl.int64))
        tl.store(p_out_scores + i_b * BEAM + k, cand)
        prev_key = best_key
        prev_idx = best_idx


def beam_search_step(log_probs, beam_scores, finished, beam: int, eos: int, denom: float):
    R, V = log_probs.shape
    B = R // beam
    if beam > MAX_BEAM:
        raise InvalidArgumentError("beam", f"at most {MAX_BEAM} for the triton backend", beam)
    if beam * V >= 2**31 - 1:
        raise InvalidArgumentError("log_probs", "beam*V < 2**31 for the triton backend", beam * V)
    dev = log_probs.device
    tokens = torch.empty((B, beam), dtype=torch.int64, device=dev)
    parents = torch.empty((B, beam), dtype=torch.int64, device=dev)
    scores = torch.empty((B, beam), dtype=torch.float32, device=dev)
    _beam_step_kernel[(B,)](
        log_probs,
        log_probs.stride(0),
        log_probs.stride(1),
        beam_scores,
        finished.to(torch.int8).contiguous(),
        tokens,
        parents,
        scores,
        V,
        eos,
        denom,
        BEAM=beam,
        BLOCK=min(MAX_BLOCK, triton.next_power_of_2(beam * V)),
    )
    return tokens, parents, scores
