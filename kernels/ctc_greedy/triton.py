"""CTC greedy decoding in Triton: a fused argmax/validity kernel and a collapse/compaction kernel.

The argmax is the memory-bound part (it reads every score once), so it runs on a
[batch, frame-block] grid. The collapse needs the previous frame's label and an ordered
compaction, so it runs one program per utterance over the int32 argmax ids only (4 bytes a
frame instead of 4*V), carrying the running token count from block to block.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from speechdecode.kernels.ctc_greedy.reference import check_finite


@triton.jit
def _ctc_greedy_argmax_kernel(
    p_scores,
    p_lengths,
    p_best,
    stride_b,
    stride_t,
    T,
    V,
    BLOCK_T: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    i_b = tl.program_id(0)
    i_t = tl.program_id(1)
    length = tl.load(p_lengths + i_b)
    o_t = i_t * BLOCK_T + tl.arange(0, BLOCK_T)
    m_t = o_t < length
    best_val = tl.full([BLOCK_T], float("-inf"), tl.float32)
    best_idx = tl.zeros([BLOCK_T], tl.int32)
    invalid = tl.zeros([BLOCK_T], tl.int32)
    p_row = p_scores + i_b.to(tl.int64) * stride_b + o_t.to(tl.int64) * stride_t
    for v0 in range(0, V, BLOCK_V):
        o_v = v0 + tl.arange(0, BLOCK_V)
        m_v = o_v < V
        # [BLOCK_T, BLOCK_V]; out-of-range labels read as -inf so they never win a strict >
        b_x = tl.load(p_row[:, None] + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=float("-inf"))
        b_x = b_x.to(tl.float32)
        invalid |= tl.max(((b_x != b_x) | (b_x == float("inf"))).to(tl.int32), axis=1)
        b_max, b_arg = tl.max(b_x, axis=1, return_indices=True, return_indices_tie_break_left=True)
        # strict > keeps the earlier block on ties: the first maximum overall, as torch.argmax
        better = b_max > best_val
        best_idx = tl.where(better, b_arg + v0, best_idx)
        best_val = tl.where(better, b_max, best_val)
    # -1 marks a frame with a NaN / +inf score; the host turns it into a named error
    tl.store(p_best + i_b * T + o_t, tl.where(invalid > 0, -1, best_idx), mask=m_t)


@triton.jit
def _ctc_greedy_collapse_kernel(p_best, p_lengths, p_tokens, p_frames, p_counts, T, blank, BLOCK_T: tl.constexpr):
    i_b = tl.program_id(0)
    length = tl.load(p_lengths + i_b)
    count = tl.zeros([], tl.int32)
    for t0 in range(0, length, BLOCK_T):
        o_t = t0 + tl.arange(0, BLOCK_T)
        m_t = o_t < length
        b_best = tl.load(p_best + i_b * T + o_t, mask=m_t, other=blank)
        b_prev = tl.load(p_best + i_b * T + o_t - 1, mask=m_t & (o_t > 0), other=-1)
        b_keep = m_t & (b_best != blank) & (b_best != b_prev)
        b_pos = count + tl.cumsum(b_keep.to(tl.int32), axis=0) - 1
        tl.store(p_tokens + i_b * T + b_pos, b_best.to(tl.int64), mask=b_keep)
        tl.store(p_frames + i_b * T + b_pos, o_t.to(tl.int64), mask=b_keep)
        count += tl.sum(b_keep.to(tl.int32), axis=0)
    tl.store(p_counts + i_b, count)


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int):
    """log_probs [B, T, V] float32/16 (vocab axis contiguous), lengths [B] int64 -> packed output."""
    batch, frames, vocab = log_probs.shape
    if log_probs.stride(2) != 1:
        log_probs = log_probs.contiguous()
    device = log_probs.device
    best = torch.empty((batch, frames), dtype=torch.int32, device=device)
    tokens = torch.empty((batch, frames), dtype=torch.int64, device=device)
    token_frames = torch.empty((batch, frames), dtype=torch.int64, device=device)
    counts = torch.empty(batch, dtype=torch.int32, device=device)
    if batch > 0 and frames > 0:
        # A tile of ~4k scores: 16 frames of a 256-wide block keeps registers moderate.
        block_v = min(triton.next_power_of_2(vocab), 256)
        block_t = max(1, 4096 // block_v)
        _ctc_greedy_argmax_kernel[(batch, triton.cdiv(frames, block_t))](
            log_probs,
            lengths,
            best,
            log_probs.stride(0),
            log_probs.stride(1),
            frames,
            vocab,
            BLOCK_T=block_t,
            BLOCK_V=block_v,
        )
        valid = torch.arange(frames, device=device)[None, :] < lengths[:, None]
        if bool(((best < 0) & valid).any()):
            check_finite(log_probs, valid)
        _ctc_greedy_collapse_kernel[(batch,)](best, lengths, tokens, token_frames, counts, frames, blank, BLOCK_T=256)
    else:
        counts.zero_()
    keep = torch.arange(frames, device=device)[None, :] < counts[:, None]
    offsets = torch.zeros(batch + 1, dtype=torch.int64, device=device)
    offsets[1:] = counts.cumsum(0)
    return tokens[keep], token_frames[keep], offsets
