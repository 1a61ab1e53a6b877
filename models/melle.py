"""MELLE-style continuous autoregressive generation of mel frames (docs/DEFINITIONS.md section 6).

MELLE predicts ``r`` mel frames per AR step (reduction factor, :func:`reduce_frames` /
:func:`expand_frames`), draws them from a predicted Gaussian (its latent sampling module) or
takes the mean, and ends a row when its stop head's probability reaches a threshold. This is
the loop shape of :class:`~speechdecode.models.CodecLM` for continuous tokens.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch

from speechdecode import _args, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.code_transforms import expand_frames, reduce_frames

__all__ = ["GaussianSampler", "MelleOutput", "melle_generate"]


class GaussianSampler:
    """MELLE's latent sampling as a frame sampler: ``mu + exp(logvar / 2) * scale * eps``.

    The continuous counterpart of :class:`~speechdecode.decoding.samplers.Sampler` that
    :func:`melle_generate` takes as ``sampler=``: ``sampler(mu [N, D], logvar [N, D] or None,
    history [N, L, D]) -> frames [N, D]`` and ``reset(rows)``. ``history`` is each row's frames
    drawn so far (its reduced steps of r frames, oldest first, zeros once the row ended; the
    prompt is not part of it).

    Args:
        scale: multiplies the standard deviation (1: the predicted Gaussian; 0: its mean).
        generator: torch.Generator of eps (drawn on its device, moved to mu's).

    Raises:
        InvalidArgumentError: a negative or non-finite scale; at a call, logvar None with scale > 0.
    """

    def __init__(self, scale: float = 1.0, generator: torch.Generator | None = None):
        self.scale = _args.real(scale, "scale", low=0.0)
        self.generator = generator

    def __call__(self, mu: torch.Tensor, logvar: torch.Tensor | None, history: torch.Tensor) -> torch.Tensor:
        if self.scale == 0.0:
            return mu
        if logvar is None:
            raise InvalidArgumentError("logvar", "a model that predicts logvar (sampling with scale > 0)", None)
        device = self.generator.device if self.generator is not None else mu.device
        eps = torch.randn(mu.shape, generator=self.generator, dtype=mu.dtype, device=device).to(mu.device)
        return mu + torch.exp(0.5 * logvar) * (eps * self.scale)  # eps * 1.0 is eps: MELLE's draw exactly

    def reset(self, rows=None) -> None:
        """Nothing to forget: the draws depend on mu and logvar only."""


def _frames(out, mu: torch.Tensor) -> torch.Tensor:
    """A frame sampler's output, checked: float [N, D] like ``mu``, on its device."""
    if not isinstance(out, torch.Tensor) or out.shape != mu.shape or not out.dtype.is_floating_point:
        raise TensorError("sampler output", f"float frames of shape {list(mu.shape)}", _tensors._describe(out))
    return out.to(device=mu.device, dtype=mu.dtype)


class MelleOutput(NamedTuple):
    """mel: float [B, T, D] new frames (zeros past a row's length); lengths: int64 [B] frames
    (multiples of r); finished: bool [B] rows stopped by the stop head; steps: AR steps."""

    mel: torch.Tensor
    lengths: torch.Tensor
    finished: torch.Tensor
    steps: int


def _output(out, batch: int, count: int, width: int):
    expected = f"(mu [B={batch}, S={count}, {width}], logvar of the same shape or None, stop_logits [{batch}, {count}])"
    ok = isinstance(out, tuple) and len(out) == 3
    mu, logvar, stop = out if ok else (None, None, None)
    shape = (batch, count, width)
    ok = ok and isinstance(mu, torch.Tensor) and tuple(mu.shape) == shape and mu.dtype.is_floating_point
    ok = ok and (logvar is None or (isinstance(logvar, torch.Tensor) and tuple(logvar.shape) == shape))
    ok = ok and isinstance(stop, torch.Tensor) and tuple(stop.shape) == (batch, count)
    if not ok:
        actual = [_tensors._describe(x) for x in out] if isinstance(out, tuple) else _tensors._describe(out)
        raise TensorError("model output", expected, actual)
    return mu[:, -1], None if logvar is None else logvar[:, -1], stop[:, -1]


@torch.no_grad()
def melle_generate(
    model,
    prompt_mel,
    *,
    r: int = 1,
    max_steps: int,
    stop_threshold: float = 0.5,
    sample_latent: bool = False,
    generator: torch.Generator | None = None,
    sampler=None,
) -> MelleOutput:
    """Generate mel frames after a prompt, r frames per step, until the stop head fires.

    Args:
        model: called as ``model(steps [B, S, r * D], cache) -> (mu, logvar, stop_logits)`` with
            mu / logvar [B, S, r * D] (logvar may be None) and stop_logits [B, S]; ``cache =
            model.new_cache(B)`` is extended by each call; ``model.max_context`` is the most
            steps (e.g. :class:`~speechdecode.models.reference_nets.TinyMelleLM`).
        prompt_mel: [B, T0, D] float prompt frames; the first ``T0 % r`` are dropped so that
            every prompt step holds r real frames (T0 // r >= 1 steps needed).
        r: reduction factor.
        max_steps: the most AR steps (max_steps * r frames) per row.
        stop_threshold: a row ends after the step whose ``sigmoid(stop_logit)`` is >= this.
        sample_latent: draw ``mu + exp(logvar / 2) * eps`` (eps ~ N(0, 1) from ``generator``)
            instead of taking ``mu``.
        generator: torch.Generator of eps.
        sampler: a frame sampler instead (``sampler(mu, logvar, history) -> frames``, with
            ``reset(rows)``; see :class:`GaussianSampler`, which ``sample_latent`` and
            ``generator`` build); no ``sample_latent`` / ``generator`` beside it.

    Returns:
        :class:`MelleOutput`.

    Raises:
        TensorError: prompt not float [B, T0, D] with T0 >= r; a model output of the wrong shape.
        InvalidArgumentError: bad r / max_steps / threshold; the prompt plus one step does not
            fit ``model.max_context``; ``sample_latent`` with a model giving no logvar; a
            sampler without ``reset``, or with ``sample_latent`` / ``generator``.
        TensorError: a sampler output that is not float frames shaped like mu.

    Example:
        >>> from speechdecode.models.reference_nets import TinyMelleLM
        >>> out = melle_generate(TinyMelleLM(mel_dim=4, r=2), torch.randn(1, 6, 4), r=2, max_steps=5)
        >>> out.mel.shape[2], int(out.lengths[0]) % 2
        (4, 0)
    """
    x = _tensors.as_tensor(prompt_mel, "prompt_mel")
    r = _args.integer(r, "r", 1)
    if x.ndim != 3 or not x.dtype.is_floating_point or x.shape[1] < r:
        raise TensorError("prompt_mel", f"a float [B, T0 >= r={r}, D] tensor", _tensors._describe(prompt_mel))
    max_steps = _args.integer(max_steps, "max_steps", 1)
    stop_threshold = _args.interval(stop_threshold, "stop_threshold", 0.0, 1.0)
    dims = x.shape[2]
    steps_in = reduce_frames(x[:, x.shape[1] % r :], r)
    limit = getattr(model, "max_context", None)
    if not isinstance(limit, numbers.Integral):
        raise InvalidArgumentError("model", "a model with an integer max_context", type(model).__name__)
    if steps_in.shape[1] + 1 > limit:
        raise InvalidArgumentError(
            "prompt_mel", f"at most max_context - 1 = {limit - 1} steps of r={r} frames", f"{steps_in.shape[1]} steps"
        )
    max_steps = min(int(max_steps), limit - steps_in.shape[1] + 1)
    batch, dev = steps_in.shape[0], steps_in.device
    cache = model.new_cache(batch)
    mu, logvar, stop = _output(model(steps_in, cache), batch, steps_in.shape[1], r * dims)
    if sampler is None:
        if sample_latent and logvar is None:
            raise InvalidArgumentError("sample_latent", "False for a model without logvar", True)
        sampler = GaussianSampler(1.0 if sample_latent else 0.0, generator)
    elif sample_latent or generator is not None:
        raise InvalidArgumentError("sampler", "no sample_latent / generator beside it (the sampler draws)", "both")
    elif not callable(sampler) or not callable(getattr(sampler, "reset", None)):
        raise InvalidArgumentError(
            "sampler",
            "a frame sampler: sampler(mu, logvar, history) -> frames, with reset(rows)",
            type(sampler).__name__,
        )
    sampler.reset(None)
    out = torch.zeros(batch, max_steps, r * dims, dtype=mu.dtype, device=dev)
    lengths = torch.full((batch,), max_steps, dtype=torch.int64, device=dev)
    finished = torch.zeros(batch, dtype=torch.bool, device=dev)
    for step in range(max_steps):
        frames = _frames(sampler(mu, logvar, out[:, :step]), mu)
        out[:, step] = torch.where(finished[:, None], 0.0, frames)
        ends = ~finished & (torch.sigmoid(stop) >= stop_threshold)
        lengths = torch.where(ends, step + 1, lengths)
        finished |= ends
        if bool(finished.all()) or step + 1 == max_steps:
            break
        mu, logvar, stop = _output(model(frames[:, None], cache), batch, 1, r * dims)
    used = int(lengths.max())
    mel = expand_frames(out[:, :used], r)
    return MelleOutput(mel, lengths * r, finished, step + 1)
