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

Implementations: :func:`ras` runs the fused C++ kernel (``native.py`` over
csrc/decoding/sampling.cc: one pass per row, rows on threads) for CPU inputs when the extension
is built, the fused Triton kernel (``triton.py``: one program per row, one launch per step) for
CUDA inputs, else a batched torch path (``native.py``, any device); ``reference.py`` is the
per-row oracle all are tested against (``backend="reference"``). As for
:func:`speechdecode.kernels.sampling.sample`, sums and exp may differ by float32 rounding, so
only a uniform (or top_p) within rounding of a cumulative value could draw differently.
"""

from __future__ import annotations

import dataclasses

import torch

from speechdecode import _args, _backend, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.ras import native as ras_native
from speechdecode.kernels.ras import reference
from speechdecode.kernels.sampling.api import check_logit_rows, guidance_inputs, guidance_scales
from speechdecode.kernels.sampling.reference import guide

PRESETS = ("paper", "cosyvoice", "flashcosyvoice")
_COSYVOICE_TOP_K = 25


@dataclasses.dataclass(frozen=True)
class RasOptions:
    """RAS's options, checked when built: the one object that the samplers keep and every backend
    takes. ``top_k`` None under ``cosyvoice`` becomes CosyVoice's 25.

    Raises:
        InvalidArgumentError: window < 1, threshold outside [0, 1], top_k < 1, top_p outside
            (0, 1], unknown preset.
    """

    window: int = 10
    threshold: float = 0.1
    top_k: int | None = None
    top_p: float = 0.8
    preset: str = "paper"

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise InvalidArgumentError("preset", f"one of {', '.join(PRESETS)}", repr(self.preset))
        top_k = _args.optional_integer(self.top_k, "top_k", 1)
        checked = {
            "window": _args.integer(self.window, "window", 1),
            "threshold": _args.interval(self.threshold, "threshold", 0.0, 1.0),
            "top_k": _COSYVOICE_TOP_K if top_k is None and self.preset == "cosyvoice" else top_k,
            "top_p": _args.interval(self.top_p, "top_p", 0.0, 1.0, open_low=True),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def asdict(self) -> dict:
        """The options as :func:`ras` / :func:`guided_ras` keywords."""
        return dataclasses.asdict(self)


RAS_FIELDS = tuple(field.name for field in dataclasses.fields(RasOptions))


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
            synchronization, kernels/ras/triton.py; CPU inputs need TRITON_INTERPRET=1).
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
    options = RasOptions(window, threshold, top_k, top_p, preset)
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
        tokens = ras_native.ras_cpp(t, h, u, options)
    elif name == "triton":
        from speechdecode.kernels.ras import triton

        tokens = triton.ras(t, h, u, options)
    else:  # batched torch, or the per-row oracle
        impl = reference.ras if name == "reference" else ras_native.ras_torch
        tokens = impl(_check_logits(t), h, u, options)
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
    options = RasOptions(window, threshold, top_k, top_p, preset)
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
        tokens = ras_native.ras_cpp(c, h, u, options, guidance)
    elif name == "triton":
        from speechdecode.kernels.ras import triton

        tokens = triton.ras(c, h, u, options, guidance)
    else:  # batched torch or the per-row oracle, on the guided [B, V] logits
        x = guide(c, un, c2, scale, scale2, center) / temperature
        impl = reference.ras if name == "reference" else ras_native.ras_torch
        tokens = impl(_check_logits(x), h, u, options)
    return _tensors.like_input(tokens, cond)
