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
backend. Sums are float32; backends add in different orders, so a draw whose ``u`` (or a
top-p boundary) falls within float32 rounding of a cumulative value may differ between
backends -- tests use random uniforms, which stay clear of such boundaries.

Backends: ``reference`` (torch, a loop over rows with sorts; the oracle), ``native`` (batched
torch: one sort for the batch; any device, no extension needed), ``triton`` (a program per row,
thresholds by bisection instead of a sort; CUDA, or CPU under TRITON_INTERPRET=1).
"""

from __future__ import annotations

import numbers

import torch

from speechdecode import _backend, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["sample"]


def _impl(device: str, backend: str | None):
    # native is batched torch here: it needs no compiled extension and runs on any device
    return _backend.implementation(__name__, device, backend, torch_native=True)


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
    x = _tensors.scores(logits, "logits", 2)
    B, V = x.shape
    if V < 1:
        raise TensorError("logits", "at least one column (V >= 1)", _tensors._describe(logits))
    dev = x.device
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

    temp = _param(temperature, "temperature", B, dev, torch.float32, 1.0)
    _check(temp, ~(temp >= 0) | torch.isinf(temp), "temperature", "a finite value >= 0")
    k = _param(top_k, "top_k", B, dev, torch.int64, V)
    _check(k, k < 1, "top_k", "a value >= 1")
    k = k.clamp(max=V)
    p = _param(top_p, "top_p", B, dev, torch.float32, 1.0)
    _check(p, ~((p > 0) & (p <= 1)), "top_p", "a value in (0, 1]")
    m = _param(min_p, "min_p", B, dev, torch.float32, 0.0)
    _check(m, ~((m >= 0) & (m <= 1)), "min_p", "a value in [0, 1]")
    if uniforms is None:
        gen_dev = generator.device if generator is not None else "cpu"
        u = torch.rand(B, generator=generator, device=gen_dev).to(dev)
    else:
        u = _param(uniforms, "uniforms", B, dev, torch.float32, None)
        if isinstance(uniforms, numbers.Number):
            raise InvalidArgumentError("uniforms", f"a [{B}] tensor", repr(uniforms))
        _check(u, ~((u >= 0) & (u < 1)), "uniforms", "a value in [0, 1)")
    tokens = _impl(dev.type, backend).sample(x, temp, k, p, m, u)
    return _tensors.like_input(tokens, logits)
