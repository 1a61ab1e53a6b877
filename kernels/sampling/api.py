"""Token sampling from LM logits: temperature, top-k, top-p, min-p, and a reproducible draw.

Definition (every backend implements exactly this; HF's logits processors in this order)::

    x = logits / temperature            (temperature 0 -> greedy: first index of the max logit)
    e = exp(x - max(x))                 unnormalized probabilities, float32, max exactly 1
    top-k: keep e_i >= the k-th largest e (ties at the threshold are all kept)
    top-p: keep i when the mass of kept tokens strictly more likely than i is < top_p * kept mass
           (the smallest set of most likely tokens reaching top_p, ties kept; top_p=1 keeps all)
    min-p: keep e_i >= min_p * max(e)
    draw:  token = first index (vocabulary order) with cumsum(kept e) > u * sum(kept e)

``u`` is one uniform in [0, 1) per row, so the same uniforms give the same tokens on every
backend. Sums are float32; backends add in different orders, and exp may differ by an ulp
(the C++ kernel uses a vectorized polynomial within 2 ulp), so a draw whose ``u`` (or a
top-p boundary) falls within float32 rounding of a cumulative value may differ between
backends -- tests use random uniforms, which stay clear of such boundaries, and check ties,
underflowing exponentials and one-token nuclei exactly.

Backends: ``reference`` (torch, a loop over rows with sorts; the oracle), ``native`` (CPU
inputs with the extension built: the fused C++ kernel of csrc/decoding/sampling.cc, one pass
per row, rows on threads, GIL released; otherwise batched torch, one partial sort for the
batch, any device), ``triton`` (a program per row, thresholds by bisection instead of a sort;
CUDA, or CPU under TRITON_INTERPRET=1). A CPU call with scalar parameters skips the per-row
parameter tensors and the checks that allocate: the kernel checks logits and uniforms.
"""

from __future__ import annotations

import math
import numbers

import torch

from speechdecode import _args, _backend, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.sampling import native


def _impl(device: str, backend: str | None):
    # native is batched torch here: it needs no compiled extension and runs on any device
    return _backend.implementation(__package__, device, backend, torch_native=True)


def _param(x, name: str, batch: int, device, dtype, default) -> torch.Tensor:
    """A scalar or per-row [B] parameter as a [B] tensor of ``dtype`` on ``device``."""
    if x is None:
        x = default
    if isinstance(x, bool):
        raise InvalidArgumentError(name, "a number or a [B] tensor", repr(x))
    if isinstance(x, numbers.Number):
        if dtype == torch.int64 and not isinstance(x, numbers.Integral):
            raise InvalidArgumentError(name, "an integer", repr(x))
        return torch.full((batch,), x, dtype=dtype, device=device)
    t = _tensors.as_tensor(x, name)
    if t.ndim != 1 or t.shape[0] != batch:
        raise TensorError(name, f"a scalar or shape [{batch}]", _tensors._describe(x))
    if dtype == torch.int64 and (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool):
        raise TensorError(name, "an integer dtype", _tensors._describe(x))
    if dtype != torch.int64 and (t.dtype.is_complex or t.dtype == torch.bool):
        raise TensorError(name, "a real dtype", _tensors._describe(x))
    return t.to(device=device, dtype=dtype).contiguous()


def _check(t: torch.Tensor, bad: torch.Tensor, name: str, expected: str) -> None:
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise InvalidArgumentError(name, expected, f"{t[i].item()} at row {i}")


def _real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _native_scalars(logits, temperature, top_k, top_p, min_p, uniforms, generator, backend):
    """The per-step fast path: a CPU tensor, scalar parameters, the C++ kernel. It builds no
    per-row tensors and runs no checks that allocate (the kernel checks logits and uniforms as
    it reads them). None when a call does not qualify or a scalar is out of range: the general
    path then runs (and raises)."""
    params = _native_scalar_params(logits, temperature, top_k, top_p, min_p, uniforms, generator, backend)
    return None if params is None else native.sample_cpp(logits, *params)


def _native_scalar_params(logits, temperature, top_k, top_p, min_p, uniforms, generator, backend):
    """(temperature, top_k, top_p, min_p, uniforms) ready for the C++ kernel when a call takes the
    per-step fast path (a CPU tensor, scalar parameters in range, the native backend), else None."""
    if not (
        _backend.HAS_NATIVE
        and isinstance(logits, torch.Tensor)
        and logits.device.type == "cpu"
        and logits.ndim == 2
        and logits.dtype in _tensors.SCORE_DTYPES
        and logits.shape[1] >= 1
    ):
        return None
    if _backend.select("cpu", backend, torch_native=True) != "native":
        return None
    B, V = logits.shape
    t = 1.0 if temperature is None else temperature
    k = V if top_k is None else top_k
    p = 1.0 if top_p is None else top_p
    m = 0.0 if min_p is None else min_p
    if not (_real(t) and 0 <= t < math.inf and _real(p) and 0 < p <= 1 and _real(m) and 0 <= m <= 1):
        return None
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        return None
    if uniforms is None:
        if generator is not None and generator.device.type != "cpu":
            return None
        uniforms = torch.rand(B, generator=generator)
    elif not (
        isinstance(uniforms, torch.Tensor)
        and uniforms.device.type == "cpu"
        and uniforms.dtype == torch.float32
        and uniforms.shape == (B,)
    ):
        return None
    return float(t), min(int(k), V), float(p), float(m), uniforms.contiguous()


def _native_guided_scalars(cond, uncond, cond2, scale, scale2, center, temperature, top_k, top_p, min_p, uniforms,
                           generator, backend):  # fmt: skip
    """guided_sample's per-step fast path, as :func:`_native_scalars`: CPU tensors of one shape and
    dtype, scalar parameters, the C++ kernel, which checks every input row while it guides it (one
    pass, where the general path checks each array separately). None when a call does not qualify."""
    inputs = [cond, uncond] + ([] if cond2 is None else [cond2])
    if not all(isinstance(t, torch.Tensor) for t in inputs):
        return None
    if any(t.shape != cond.shape or t.device != cond.device or t.dtype != cond.dtype for t in inputs):
        return None
    params = _native_scalar_params(cond, temperature, top_k, top_p, min_p, uniforms, generator, backend)
    if params is None:
        return None
    t, k, p, m, u = params
    second = None if cond2 is None else native.float32_rows(cond2).numpy()
    rows = native.float32_rows(cond).numpy(), native.float32_rows(uncond).numpy()
    return torch.from_numpy(
        _backend.native().guided_sample(*rows, second, scale, scale2, center, t, k, p, m, u.numpy())
    )


def check_logit_rows(x: torch.Tensor) -> None:
    """TensorError naming the first row of [B, V] scores with a NaN, a +inf or only -inf."""
    f = x.float()
    nan = torch.isnan(f).any(dim=1)
    if bool(nan.any()):
        raise TensorError("logits", "no NaN", f"NaN in row {int(nan.nonzero()[0, 0])}")
    pinf = (f == float("inf")).any(dim=1)
    if bool(pinf.any()):
        raise TensorError("logits", "no +inf", f"+inf in row {int(pinf.nonzero()[0, 0])}")
    dead = (f == float("-inf")).all(dim=1)
    if bool(dead.any()):
        raise TensorError("logits", "at least one finite logit per row", f"row {int(dead.nonzero()[0, 0])} all -inf")


def _prepare(logits, temperature, top_k, top_p, min_p):
    """Validated (logits [B, V], temperature, top_k clamped to [1, V], top_p, min_p as [B])."""
    x = _tensors.scores(logits, "logits", 2)
    B, V = x.shape
    if V < 1:
        raise TensorError("logits", "at least one column (V >= 1)", _tensors._describe(logits))
    dev = x.device
    check_logit_rows(x)

    temp = _param(temperature, "temperature", B, dev, torch.float32, 1.0)
    _check(temp, ~(temp >= 0) | torch.isinf(temp), "temperature", "a finite value >= 0")
    k = _param(top_k, "top_k", B, dev, torch.int64, V)
    _check(k, k < 1, "top_k", "a value >= 1")
    k = k.clamp(max=V)
    p = _param(top_p, "top_p", B, dev, torch.float32, 1.0)
    _check(p, ~((p > 0) & (p <= 1)), "top_p", "a value in (0, 1]")
    m = _param(min_p, "min_p", B, dev, torch.float32, 0.0)
    _check(m, ~((m >= 0) & (m <= 1)), "min_p", "a value in [0, 1]")
    return x, temp, k, p, m


def sample(
    logits,
    *,
    temperature=1.0,
    top_k=None,
    top_p=None,
    min_p=None,
    uniforms=None,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Draw one token per row from ``logits`` after temperature, top-k, top-p and min-p.

    Args:
        logits: [B, V] float32/float16/bfloat16, torch or numpy, CPU or CUDA, any strides.
            No NaN, no +inf, and not a whole row of -inf.
        temperature: scalar or [B], >= 0; 0 means greedy (first index of the largest logit,
            the other filters are then ignored).
        top_k: None (off) or an int / int [B] >= 1; values above V keep everything.
        top_p: None (off) or scalar / [B] in (0, 1].
        min_p: None (off) or scalar / [B] in [0, 1].
        uniforms: [B] floats in [0, 1), one per row, making the draw reproducible; None draws
            them with ``torch.rand(B, generator=generator)``.
        generator: torch generator used when ``uniforms`` is None.
        backend: "reference", "native" or "triton" (default: triton on CUDA, else native).

    Returns:
        tokens [B] int64 on the logits' device (numpy in -> numpy out).

    Raises:
        TensorError / InvalidArgumentError naming the argument and, for values, the row.

    Example:
        >>> import torch
        >>> sample(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), uniforms=torch.tensor([0.6])).tolist()
        [2]
        >>> sample(torch.tensor([[1.0, 3.0, 2.0]]), temperature=0).tolist()
        [1]
    """
    tokens = _native_scalars(logits, temperature, top_k, top_p, min_p, uniforms, generator, backend)
    if tokens is not None:
        return tokens
    x, temp, k, p, m = _prepare(logits, temperature, top_k, top_p, min_p)
    B, dev = x.shape[0], x.device
    u = _uniforms(uniforms, generator, B, dev)
    tokens = _impl(dev.type, backend).sample(x, temp, k, p, m, u)
    return _tensors.like_input(tokens, logits)


def _uniforms(uniforms, generator, batch: int, device) -> torch.Tensor:
    """The [B] uniforms given (checked), or drawn from ``generator``."""
    if uniforms is None:
        gen_dev = generator.device if generator is not None else "cpu"
        return torch.rand(batch, generator=generator, device=gen_dev).to(device)
    u = _param(uniforms, "uniforms", batch, device, torch.float32, None)
    if isinstance(uniforms, numbers.Number):
        raise InvalidArgumentError("uniforms", f"a [{batch}] tensor", repr(uniforms))
    _check(u, ~((u >= 0) & (u < 1)), "uniforms", "a value in [0, 1)")
    return u


def guided_sample(
    cond,
    uncond,
    guidance_scale: float,
    *,
    cond2=None,
    guidance_scale2: float | None = None,
    center: str = "uncond",
    temperature=1.0,
    top_k=None,
    top_p=None,
    min_p=None,
    uniforms=None,
    generator: torch.Generator | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """:func:`sample` of classifier-free-guided logits, the guidance fused into the draw.

    The guided logits, in float32 and in this order of operations (transformers' processors)::

        center="uncond":             u + (c - u) * s            ClassifierFreeGuidanceLogitsProcessor (MusicGen)
        center="uncond", cond2 c2:   u + (c - u) * s + (c2 - u) * s2                    (VoiceLDM's dual form)
        center="cond":               c + (c - u) * s            DiaClassifierFreeGuidanceLogitsProcessor

    A token that is -inf in any input stays -inf. The native (C++) and Triton backends guide each
    row where they draw it, with no guided [B, V] array; the reference guides, then samples.

    Args:
        cond, uncond, cond2: [B, V] float logits of the conditional, unconditional and second
            conditional passes (same shape and device).
        guidance_scale, guidance_scale2: s and s2 (finite).
        center: "uncond" or "cond" (Dia's form; no cond2).
        temperature, top_k, top_p, min_p, uniforms, generator, backend: as for :func:`sample`.

    Returns:
        tokens [B] int64 on the logits' device (numpy in -> numpy out).

    Raises:
        TensorError: inputs of other shapes, dtypes or devices, NaN / +inf in them, a row with
            no token finite in every input.
        InvalidArgumentError: bad scales or center; the errors of :func:`sample`.

    Example:
        >>> c, u = torch.tensor([[0.0, 1.0, 0.5]]), torch.tensor([[0.0, 0.0, 1.0]])
        >>> guided_sample(c, u, 3.0, temperature=0).tolist()  # guided: [0, 3, -0.5]
        [1]
    """
    scale, scale2 = guidance_scales(center, guidance_scale, cond2, guidance_scale2)
    fast = _native_guided_scalars(cond, uncond, cond2, scale, scale2, center, temperature, top_k, top_p, min_p,
                                  uniforms, generator, backend)  # fmt: skip
    if fast is not None:
        return fast
    c, un, c2 = guidance_inputs(cond, uncond, cond2, check_values=True)
    x, temp, k, p, m = _prepare(c, temperature, top_k, top_p, min_p)
    B, dev = x.shape[0], x.device
    u = _uniforms(uniforms, generator, B, dev)
    tokens = _impl(dev.type, backend).guided_sample(x, un, c2, scale, scale2, center, temp, k, p, m, u)
    return _tensors.like_input(tokens, cond)


def guidance_scales(center: str, guidance_scale, cond2, guidance_scale2) -> tuple[float, float]:
    """(s, s2) of :func:`guided_sample`'s options, checked (s2 = 0 without cond2)."""
    if center not in ("uncond", "cond"):
        raise InvalidArgumentError("center", "'uncond' or 'cond'", repr(center))
    scale = _args.real(guidance_scale, "guidance_scale")
    if (cond2 is None) != (guidance_scale2 is None):
        raise InvalidArgumentError("guidance_scale2", "given exactly when cond2 is", repr(guidance_scale2))
    if cond2 is not None and center == "cond":
        raise InvalidArgumentError("cond2", "None with center='cond' (Dia's form has one condition)", "an array")
    return scale, 0.0 if guidance_scale2 is None else _args.real(guidance_scale2, "guidance_scale2")


def guidance_inputs(cond, uncond, cond2, check_values: bool):
    """cond, uncond, cond2 (or None) as [B, V] float tensors of one shape and device; with
    ``check_values``, no NaN or +inf in any and a token finite in every input in each row."""
    c = _tensors.scores(cond, "cond", 2)
    inputs = {"uncond": uncond} if cond2 is None else {"uncond": uncond, "cond2": cond2}
    others = {}
    for name, value in inputs.items():
        t = _tensors.scores(value, name, 2)
        if t.shape != c.shape or t.device != c.device:
            raise TensorError(
                name, f"the shape and device of cond {list(c.shape)} {c.device}", _tensors._describe(value)
            )
        others[name] = t
    if check_values:
        finite = torch.isfinite(c.float())
        for name, t in {"cond": c, **others}.items():
            bad = torch.isnan(t) | (t == float("inf"))
            if bool(bad.any()):
                row = int(bad.any(dim=1).nonzero()[0, 0])
                raise TensorError(name, "no NaN or +inf", f"one in row {row}")
            finite &= torch.isfinite(t.float())
        if c.shape[0] and c.shape[1] and not bool(finite.any(dim=1).all()):
            row = int((~finite.any(dim=1)).nonzero()[0, 0])
            raise TensorError("cond", "a token finite in every input in each row", f"none in row {row}")
    return c, others["uncond"], others.get("cond2")


def keep_mask(logits, *, temperature=1.0, top_k=None, top_p=None, min_p=None, backend: str | None = None):
    """The tokens :func:`sample` may draw: bool [B, V], True where a token survives the filters.

    Same arguments, checks and definition as :func:`sample` (a greedy row keeps only its first
    maximum). Masking the other logits with -inf and drawing from their softmax is drawing from
    the distribution ``sample`` draws from; ``backend``: "reference" or "native" (batched
    torch, any device; the default), "triton" is not offered for the mask.

    Example:
        >>> keep_mask(torch.tensor([[0.0, 2.0, 1.0, -1.0]]), top_k=2).tolist()
        [[False, True, True, False]]
    """
    x, temp, k, p, m = _prepare(logits, temperature, top_k, top_p, min_p)
    impl = _backend.implementation(__package__, x.device.type, backend or "native", torch_native=True)
    if not hasattr(impl, "keep_mask"):
        raise InvalidArgumentError("backend", "reference or native", repr(backend))
    return _tensors.like_input(impl.keep_mask(x, temp, k, p, m), logits)
