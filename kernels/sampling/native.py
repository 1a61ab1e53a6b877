"""Sampling fast paths: the fused C++ kernel for CPU inputs (csrc/decoding/sampling.cc, when the
extension is built), else batched torch (CPU or CUDA): one partial sort of the batch, no Python
loop over rows.

Same definition as :mod:`reference`; see :func:`speechdecode.kernels.sampling.sample`.
"""

from __future__ import annotations

import torch

from speechdecode import _backend

# Top-k / top-p thresholds almost always lie among a row's few hundred largest weights: sorting
# that prefix (torch.topk) instead of whole rows is the fast path; whole rows are the fallback.
_PREFIX = 512


def _thresholds(e: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, zero: torch.Tensor, prefix: int):
    """Per row, (the top-k threshold, the top-p threshold) from the ``prefix`` largest weights of
    ``e``, or None when some row needs weights past the prefix."""
    V = e.shape[1]
    ordered = torch.topk(e, prefix, dim=1).values if prefix < V else torch.sort(e, dim=1, descending=True)[0]
    no_top_k = top_k >= V
    if prefix < V and bool((~no_top_k & (top_k > prefix)).any()):
        return None
    kth = torch.where(no_top_k, zero, ordered.gather(1, (top_k.clamp(max=prefix) - 1)[:, None]).squeeze(1))[:, None]
    # top-k zeroes a suffix of the sorted row, so the sorted kept weights stay sorted
    ordered = torch.where(ordered >= kth, ordered, zero)
    total = torch.where(e >= kth, e, zero).sum(dim=1, keepdim=True)
    before = torch.cumsum(ordered, 1) - ordered
    keep = (before < top_p[:, None] * total) | (top_p[:, None] >= 1)
    everything = top_p[:, None] >= 1  # no top-p: the threshold is 0, whatever the prefix holds
    if prefix < V and bool((keep[:, -1:] & (ordered[:, -1:] > 0) & ~everything).any()):
        return None  # the kept set may continue past the prefix
    last = keep.sum(dim=1) - 1  # keep is a prefix; its last value is the threshold
    return kth, torch.where(everything, zero, ordered.gather(1, last[:, None]))


def _keep(e: torch.Tensor, top_k, top_p, min_p) -> torch.Tensor:
    """Kept mask [B, V] from unnormalized probabilities ``e`` (row maxima exactly 1)."""
    V = e.shape[1]
    zero = torch.zeros((), dtype=e.dtype, device=e.device)
    cut = _thresholds(e, top_k, top_p, zero, prefix=min(V, _PREFIX))
    if cut is None:  # a row's nucleus or top-k reaches past the prefix: sort whole rows
        cut = _thresholds(e, top_k, top_p, zero, prefix=V)
    kth, threshold = cut
    return (e >= kth) & (e >= threshold) & (e >= min_p[:, None] * e.max(dim=1, keepdim=True).values)


def _probabilities(logits, temperature):
    """(unnormalized probabilities e [B, V], greedy rows [B] bool, first max [B])."""
    raw = logits.float()
    greedy = (raw == raw.max(dim=1, keepdim=True).values).int().argmax(dim=1)  # first max
    greedy_row = temperature == 0
    t = torch.where(greedy_row, torch.ones_like(temperature), temperature)
    x = raw / t[:, None]
    return torch.exp(x - x.max(dim=1, keepdim=True).values), greedy_row, greedy


def keep_mask(logits, temperature, top_k, top_p, min_p) -> torch.Tensor:
    e, greedy_row, greedy = _probabilities(logits, temperature)
    one_hot = torch.zeros_like(e, dtype=torch.bool).scatter(1, greedy[:, None], True)
    return torch.where(greedy_row[:, None], one_hot, _keep(e, top_k, top_p, min_p))


def sample(logits, temperature, top_k, top_p, min_p, uniforms) -> torch.Tensor:
    if logits.device.type == "cpu" and _backend.HAS_NATIVE:
        return sample_cpp(logits, temperature, top_k, top_p, min_p, uniforms)
    return sample_torch(logits, temperature, top_k, top_p, min_p, uniforms)


def float32_rows(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` as float32 with a contiguous vocabulary axis (a copy only when needed)."""
    x = logits.detach() if logits.dtype == torch.float32 else logits.detach().float()
    return x.contiguous() if x.shape[1] > 1 and x.stride(1) != 1 else x


def sample_cpp(logits, temperature, top_k, top_p, min_p, uniforms) -> torch.Tensor:
    """The C++ kernel; parameters are [B] tensors or Python scalars (shared by all rows)."""
    params = (v.numpy() if isinstance(v, torch.Tensor) else v for v in (temperature, top_k, top_p, min_p, uniforms))
    return torch.from_numpy(_backend.native().sample(float32_rows(logits).numpy(), *params))


def sample_torch(logits, temperature, top_k, top_p, min_p, uniforms) -> torch.Tensor:
    V = logits.shape[1]
    e, greedy_row, greedy = _probabilities(logits, temperature)
    w = torch.where(_keep(e, top_k, top_p, min_p), e, torch.zeros((), dtype=e.dtype, device=e.device))
    c = torch.cumsum(w, 1)
    idx = (c <= (uniforms * w.sum(dim=1))[:, None]).sum(dim=1)
    o_v = torch.arange(V, device=e.device)
    last_kept = torch.where(w > 0, o_v, -1).max(dim=1).values
    idx = torch.where(idx >= V, last_kept, idx)
    return torch.where(greedy_row, greedy, idx).to(torch.int64)


def guided_sample(cond, uncond, cond2, scale, scale2, center, temperature, top_k, top_p, min_p, uniforms):
    """CPU with the extension: the C++ loop guides each row into a scratch row and draws from it;
    elsewhere batched torch (the guided [B, V] logits, then :func:`sample_torch`)."""
    if cond.device.type == "cpu" and _backend.HAS_NATIVE:
        params = (v.numpy() for v in (temperature, top_k, top_p, min_p, uniforms))
        second = None if cond2 is None else float32_rows(cond2).numpy()
        return torch.from_numpy(
            _backend.native().guided_sample(
                float32_rows(cond).numpy(), float32_rows(uncond).numpy(), second, scale, scale2, center, *params
            )
        )
    from speechdecode.kernels.sampling.reference import guide

    return sample_torch(guide(cond, uncond, cond2, scale, scale2, center), temperature, top_k, top_p, min_p, uniforms)
