"""Repetition-aware sampling in Triton: one program per row, one launch per step, no sort.

The kernel fuses what :func:`speechdecode.decoding.ras.ras` does per row: softmax (float32),
the preset's nucleus, the candidate draw with ``u[:, 0]``, the count of the candidate in the
row's window of the history, the trigger, and the redraw with ``u[:, 1]``.

The nucleus is a prefix of the row sorted by probability descending, ties by lower id. It is
found without a sort, as in :mod:`speechdecode.kernels.sampling.triton`: a bisection on the
float32 bit patterns of the probabilities (non-negative floats order like their int32 bits)
lands exactly on the value of the group of equal probabilities where the prefix ends; every
token above that value is kept, every token below is dropped, and inside the group the
members are ranked by id (a cumulative count in vocabulary order) and tested one by one with
the reference's rule, so ties at the cut go to the lower ids exactly as the stable sort does.

Masses are accumulated in float64 and rounded to float32, as torch's CPU ``cumsum`` does for
the reference. The exponentials and the order of additions still differ from torch's by float32
rounding, so only a ``top_p`` within rounding of a cumulative mass, or a uniform within rounding
of a cumulative probability, can give a different token than the reference.

No value checks run on the host (they would synchronize it each step); the kernel writes -1 for
a row whose logits hold a NaN or +inf or are all -inf, or whose uniforms are outside [0, 1);
history values below -1 count as padding. The row must fit one block (V <= 131072, as for
:mod:`speechdecode.kernels.sampling.triton`).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from speechdecode.kernels.sampling.triton import (
    ONE_BITS,
    first_above,
    guided_row,
    kth_largest_bits,
    load_row,
    row_output,
)

_PRESET_IDS = {"paper": 0, "cosyvoice": 1, "flashcosyvoice": 2}


@triton.jit
def _group_below(b_p64, b_bits, top_p, INCLUSIVE: tl.constexpr, ONE: tl.constexpr):
    """The smallest bit pattern T in [0, ONE] whose mass above, rounded to float32, is < top_p
    (<= when INCLUSIVE): the value of the group of equal probabilities where the nucleus ends."""
    lo = tl.full([], -1, tl.int32)
    hi = tl.full([], ONE, tl.int32)
    for _ in range(31):
        mid = lo + (hi - lo) // 2
        above = tl.sum(tl.where(b_bits > mid, b_p64, 0.0), axis=0).to(tl.float32).to(tl.float64)
        if INCLUSIVE:
            ok = above <= top_p
        else:
            ok = above < top_p
        hi = tl.where(ok, mid, hi)
        lo = tl.where(ok, lo, mid)
    return tl.maximum(hi, 0)


@triton.jit
def _draw(b_q, o_v, m_v, u, V):
    """First id whose cumulative q (float64 sums rounded to float32) exceeds u * sum(q)."""
    b_c = tl.cumsum(b_q.to(tl.float64), axis=0).to(tl.float32)
    return first_above(b_c, b_q, o_v, m_v, u * tl.max(tl.where(m_v, b_c, 0.0), axis=0), V)


@triton.jit
def _ras_kernel(
    p_logits,
    p_uncond,
    p_cond2,
    stride_b,
    stride_v,
    scale,
    scale2,
    temperature,
    p_history,
    stride_hb,
    stride_hl,
    p_uniforms,
    p_options,
    p_out,
    V,
    L,
    window,
    top_k,
    PRESET: tl.constexpr,
    HAS_TOP_K: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_L: tl.constexpr,
    ONE: tl.constexpr,
    GUIDE: tl.constexpr,
):
    i_b = tl.program_id(0)
    o_v, m_v, b_x = load_row(p_logits, stride_b, stride_v, V, BLOCK_V)
    if GUIDE != 0:  # classifier-free guidance and temperature fused into the load
        b_x = guided_row(b_x, p_uncond, p_cond2, stride_b, stride_v, V, scale, scale2, BLOCK_V, GUIDE) / temperature
    u0 = tl.load(p_uniforms + i_b * 2)
    u1 = tl.load(p_uniforms + i_b * 2 + 1)
    top_p = tl.load(p_options)  # float64, as the reference compares
    threshold = tl.load(p_options + 1)

    # softmax in float32; masked lanes hold probability 0. A bad row (NaN, +inf, all -inf) is
    # computed on -inf in place of its bad entries and flagged at the end.
    b_ok = m_v & (b_x == b_x) & (b_x < float("inf"))
    b_x = tl.where(b_ok, b_x, float("-inf"))
    x_max = tl.max(b_x, axis=0)
    bad = (tl.sum((m_v & ~b_ok).to(tl.int32), axis=0) > 0) | (x_max == float("-inf"))
    bad = bad | ~((u0 >= 0.0) & (u0 < 1.0) & (u1 >= 0.0) & (u1 < 1.0))
    b_e = tl.where(m_v, tl.exp(b_x - tl.where(x_max == float("-inf"), 0.0, x_max)), 0.0)
    total = tl.sum(b_e, axis=0)
    b_p = b_e / tl.where(total > 0.0, total, 1.0)
    b_p64 = b_p.to(tl.float64)
    b_bits = b_p.to(tl.int32, bitcast=True)

    # nucleus: every token above the group value T, and the group's members that pass the
    # reference's test at their rank (j = members with a lower id)
    T = _group_below(b_p64, b_bits, top_p, PRESET == 2, ONE)
    b_eq = m_v & (b_bits == T)
    b_j = tl.cumsum(b_eq.to(tl.int32), axis=0) - b_eq.to(tl.int32)
    t_p = T.to(tl.float32, bitcast=True)
    mass_above = tl.sum(tl.where(b_bits > T, b_p64, 0.0), axis=0)
    b_incl = (mass_above + (b_j + 1).to(tl.float64) * t_p.to(tl.float64)).to(tl.float32)
    if PRESET == 2:
        b_pass = b_incl.to(tl.float64) <= top_p
    else:
        b_pass = (b_incl - t_p).to(tl.float64) < top_p
    b_keep = m_v & ((b_bits > T) | (b_eq & b_pass))
    if PRESET == 2:  # the most probable token (lowest id among equals) is always kept
        first = tl.min(tl.where(m_v & (b_p == tl.max(b_p, axis=0)), o_v, BLOCK_V), axis=0)
        b_keep = b_keep | (o_v == first)
    if HAS_TOP_K:
        # the k-th largest value K: the largest bit pattern with count(p >= K) >= top_k; of the
        # tokens equal to K, the lowest ids fill the k places left after those above K
        lo = kth_largest_bits(b_bits, m_v, top_k, ONE)
        b_eqk = m_v & (b_bits == lo)
        b_jk = tl.cumsum(b_eqk.to(tl.int32), axis=0) - b_eqk.to(tl.int32)
        room = top_k - tl.sum((m_v & (b_bits > lo)).to(tl.int32), axis=0)
        b_keep = b_keep & ((b_bits > lo) | (b_eqk & (b_jk < room)))
    candidate = _draw(tl.where(b_keep, b_p, 0.0), o_v, m_v, u0, V)

    # the candidate's count among the row's last `window` valid history entries
    o_l = tl.arange(0, BLOCK_L)
    m_l = o_l < L
    b_h = tl.load(p_history + i_b.to(tl.int64) * stride_hb + o_l.to(tl.int64) * stride_hl, mask=m_l, other=-1)
    b_valid = (m_l & (b_h >= 0)).to(tl.int32)
    n_valid = tl.sum(b_valid, axis=0)
    b_from_end = n_valid - tl.cumsum(b_valid, axis=0) + b_valid
    b_recent = (b_valid > 0) & (b_from_end <= window)
    count = tl.sum((b_recent & (b_h == candidate)).to(tl.int32), axis=0).to(tl.float64)
    length = tl.minimum(n_valid, window)
    if PRESET == 0:
        fire = count / window > threshold
    elif PRESET == 1:
        fire = count >= window * threshold
    else:
        fire = (length > 0) & (count / tl.maximum(length, 1).to(tl.float64) >= threshold)

    b_full = b_p
    if PRESET == 1:  # the candidate may not come back; if it held all the mass it stays
        b_full = tl.where(o_v == candidate, 0.0, b_p)
        fire = fire & (tl.max(b_full, axis=0) > 0.0)
    token = tl.where(fire, _draw(b_full, o_v, m_v, u1, V), candidate)

    tl.store(p_out + i_b, tl.where(bad, -1, token).to(tl.int64))


@functools.lru_cache(maxsize=64)
def _options(top_p: float, threshold: float, device: torch.device) -> torch.Tensor:
    """(top_p, threshold) as float64 on ``device``, made once per setting, not once per step."""
    return torch.tensor([top_p, threshold], dtype=torch.float64, device=device)


_GUIDES = {"uncond": 1, "dual": 2, "cond": 3}


def ras(logits, history, uniforms, options, guidance=None) -> torch.Tensor:
    """Tokens [B] int64 for a ``RasOptions``: logits [B, V] float (any strides), history [B, L]
    int64, uniforms [B, 2] float32, all on one device (CUDA, or CPU under TRITON_INTERPRET=1).

    ``guidance``: None, or (uncond, cond2 or None, s, s2, center, temperature) for the guided
    logits of ``logits`` (the cond pass; :func:`speechdecode.decoding.guided_ras`)."""
    B, V = logits.shape
    top_k = options.top_k
    out = row_output(logits)
    if B == 0:
        return out
    L = history.shape[1]
    block_v = triton.next_power_of_2(V)
    uncond = cond2 = None
    scale, scale2, temperature, guide = 1.0, 0.0, 1.0, 0
    if guidance is not None:
        uncond, cond2, scale, scale2, center, temperature = guidance
        guide = _GUIDES["dual" if cond2 is not None else center]
        logits, uncond = logits.contiguous(), uncond.contiguous()  # one set of strides for all inputs
        cond2 = None if cond2 is None else cond2.contiguous()
    _ras_kernel[(B,)](
        logits,
        logits if uncond is None else uncond,
        logits if cond2 is None else cond2,
        logits.stride(0),
        logits.stride(1),
        float(scale),
        float(scale2),
        float(temperature),
        history,
        history.stride(0),
        history.stride(1) if L > 0 else 1,
        uniforms.contiguous(),
        _options(options.top_p, options.threshold, logits.device),
        out,
        V,
        L,
        options.window,
        min(top_k or V, V),
        PRESET=_PRESET_IDS[options.preset],
        HAS_TOP_K=top_k is not None and top_k < V,
        BLOCK_V=block_v,
        BLOCK_L=triton.next_power_of_2(max(L, 1)),
        ONE=ONE_BITS,
        GUIDE=guide,
        num_warps=4 if block_v <= 4096 else 8,
    )
    return out
