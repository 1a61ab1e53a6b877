"""Argument checks shared by every op: numpy or torch in, a torch view out, named errors.

Ops accept numpy arrays or torch tensors (CPU or CUDA); internally they work on torch
tensors (``torch.from_numpy`` shares memory, so this costs no copy) and give results back
in the caller's framework with :func:`like_input`.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from speechdecode.errors import InvalidArgumentError, TensorError

SCORE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"{str(x.dtype).removeprefix('torch.')} tensor of shape {list(x.shape)} on {x.device}"
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {list(x.shape)}"
    return type(x).__name__


def as_tensor(x, name: str) -> torch.Tensor:
    """``x`` (numpy array or torch tensor) as a torch tensor sharing its memory (a numpy array
    with a negative stride, which torch cannot view, is copied)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.byteorder == ">":
            raise TensorError(name, "native byte order", "a big-endian array")
        if x.dtype.kind not in "biufc":  # strings, objects, dates: torch would raise a TypeError
            raise TensorError(name, "a numeric array", f"dtype {x.dtype} {list(x.shape)}")
        if any(stride < 0 for stride in x.strides):
            x = np.ascontiguousarray(x)
        return torch.from_numpy(x)
    raise TensorError(name, "a numpy array or a torch tensor", type(x).__name__)


def scores(x, name: str, ndim: int) -> torch.Tensor:
    """A float32/float16/bfloat16 score tensor of ``ndim`` dimensions (any strides)."""
    t = as_tensor(x, name)
    if t.ndim != ndim:
        raise TensorError(name, f"a {ndim}-D array", _describe(x))
    if t.dtype not in SCORE_DTYPES:
        raise TensorError(name, "dtype float32, float16 or bfloat16", _describe(x))
    return t


def counts(x, name: str, ndims: tuple[int, ...], shape: str, what: str = "values") -> torch.Tensor:
    """Non-negative integer counts (a list, numpy array or torch tensor) as int64, ``ndim`` in
    ``ndims``; ``shape`` and ``what`` word the errors (e.g. "a 2-D array [B, L]", "frame counts")."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    t = as_tensor(x, name)
    if t.ndim not in ndims:
        raise TensorError(name, shape, _describe(x))
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TensorError(name, "an integer dtype", _describe(x))
    t = t.to(torch.int64)
    negative = t < 0
    if bool(negative.any()):
        index = [int(i) for i in negative.nonzero()[0]]
        raise TensorError(name, f"{what} >= 0", f"{int(t[tuple(index)])} at {index}")
    return t


def cpu_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 on the CPU with a contiguous last axis (other strides kept): the layout
    the native searches read rows from."""
    t = t.detach().to(device="cpu", dtype=torch.float32)
    return t if t.shape[-1] <= 1 or t.stride(-1) == 1 else t.contiguous()


def lengths(x, name: str, batch: int, maximum: int, device: torch.device) -> torch.Tensor:
    """Per-row lengths as an int64 tensor on ``device``; None means every row is ``maximum`` long."""
    if x is None:
        return torch.full((batch,), maximum, dtype=torch.int64, device=device)
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    t = as_tensor(x, name)
    if t.ndim != 1 or t.shape[0] != batch:
        raise TensorError(name, f"shape [{batch}]", _describe(x))
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TensorError(name, "an integer dtype", _describe(x))
    t = t.to(device=device, dtype=torch.int64)
    bad = (t < 0) | (t > maximum)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise TensorError(name, f"values in [0, {maximum}]", f"{int(t[i])} at [{i}]")
    return t.contiguous()


def label(x, name: str, num_labels: int) -> int:
    """A label id in [0, num_labels)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise InvalidArgumentError(name, "an integer label id", repr(x))
    if not 0 <= int(x) < num_labels:
        raise InvalidArgumentError(name, f"a label id in [0, {num_labels})", int(x))
    return int(x)


def like_input(t: torch.Tensor, original):
    """``t`` as a numpy array when ``original`` was one, else as a tensor."""
    return t.cpu().numpy() if isinstance(original, np.ndarray) else t
