"""Frame-rate transforms of codec codes and mel frames from the seed papers (docs/DEFINITIONS.md section 6).

* VALL-E 2 grouped code modeling: :func:`group_codes` / :func:`ungroup_codes`.
* VALL-E R codec merging: :func:`merge_residual`.
* MELLE reduction factor: :func:`reduce_frames` / :func:`expand_frames`.

All functions are plain torch, take numpy arrays or torch tensors (results come back as
torch tensors on the input's device) and never modify their input.
"""

from __future__ import annotations

import torch

from speechdecode import _args, _tensors
from speechdecode.errors import TensorError


def _tensor(x, name: str, ndims: tuple[int, ...], what: str) -> torch.Tensor:
    t = _tensors.as_tensor(x, name)
    if t.ndim not in ndims:
        raise TensorError(name, what, _tensors._describe(x))
    return t


def group_codes(codes, G: int) -> torch.Tensor:
    """VALL-E 2 grouping: G consecutive codes form one AR step.

    The first ``T % G`` frames are trimmed (the paper trims the prompt's start) so that
    T' = T - T % G is a multiple of G; group i holds frames ``[iG, (i + 1)G)`` of the trimmed codes.

    Args:
        codes: [B, T] or [B, K, T] codes (any dtype; K codebooks keep their own axis).
        G: group size >= 1.

    Returns:
        [B, T' / G, G] (or [B, K, T' / G, G]), a view when the input allows it.

    Example:
        >>> group_codes(torch.arange(5)[None], 2)
        tensor([[[1, 2],
                 [3, 4]]])
    """
    t = _tensor(codes, "codes", (2, 3), "a 2-D [B, T] or 3-D [B, K, T] array")
    G = _args.integer(G, "G", 1)
    frames = t.shape[-1]
    kept = t[..., frames % G :]
    return kept.reshape(*t.shape[:-1], frames // G, G)


def ungroup_codes(grouped, G: int | None = None) -> torch.Tensor:
    """Inverse of :func:`group_codes`: [B, N, G] -> [B, N * G] (or [B, K, N, G] -> [B, K, N * G]).

    ``G``, when given, is checked against the last dimension. Trimmed leading frames are not restored.
    """
    t = _tensor(grouped, "grouped", (3, 4), "a 3-D [B, N, G] or 4-D [B, K, N, G] array")
    if G is not None and _args.integer(G, "G", 1) != t.shape[-1]:
        raise TensorError("grouped", f"last dimension G={G}", _tensors._describe(grouped))
    return t.reshape(*t.shape[:-2], t.shape[-2] * t.shape[-1])


def merge_residual(x, m: int) -> torch.Tensor:
    """VALL-E R codec merging: average-pool the residual over time by ``m``, then repeat ``m``.

    Frames ``[jm, (j + 1)m)`` are replaced by their mean. When ``T % m != 0`` the last, partial
    window is averaged over the frames it has (no padding enters the mean) and repeated to its
    own length, so the output is always [B, F, T].

    Args:
        x: [B, F, T] floating-point residual (features F, time T).
        m: merge rate >= 1 (m = 1 returns a copy).

    Returns:
        [B, F, T] tensor of ``x``'s dtype.
    """
    t = _tensor(x, "x", (3,), "a 3-D [B, F, T] array")
    if not t.dtype.is_floating_point:
        raise TensorError("x", "a floating-point dtype", _tensors._describe(x))
    m = _args.integer(m, "m", 1)
    batch, features, frames = t.shape
    windows = -(-frames // m)
    work = torch.promote_types(t.dtype, torch.float32)  # half precision sums in float32
    padded = torch.nn.functional.pad(t.to(work), (0, windows * m - frames))
    sums = padded.reshape(batch, features, windows, m).sum(dim=-1)
    counts = torch.full((windows,), m, dtype=work, device=t.device)
    if windows:
        counts[-1] = frames - (windows - 1) * m
    means = sums / counts
    return means.repeat_interleave(m, dim=-1)[..., :frames].to(t.dtype)


def reduce_frames(mel, r: int, pad_value: float = 0.0) -> torch.Tensor:
    """MELLE reduction factor: r consecutive mel frames per AR step, [B, T, D] -> [B, ceil(T / r), r * D].

    Step i holds frames ``[ir, (i + 1)r)`` concatenated along the feature axis (frame-major).
    When ``T % r != 0`` the end is padded with ``pad_value`` frames; keep T to undo it with
    :func:`expand_frames`.

    Example:
        >>> reduce_frames(torch.arange(3.0).reshape(1, 3, 1), 2)
        tensor([[[0., 1.],
                 [2., 0.]]])
    """
    t = _tensor(mel, "mel", (3,), "a 3-D [B, T, D] array")
    r = _args.integer(r, "r", 1)
    batch, frames, dims = t.shape
    steps = -(-frames // r)
    if steps * r != frames:
        t = torch.nn.functional.pad(t, (0, 0, 0, steps * r - frames), value=pad_value)
    return t.reshape(batch, steps, r * dims)


def expand_frames(x, r: int, num_frames: int | None = None) -> torch.Tensor:
    """Inverse of :func:`reduce_frames`: [B, N, r * D] -> [B, N * r, D], cut to ``num_frames`` if given.

    Raises:
        TensorError: ``x`` not 3-D or its last dimension not a multiple of ``r``.
        InvalidArgumentError: ``r < 1``, or ``num_frames`` outside [0, N * r].
    """
    t = _tensor(x, "x", (3,), "a 3-D [B, N, r * D] array")
    r = _args.integer(r, "r", 1)
    batch, steps, width = t.shape
    if width % r:
        raise TensorError("x", f"a last dimension divisible by r={r}", _tensors._describe(x))
    out = t.reshape(batch, steps * r, width // r)
    if num_frames is None:
        return out
    return out[:, : _args.integer(num_frames, "num_frames", 0, steps * r)]
