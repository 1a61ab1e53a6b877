"""Sampling in Triton: one program per row, the whole row in one block, no sort.

The top-k and top-p thresholds are found by bisection on the float32 bit patterns of the
unnormalized probabilities (non-negative floats order like their int32 bits), which lands on
the exact threshold value in 31 steps; then the draw is an inverse CDF in vocabulary order
with ``tl.cumsum``. The row must fit one block (V <= MAX_V).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from speechdecode.errors import InvalidArgumentError

MAX_V = 1 << 17
ONE_BITS = 0x3F800000  # float32 1.0, the largest unnormalized probability


@triton.jit
def load_row(p_logits, stride_b, stride_v, V, BLOCK_V: tl.constexpr):
    """This program's row of [B, V] logits as float32 [BLOCK_V] (-inf past V), with the ids and
    the mask of the lanes inside the row."""
    o_v = tl.arange(0, BLOCK_V)
    m_v = o_v < V
    p_row = p_logits + tl.program_id(0).to(tl.int64) * stride_b + o_v.to(tl.int64) * stride_v
    return o_v, m_v, tl.load(p_row, mask=m_v, other=float("-inf")).to(tl.float32)


@triton.jit
def kth_largest_bits(b_bits, m_v, k, ONE: tl.constexpr):
    """The k-th largest of the non-negative float32 bit patterns ``b_bits`` (lanes ``m_v``): the
    largest pattern ``lo`` with count(bits >= lo) >= k, found exactly in 31 bisection steps."""
    lo = tl.full([], 0, tl.int32)
    hi = tl.full([], ONE + 1, tl.int32)
    for _ in range(31):
        mid = lo + (hi - lo) // 2
        ok = tl.sum((m_v & (b_bits >= mid)).to(tl.int32), axis=0) >= k
        lo = tl.where(ok, mid, lo)
        hi = tl.where(ok, hi, mid)
    return lo


@triton.jit
def first_above(b_c, b_q, o_v, m_v, x, V):
    """Inverse CDF: the first id whose cumulative weight ``b_c`` (of the non-negative ``b_q``)
    exceeds ``x``; the last id with weight when ``x`` reached the total by rounding."""
    idx = tl.sum((m_v & (b_c <= x)).to(tl.int32), axis=0)
    last = tl.max(tl.where(b_q > 0.0, o_v, -1), axis=0)
    return tl.where(idx >= V, last, idx)


@triton.jit
def guided_row(
    b_c, p_uncond, p_cond2, stride_b, stride_v, V, scale, scale2, BLOCK_V: tl.constexpr, GUIDE: tl.constexpr
):
    """The row ``b_c`` guided as transformers' CFG processors compute it (GUIDE 1: u + (c - u) s,
    2: that + (c2 - u) s2, 3: c + (c - u) s); -inf in any input stays -inf."""
    _, _, b_u = load_row(p_uncond, stride_b, stride_v, V, BLOCK_V)  # [BLOCK_V]
    b_masked = (b_c == float("-inf")) | (b_u == float("-inf"))
    if GUIDE == 2:
        _, _, b_c2 = load_row(p_cond2, stride_b, stride_v, V, BLOCK_V)  # [BLOCK_V]
        b_masked = b_masked | (b_c2 == float("-inf"))
        b_c2 = tl.where(b_masked, 0.0, b_c2)
    # masked lanes (and lanes past V) computed on zeros: -inf - -inf would be NaN
    b_c = tl.where(b_masked, 0.0, b_c)
    b_u = tl.where(b_masked, 0.0, b_u)
    if GUIDE == 3:
        b_g = b_c + (b_c - b_u) * scale
    else:
        b_g = b_u + (b_c - b_u) * scale
    if GUIDE == 2:
        b_g = b_g + (b_c2 - b_u) * scale2
    return tl.where(b_masked, float("-inf"), b_g)


@triton.jit
def _sample_kernel(
    p_logits,
    p_uncond,
    p_cond2,
    stride_b,
    stride_v,
    scale,
    scale2,
    p_temperature,
    p_top_k,
    p_top_p,
    p_min_p,
    p_uniforms,
    p_out,
    V,
    BLOCK_V: tl.constexpr,
    ONE: tl.constexpr,
    GUIDE: tl.constexpr,
):
    i_b = tl.program_id(0)
    o_v, m_v, b_raw = load_row(p_logits, stride_b, stride_v, V, BLOCK_V)  # [BLOCK_V]
    if GUIDE != 0:  # classifier-free guidance fused into the load: no guided [B, V] array
        b_raw = guided_row(b_raw, p_uncond, p_cond2, stride_b, stride_v, V, scale, scale2, BLOCK_V, GUIDE)
    temperature = tl.load(p_temperature + i_b)
    top_k = tl.load(p_top_k + i_b).to(tl.int32)
    top_p = tl.load(p_top_p + i_b)
    min_p = tl.load(p_min_p + i_b)
    u = tl.load(p_uniforms + i_b)

    raw_max = tl.max(b_raw, axis=0)
    greedy = tl.min(tl.where(m_v & (b_raw == raw_max), o_v, BLOCK_V), axis=0)

    # greedy rows still run the sampling path (its result is discarded), so keep it finite
    t = tl.where(temperature == 0.0, 1.0, temperature)
    b_x = b_raw / t
    b_e = tl.exp(b_x - tl.max(b_x, axis=0))
    b_e = tl.where(m_v, b_e, 0.0)
    b_bits = b_e.to(tl.int32, bitcast=True)

    # top-k: every weight >= the k-th largest (ties at the threshold all kept)
    b_w = tl.where(b_bits >= kth_largest_bits(b_bits, m_v, top_k, ONE), b_e, 0.0)
    b_wbits = b_w.to(tl.int32, bitcast=True)

    # top-p: the smallest `hi` with mass(w > hi) < top_p * total; token i stays iff w_i >= hi
    target = top_p * tl.sum(b_w, axis=0)
    lo = tl.full([], -1, tl.int32)
    hi = tl.full([], ONE, tl.int32)
    for _ in range(31):
        mid = lo + (hi - lo) // 2
        above = tl.sum(tl.where(b_wbits > mid, b_w, 0.0), axis=0)
        ok = above < target
        hi = tl.where(ok, mid, hi)
        lo = tl.where(ok, lo, mid)
    hi = tl.where(top_p >= 1.0, -1, hi)  # top_p = 1 keeps everything, whatever the rounding
    b_w = tl.where(b_wbits >= hi, b_w, 0.0)

    b_w = tl.where(b_e >= min_p * tl.max(b_e, axis=0), b_w, 0.0)

    # inverse CDF in vocabulary order; cumsum of non-negatives never decreases
    idx = first_above(tl.cumsum(b_w, axis=0), b_w, o_v, m_v, u * tl.sum(b_w, axis=0), V)
    tl.store(p_out + i_b, tl.where(temperature == 0.0, greedy, idx).to(tl.int64))


def row_output(logits: torch.Tensor) -> torch.Tensor:
    """The int64 [B] output of a kernel with one program per row of [B, V] ``logits``, after
    checking that a row fits one block."""
    B, V = logits.shape
    if V > MAX_V:
        raise InvalidArgumentError("logits", f"at most {MAX_V} columns for the triton backend", V)
    return torch.empty(B, dtype=torch.int64, device=logits.device)


def sample(logits, temperature, top_k, top_p, min_p, uniforms) -> torch.Tensor:
    return _launch(logits, None, None, 1.0, 0.0, 0, temperature, top_k, top_p, min_p, uniforms)


def guided_sample(cond, uncond, cond2, scale, scale2, center, temperature, top_k, top_p, min_p, uniforms):
    guide = 3 if center == "cond" else 2 if cond2 is not None else 1
    # one set of strides for the (up to) three inputs
    rows = [t.contiguous() for t in (cond, uncond, cond2) if t is not None]
    cond, uncond = rows[0], rows[1]
    second = rows[2] if cond2 is not None else None
    return _launch(cond, uncond, second, scale, scale2, guide, temperature, top_k, top_p, min_p, uniforms)


def _launch(logits, uncond, cond2, scale, scale2, guide, temperature, top_k, top_p, min_p, uniforms):
    B, V = logits.shape
    out = row_output(logits)
    if B == 0:
        return out
    _sample_kernel[(B,)](
        logits,
        logits if uncond is None else uncond,
        logits if cond2 is None else cond2,
        logits.stride(0),
        logits.stride(1),
        float(scale),
        float(scale2),
        temperature.contiguous(),
        top_k.contiguous(),
        top_p.contiguous(),
        min_p.contiguous(),
        uniforms.contiguous(),
        out,
        V,
        BLOCK_V=triton.next_power_of_2(V),
        ONE=ONE_BITS,
        GUIDE=guide,
    )
    return out
