"""Repetition-aware sampling (VALL-E 2, section 3.4.1) with its three known presets.

A candidate c' is drawn by nucleus sampling; if c' already fills too much of the recent
history, the token is redrawn from the full distribution. The presets differ in exactly
where the nucleus ends, how the repetition rate is measured and compared, and whether the
candidate may come back in the redraw (docs/DEFINITIONS.md section 4):

``paper`` (VALL-E 2, section 3.4.1)
    Nucleus: sort by probability (descending, ties by lower id), keep a token while the mass
    before it is < top_p, so the token that crosses top_p is kept; ``top_k`` (optional) caps
    the count. r = count(c' in the last ``window`` generated codes) / ``window``.
    Redraw when r > threshold (strict), from the full distribution; c' may come back.
``cosyvoice`` (CosyVoice ``ras_sampling`` / ``nucleus_sampling``)
    Nucleus: top_k (default 25) and top_p applied jointly on the sorted distribution, keeping
    a token while the mass before it is < top_p and fewer than top_k are kept (the crossing
    token is kept). Count over the last ``window`` generated tokens (prompt excluded).
    Redraw when count >= window * threshold (so one repeat triggers with 10 / 0.1), from the
    full distribution with c' set to probability zero (CosyVoice since early 2026). If c' held
    all the mass, nothing else can be drawn and c' is kept.
``flashcosyvoice`` (FlashCosyVoice sampler)
    Nucleus: keep sorted tokens whose inclusive cumulative mass is <= top_p, so the crossing
    token is dropped, but at least the most probable token is kept; ``top_k`` (optional) caps
    the count. rate = count / (number of valid history entries in the window); a row with
    no history never redraws (there is nothing to repeat, even at threshold 0). Redraw when
    rate >= threshold, from the full distribution; c' may come back.

Both draws are inverse-CDF in vocabulary order: with kept probabilities q (zero outside the
kept set) and a uniform u in [0, 1), the token is the first id whose cumulative sum of q
exceeds u * sum(q). Each row consumes exactly two uniforms, ``u[:, 0]`` for the candidate and
``u[:, 1]`` for the redraw (used or not), so results are reproducible from the uniforms.
Probabilities are softmax(logits) in float32.

Implementations: :func:`ras` runs the fused C++ kernel (csrc/decoding/sampling.cc: one pass
per row, rows on threads) for CPU inputs when the extension is built, the fused Triton kernel
(kernels/sampling/ras_triton.py: one program per row, one launch per step) for CUDA inputs,
else a batched torch path (any device); ``_ras_reference`` is the per-row oracle all are
tested against. As for :func:`speechdecode.kernels.sampling.sample`, sums and exp may differ
by float32 rounding, so only a uniform (or top_p) within rounding of a cumulative value could
draw differently.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from speechdecode import _args, _backend, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.sampling import check_logit_rows, guidance_inputs, guidance_scales

__all__ = ["PRESETS", "RepetitionAwareSampler", "guided_ras", "ras"]

PRESETS = ("paper", "cosyvoice", "flashcosyvoice")
_COSYVOICE_TOP_K = 25


def _check_options(window, threshold, top_k, top_p, preset):
    if preset not in PRESETS:
        raise InvalidArgumentError("preset", f"one of {', '.join(PRESETS)}", repr(preset))
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
        raise InvalidArgumentError("window", "an integer >= 1", repr(window))
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise InvalidArgumentError("threshold", "a number in [0, 1]", repr(threshold))
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise InvalidArgumentError("top_k", "None or an integer >= 1", repr(top_k))
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0.0 < top_p <= 1.0:
        raise InvalidArgumentError("top_p", "a number in (0, 1]", repr(top_p))
    if preset == "cosyvoice" and top_k is None:
        top_k = _COSYVOICE_TOP_K
    return int(window), float(threshold), None if top_k is None else int(top_k), float(top_p)


def _check_logits(logits) -> torch.Tensor:
    t = _tensors.scores(logits, "logits", 2)
    if t.shape[1] == 0:
        raise TensorError("logits", "a vocabulary of at least one token", _tensors._describe(logits))
    check_logit_rows(t)
    return t


def _check_history(history, batch: int, device, check_values: bool = True) -> torch.Tensor:
    if history is None:
        return torch.empty((batch, 0), dtype=torch.int64, device=device)
    h = _tensors.as_tensor(history, "history")
    if h.ndim != 2 or h.shape[0] != batch:
        raise TensorError("history", f"shape [{batch}, L] (one row per logits row)", _tensors._describe(history))
    if h.dtype.is_floating_point or h.dtype.is_complex or h.dtype == torch.bool:
        raise TensorError("history", "an integer dtype", _tensors._describe(history))
    h = h.to(device=device, dtype=torch.int64)
    if not check_values:  # the native kernel checks them while it reads them
        return h
    bad = h < -1
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise TensorError("history", "codes >= 0 or -1 for padding", f"{int(h[i, j])} at row {i}, column {j}")
    return h


def _check_uniforms(uniforms, generator, batch: int, device, check_values: bool = True) -> torch.Tensor:
    if uniforms is None:
        gdev = generator.device if generator is not None else device
        return torch.rand((batch, 2), generator=generator, dtype=torch.float32, device=gdev).to(device)
    u = _tensors.as_tensor(uniforms, "uniforms")
    if u.ndim != 2 or u.shape[0] != batch or u.shape[1] != 2:
        raise TensorError("uniforms", f"shape [{batch}, 2]", _tensors._describe(uniforms))
    if not u.dtype.is_floating_point:
        raise TensorError("uniforms", "a floating-point dtype", _tensors._describe(uniforms))
    u = u.to(device=device, dtype=torch.float32)
    if not check_values:
        return u
    bad = ~((u >= 0) & (u < 1))
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise TensorError("uniforms", "values in [0, 1)", f"{float(u[i, j])} at row {i}, column {j}")
    return u


# The nucleus almost always lies among a row's few hundred most probable tokens: a partial sort
# of that prefix replaces a full sort of V (71% of a step at B=64, V=4096 before this).
_PREFIX = 512


def _stable_prefix(probs: torch.Tensor, k: int):
    """The ``k`` largest probabilities per row and their ids, in the order a stable descending
    sort gives (ties: lower id first); None when a tie straddles position k (then only a full
    sort is exact)."""
    vocab = probs.shape[-1]
    values, ids = torch.topk(probs, min(k + 1, vocab), dim=-1)
    if k < vocab:
        if bool((values[..., k - 1] == values[..., k]).any()):
            return None
        values, ids = values[..., :k], ids[..., :k]
    by_id = torch.sort(ids, dim=-1).indices
    values, ids = values.gather(-1, by_id), ids.gather(-1, by_id)
    order = torch.sort(values, dim=-1, descending=True, stable=True).indices
    return values.gather(-1, order), ids.gather(-1, order)


def _nucleus_mask(probs: torch.Tensor, top_k, top_p: float, preset: str) -> torch.Tensor:
    """Boolean mask [B, V] of the kept tokens, in vocabulary order."""
    vocab = probs.shape[-1]
    prefix = _stable_prefix(probs, min(top_k or _PREFIX, vocab))
    if prefix is not None and top_k is None and bool((prefix[0].sum(dim=-1) < top_p).any()):
        prefix = None  # some row's nucleus reaches past the prefix
    if prefix is None:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    else:
        sorted_p, order = prefix
    inclusive = torch.cumsum(sorted_p, dim=-1)
    if preset == "flashcosyvoice":
        keep = inclusive <= top_p
        keep[..., 0] = True
    else:
        keep = (inclusive - sorted_p) < top_p
    if top_k is not None:
        keep[..., top_k:] = False
    return torch.zeros(probs.shape, dtype=torch.bool, device=probs.device).scatter(-1, order, keep)


def _inverse_cdf(q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """First id whose cumulative q exceeds u * sum(q), per row; q >= 0 with positive sum."""
    c = torch.cumsum(q, dim=-1)
    x = u * c[..., -1]
    idx = (c <= x.unsqueeze(-1)).sum(dim=-1)
    # u * total can round up to the total itself: fall back to the last token with mass.
    last = q.shape[-1] - 1 - torch.argmax((q.flip(-1) > 0).to(torch.int8), dim=-1)
    return torch.where(idx >= q.shape[-1], last, idx)


def _recent(history: torch.Tensor, window: int) -> torch.Tensor:
    """Mask of each row's last ``window`` valid entries (entries != -1, most recent last)."""
    valid = history >= 0
    from_end = torch.flip(torch.cumsum(torch.flip(valid, [1]).to(torch.int64), dim=1), [1])
    return valid & (from_end <= window)


def _trigger(count: torch.Tensor, length: torch.Tensor, window: int, threshold: float, preset: str):
    c = count.to(torch.float64)
    if preset == "paper":
        return c / window > threshold
    if preset == "cosyvoice":
        return c >= window * threshold
    return (length > 0) & (c / length.clamp(min=1).to(torch.float64) >= threshold)


def ras(
    logits,
    history=None,
    *,
    window: int = 10,
    threshold: float = 0.1,
    top_k: int | None = None,
    top_p: float = 0.8,
    preset: str = "paper",
    uniforms=None,
    generator: torch.Generator | None = None,
    backend: str | None = None,
):
    """Repetition-aware sampling of one token per row (VALL-E 2; presets in the module doc).

    Args:
        logits: [B, V] float32/float16/bfloat16 scores (numpy or torch, CPU or CUDA); -inf
            allowed, NaN and +inf not, and each row needs one finite entry.
        history: [B, L] integer codes generated so far for each row (prompt excluded), most
            recent last, -1 for padding; only the last ``window`` valid entries count. None
            means no history.
        window: K, the number of recent codes looked at (>= 1).
        threshold: t_r in [0, 1].
        top_k: cap on the nucleus size, None for none (``cosyvoice`` uses 25 when None).
        top_p: nucleus mass v in (0, 1].
        preset: ``"paper"``, ``"cosyvoice"`` or ``"flashcosyvoice"``.
        uniforms: [B, 2] floats in [0, 1): column 0 draws the candidate, column 1 the redraw.
            When None they are drawn with ``torch.rand`` from ``generator``.
        generator: torch.Generator for the uniforms when none are supplied.
        backend: "native" (default: the fused C++ kernel for CPU inputs when the extension
            is built, else batched torch), "reference" (the per-row loop, the oracle), or
            "triton" (the default for CUDA inputs: one fused kernel launch per step, no host
            synchronization, kernels/sampling/ras_triton.py; CPU inputs need TRITON_INTERPRET=1).
            ``SPEECHDECODE_BACKEND`` sets the default (speechdecode._backend). The triton path
            runs no value checks on the host: a row with NaN, +inf or all -inf logits, or
            uniforms outside [0, 1), gets token -1, and history values below -1 count as
            padding; V is at most 131072 there.

    Returns:
        int64 [B] tokens, a numpy array when ``logits`` was one, else a tensor on its device.

    Raises:
        TensorError: logits not 2-D float, with NaN or +inf (names the row) or a row all -inf;
            history not [B, L] integer or with values < -1; uniforms not [B, 2] in [0, 1).
        InvalidArgumentError: top_p outside (0, 1], top_k < 1, window < 1, threshold outside
            [0, 1], unknown preset.

    Example:
        >>> logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
        >>> ras(logits, torch.tensor([[0]]), window=10, threshold=0.1, top_p=0.6,
        ...     preset="cosyvoice", uniforms=torch.tensor([[0.1, 0.1]]))
        tensor([1])
    """
    window, threshold, top_k, top_p = _check_options(window, threshold, top_k, top_p, preset)
    t = _tensors.scores(logits, "logits", 2)
    if t.shape[1] == 0:
        raise TensorError("logits", "a vocabulary of at least one token", _tensors._describe(logits))
    batch, device = t.shape[0], t.device
    name = _backend.select(device.type, backend, torch_native=True)
    native = name == "native" and device.type == "cpu" and _backend.HAS_NATIVE
    # the native kernel checks logits, history and uniform values while it reads them; the
    # Triton kernel flags bad rows with -1 instead (a host check would synchronize each step)
    checked = not (native or name == "triton")
    h = _check_history(history, batch, device, check_values=checked)
    u = _check_uniforms(uniforms, generator, batch, device, check_values=checked)
    if native:
        tokens = _ras_native(t, h, u, window, threshold, top_k, top_p, preset)
    elif name == "triton":
        from speechdecode.kernels.sampling import ras_triton

        tokens = ras_triton.ras(t, h, u, window, threshold, top_k, top_p, preset)
    elif name == "reference":
        tokens = _ras_reference(
            t, h, window=window, threshold=threshold, top_k=top_k, top_p=top_p, preset=preset, uniforms=u
        )
    else:
        tokens = _ras_torch(_check_logits(t), h, u, window, threshold, top_k, top_p, preset)
    return _tensors.like_input(tokens, logits)


def guided_ras(
    cond,
    uncond,
    guidance_scale: float,
    history=None,
    *,
    cond2=None,
    guidance_scale2: float | None = None,
    center: str = "uncond",
    temperature: float = 1.0,
    window: int = 10,
    threshold: float = 0.1,
    top_k: int | None = None,
    top_p: float = 0.8,
    preset: str = "paper",
    uniforms=None,
    generator: torch.Generator | None = None,
    backend: str | None = None,
):
    """:func:`ras` of classifier-free-guided logits divided by ``temperature``, in one pass.

    The guided logits are :func:`~speechdecode.kernels.sampling.guided_sample`'s (MusicGen's
    ``u + (c - u) * s``, VoiceLDM's dual form with ``cond2``, Dia's ``c + (c - u) * s`` with
    ``center="cond"``; -inf in any input stays -inf), then divided by the temperature, as
    transformers runs its CFG processor before its temperature warper. The native (C++) and
    Triton backends guide each row where they draw it, with no guided [B, V] array; the
    reference and torch paths guide, then run :func:`ras`'s.

    Args:
        cond, uncond, cond2: [B, V] float logits of the passes (same shape and device).
        guidance_scale, guidance_scale2, center: as for ``guided_sample``.
        temperature: > 0, divides the guided logits.
        history, window, threshold, top_k, top_p, preset, uniforms, generator, backend: as for
            :func:`ras` (the Triton path flags bad rows with -1 as ``ras`` does).

    Returns:
        int64 [B] tokens (numpy in, numpy out).

    Raises:
        TensorError: inputs of other shapes or devices, NaN or +inf in one (named), a row with no
            token finite in every input; the errors of :func:`ras`.
        InvalidArgumentError: bad scales, center or temperature; the errors of :func:`ras`.
    """
    window, threshold, top_k, top_p = _check_options(window, threshold, top_k, top_p, preset)
    scale, scale2 = guidance_scales(center, guidance_scale, cond2, guidance_scale2)
    temperature = _args.real(temperature, "temperature", low=0.0, strict=True)
    device = _tensors.scores(cond, "cond", 2).device
    name = _backend.select(device.type, backend, torch_native=True)
    native = name == "native" and device.type == "cpu" and _backend.HAS_NATIVE
    checked = not (native or name == "triton")
    c, un, c2 = guidance_inputs(cond, uncond, cond2, check_values=checked)
    if c.shape[1] == 0:
        raise TensorError("cond", "a vocabulary of at least one token", _tensors._describe(cond))
    h = _check_history(history, c.shape[0], device, check_values=checked)
    u = _check_uniforms(uniforms, generator, c.shape[0], device, check_values=checked)
    guidance = (un, c2, scale, scale2, center, temperature)
    if native:
        tokens = _ras_native(c, h, u, window, threshold, top_k, top_p, preset, guidance)
    elif name == "triton":
        from speechdecode.kernels.sampling import ras_triton

        tokens = ras_triton.ras(c, h, u, window, threshold, top_k, top_p, preset, guidance)
    else:  # batched torch or the per-row oracle, on the guided [B, V] logits
        from speechdecode.kernels.sampling.reference import guide

        x = guide(c, un, c2, scale, scale2, center) / temperature
        if name == "reference":
            options = {"window": window, "threshold": threshold, "top_k": top_k, "top_p": top_p, "preset": preset}
            tokens = _ras_reference(x, h, uniforms=u, **options)
        else:
            tokens = _ras_torch(_check_logits(x), h, u, window, threshold, top_k, top_p, preset)
    return _tensors.like_input(tokens, cond)


def _float32_rows(t: torch.Tensor) -> np.ndarray:
    """``t`` as float32 numpy rows with a contiguous vocabulary axis (no copy when it is one)."""
    x = t.detach() if t.dtype == torch.float32 else t.detach().float()
    if x.shape[1] > 1 and x.stride(1) != 1:
        x = x.contiguous()
    return x.numpy()


def _ras_native(t, h, u, window, threshold, top_k, top_p, preset, guidance=None) -> torch.Tensor:
    """The fused C++ kernel (csrc/decoding/sampling.cc): one pass per row, rows on threads; with
    ``guidance`` (uncond, cond2, s, s2, center, temperature) each row is guided first."""
    extra = {}
    if guidance is not None:
        uncond, cond2, scale, scale2, center, temperature = guidance
        second = None if cond2 is None else _float32_rows(cond2)
        extra = {"uncond": _float32_rows(uncond), "cond2": second, "scale": scale, "scale2": scale2,
                 "center": center, "temperature": temperature}  # fmt: skip
    out = _backend.native().repetition_aware_sample(
        _float32_rows(t), h.numpy(), window, threshold, top_k or 0, top_p, preset, u.numpy(), **extra
    )
    return torch.from_numpy(out)


def _ras_torch(t, h, u, window, threshold, top_k, top_p, preset) -> torch.Tensor:
    """Batched torch (any device): a partial sort of the batch, no loop over rows."""
    probs = torch.softmax(t.float(), dim=-1)
    kept = torch.where(_nucleus_mask(probs, top_k, top_p, preset), probs, torch.zeros_like(probs))
    candidate = _inverse_cdf(kept, u[:, 0])

    recent = _recent(h, window)
    count = (recent & (h == candidate.unsqueeze(1))).sum(dim=1)
    fire = _trigger(count, recent.sum(dim=1), window, threshold, preset)

    full = probs
    if preset == "cosyvoice":
        full = probs.scatter(1, candidate.unsqueeze(1), 0.0)
        fire = fire & (full.sum(dim=1) > 0)
        full = torch.where(fire.unsqueeze(1), full, probs)
    redraw = _inverse_cdf(full, u[:, 1])
    return torch.where(fire, redraw, candidate)


def _ras_reference(logits, history, *, window=10, threshold=0.1, top_k=None, top_p=0.8, preset="paper", uniforms):
    """Row-by-row RAS in plain Python control flow; ``ras`` must match it exactly."""
    window, threshold, top_k, top_p = _check_options(window, threshold, top_k, top_p, preset)
    t = _check_logits(logits)
    h = _check_history(history, t.shape[0], t.device)
    u = _check_uniforms(uniforms, None, t.shape[0], t.device)
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
        candidate = _draw_reference(kept, u[b, 0])

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
                candidate = _draw_reference(full, u[b, 1])
        out.append(candidate)
    return _tensors.like_input(torch.tensor(out, dtype=torch.int64, device=t.device), logits)


def _draw_reference(q: torch.Tensor, u: torch.Tensor) -> int:
    c = torch.cumsum(q, dim=-1)
    x = u * c[-1]
    for i in range(q.shape[0]):
        if c[i] > x:
            return i
    return max(i for i in range(q.shape[0]) if q[i] > 0)


class RepetitionAwareSampler:
    """Stateful RAS for a batch decoded in lockstep: keeps each row's last ``window`` tokens.

    Args:
        window, threshold, top_k, top_p, preset: as for :func:`ras`.
        batch_size: B, the number of rows.
        device: where the ring buffer lives (the logits' device at each step).
        generator: optional torch.Generator used by :meth:`step` when no uniforms are given.

    ``step(logits)`` samples [B] int64 tokens exactly as ``ras(logits, history)`` would with
    the tokens this sampler returned since the row's last reset as history, then records
    them. ``reset(rows=None)`` forgets the history of the given rows (all when None), e.g.
    when a row starts a new utterance. The prompt is never part of the history.

    Example:
        >>> s = RepetitionAwareSampler(batch_size=2, preset="cosyvoice")
        >>> tokens = s.step(torch.randn(2, 1024))
    """

    def __init__(
        self,
        window: int = 10,
        threshold: float = 0.1,
        top_k: int | None = None,
        top_p: float = 0.8,
        preset: str = "paper",
        batch_size: int = 1,
        device=None,
        generator: torch.Generator | None = None,
    ):
        _check_options(window, threshold, top_k, top_p, preset)
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise InvalidArgumentError("batch_size", "an integer >= 1", repr(batch_size))
        self.window, self.threshold, self.top_k, self.top_p, self.preset = window, threshold, top_k, top_p, preset
        self.batch_size = int(batch_size)
        self.generator = generator
        self.buffer = torch.full((self.batch_size, int(window)), -1, dtype=torch.int64, device=device)
        self._pos = 0

    @property
    def history(self) -> torch.Tensor:
        """[B, window] recent tokens, oldest first, -1 where a row has fewer."""
        return torch.roll(self.buffer, -self._pos, dims=1)

    def step(self, logits, *, uniforms=None):
        """Sample one token per row from [B, V] logits and record it; returns int64 [B]."""
        t = _tensors.scores(logits, "logits", 2)
        if t.shape[0] != self.batch_size:
            raise TensorError("logits", f"shape [{self.batch_size}, V]", _tensors._describe(logits))
        if self.buffer.device != t.device:
            self.buffer = self.buffer.to(t.device)
        tokens = ras(
            t,
            self.buffer,
            window=self.window,
            threshold=self.threshold,
            top_k=self.top_k,
            top_p=self.top_p,
            preset=self.preset,
            uniforms=uniforms,
            generator=self.generator,
        )
        self.buffer[:, self._pos] = tokens
        self._pos = (self._pos + 1) % self.window
        return _tensors.like_input(tokens, logits)

    def reset(self, rows=None) -> None:
        """Forget the history of ``rows`` (an index, list, bool mask or tensor; None = all)."""
        if rows is None:
            self.buffer.fill_(-1)
            self._pos = 0
            return
        if isinstance(rows, numbers.Integral) and not isinstance(rows, bool):
            if not -self.batch_size <= int(rows) < self.batch_size:
                raise InvalidArgumentError("rows", f"a row index in [0, {self.batch_size})", int(rows))
            rows = [int(rows)]
        idx = torch.as_tensor(rows, device=self.buffer.device)
        if idx.dtype == torch.bool:
            if idx.shape != (self.batch_size,):
                raise TensorError("rows", f"a bool mask of shape [{self.batch_size}]", list(idx.shape))
        elif idx.numel() and (bool((idx < -self.batch_size).any()) or bool((idx >= self.batch_size).any())):
            raise InvalidArgumentError("rows", f"row indices in [0, {self.batch_size})", idx.tolist())
        self.buffer[idx] = -1
