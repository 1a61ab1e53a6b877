"""Delay pattern in Triton: one program per (batch row, codebook, block of steps).

Both directions are a shifted copy along time, so each program reads one contiguous run of
its codebook's row (any strides) and writes one contiguous run; masks cover the ragged ends.
``revert_logits`` is a per-codebook slice, which torch copies at memory speed on any device.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from speechdecode.kernels.delay_pattern import native

BLOCK_T = 256


@triton.jit
def _delay_pattern_build_kernel(
    p_codes,
    p_delays,
    p_sequence,
    p_valid,
    stride_b,
    stride_k,
    stride_t,
    K,
    T,
    S,
    special,
    BLOCK: tl.constexpr,
):
    i_b = tl.program_id(0)
    i_k = tl.program_id(1)
    i_t = tl.program_id(2)
    delay = tl.load(p_delays + i_k)
    o_s = i_t * BLOCK + tl.arange(0, BLOCK)  # [BLOCK] output steps
    o_src = o_s - 1 - delay
    m_s = o_s < S
    m_src = m_s & (o_src >= 0) & (o_src < T)
    p_src = p_codes + i_b.to(tl.int64) * stride_b + i_k.to(tl.int64) * stride_k + o_src.to(tl.int64) * stride_t
    b_codes = tl.load(p_src, mask=m_src, other=special)
    row = (i_b.to(tl.int64) * K + i_k) * S
    tl.store(p_sequence + row + o_s, b_codes, mask=m_s)
    # the mask is shared by the batch: only row 0 writes it, so no two programs race on it
    if i_b == 0:
        tl.store(p_valid + i_k * S + o_s, m_src.to(tl.int8), mask=m_s)


@triton.jit
def _delay_pattern_revert_kernel(
    p_sequence,
    p_delays,
    p_codes,
    stride_b,
    stride_k,
    stride_s,
    K,
    T,
    BLOCK: tl.constexpr,
):
    i_b = tl.program_id(0)
    i_k = tl.program_id(1)
    i_t = tl.program_id(2)
    delay = tl.load(p_delays + i_k)
    o_t = i_t * BLOCK + tl.arange(0, BLOCK)  # [BLOCK] output frames
    m_t = o_t < T
    p_src = (
        p_sequence
        + i_b.to(tl.int64) * stride_b
        + i_k.to(tl.int64) * stride_k
        + (o_t + 1 + delay).to(tl.int64) * stride_s
    )
    b_codes = tl.load(p_src, mask=m_t)
    tl.store(p_codes + (i_b.to(tl.int64) * K + i_k) * T + o_t, b_codes, mask=m_t)


def _block(n: int) -> int:
    return min(BLOCK_T, max(16, triton.next_power_of_2(max(n, 1))))


def build(codes: torch.Tensor, delays: list[int], special: int):
    """codes [B, K, T] int64 (any strides) -> (sequence [B, K, T + max(delays) + 1], valid [K, same])."""
    batch, num_k, frames = codes.shape
    steps = frames + max(delays) + 1
    device = codes.device
    sequence = torch.empty((batch, num_k, steps), dtype=torch.int64, device=device)
    valid = torch.empty((num_k, steps), dtype=torch.int8, device=device)
    if batch == 0:
        return sequence, native.build(codes, delays, special)[1]
    d = torch.tensor(delays, dtype=torch.int64, device=device)
    block = _block(steps)
    _delay_pattern_build_kernel[(batch, num_k, triton.cdiv(steps, block))](
        codes, d, sequence, valid, *codes.stride(), num_k, frames, steps, special, BLOCK=block
    )
    return sequence, valid.bool()


def revert(sequence: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """sequence [B, K, S] (any strides) -> codes [B, K, S - 1 - max(delays)]."""
    batch, num_k, steps = sequence.shape
    frames = steps - 1 - max(delays)
    codes = torch.empty((batch, num_k, frames), dtype=sequence.dtype, device=sequence.device)
    if batch == 0 or frames == 0:
        return codes
    d = torch.tensor(delays, dtype=torch.int64, device=sequence.device)
    block = _block(frames)
    _delay_pattern_revert_kernel[(batch, num_k, triton.cdiv(frames, block))](
        sequence, d, codes, *sequence.stride(), num_k, frames, BLOCK=block
    )
    return codes


revert_logits = native.revert_logits
