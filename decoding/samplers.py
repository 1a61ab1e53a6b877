"""The sampler protocol of the generation loops, and the samplers that implement it.

A sampler draws the next token of N rows decoded in lockstep::

    tokens = sampler(logits, history)   # logits [N, V] float; history [N, L] int64, -1 = none
    sampler.reset(rows)                 # rows (re)start: an index, list, bool mask, None = all

``history`` holds each row's tokens drawn since its last reset, oldest first (the prompt is
not part of it); it is the loop's record, so a sampler needs no state to look back (RAS) and
``reset`` may do nothing. ``tokens`` is [N] integers in [0, V), a torch tensor on the logits'
device or a numpy array (a numba-compiled sampler's), which the loops move to the device. A
sampler may also offer ``guided(cond, uncond, scale, history)``: classifier-free guidance fused
into its draw, which :class:`~speechdecode.models.hf.SamplerProcessor` then uses.

Loops that take ``sampler=``: :meth:`speechdecode.models.CodecLM.generate`,
:meth:`speechdecode.models.DelayPatternLM.generate` / ``infill``, and inside Hugging Face
``generate``, :class:`speechdecode.models.hf.SamplerProcessor` and
:func:`speechdecode.models.hf_musicgen.musicgen_generate`. MELLE's continuous loop
(:func:`speechdecode.models.melle_generate`) takes the frame counterpart,
:class:`speechdecode.models.GaussianSampler`. Ours: :class:`FilterSampler`
(:func:`sample`'s temperature / top-k / top-p / min-p) and :class:`RasSampler` (:func:`ras`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from speechdecode import _args, _tensors
from speechdecode._deprecation import keywords
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.ras import guided_ras, ras
from speechdecode.kernels.ras.api import RAS_FIELDS, RasOptions
from speechdecode.kernels.sampling import guided_sample, sample

__all__ = ["FilterSampler", "RasSampler", "Sampler", "check_sampler", "check_tokens", "draw", "draw_guided"]


@runtime_checkable
class Sampler(Protocol):
    """What a generation loop calls: ``sampler(logits [N, V], history [N, L]) -> tokens [N]``."""

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor: ...

    def reset(self, rows=None) -> None: ...


class FilterSampler:
    """:func:`~speechdecode.decoding.sample` as a sampler (the history is not used).

    Args:
        temperature, top_k, top_p, min_p: as for ``sample`` (temperature 0 is greedy).
        generator: torch.Generator of the uniforms (one per row per call).
    """

    def __init__(self, temperature=1.0, top_k=None, top_p=None, min_p=None, generator: torch.Generator | None = None):
        self.temperature, self.top_k, self.top_p, self.min_p = temperature, top_k, top_p, min_p
        self.generator = generator

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return sample(
            logits,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            generator=self.generator,
        )

    def guided(self, cond: torch.Tensor, uncond: torch.Tensor, scale: float, history: torch.Tensor) -> torch.Tensor:
        """The draw from ``uncond + (cond - uncond) * scale``, guidance fused into the kernel
        (:func:`~speechdecode.kernels.sampling.guided_sample`)."""
        return guided_sample(
            cond,
            uncond,
            scale,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            generator=self.generator,
        )

    def reset(self, rows=None) -> None:
        """Nothing to forget: the draws depend on the logits only."""


class RasSampler:
    """:func:`~speechdecode.decoding.ras` (VALL-E 2 repetition-aware sampling) as a sampler.

    Args:
        options: ``window``, ``threshold``, ``top_k``, ``top_p``, ``preset`` as for ``ras`` (a
            :class:`~speechdecode.kernels.ras.api.RasOptions`, kept as ``self.options``); the last
            ``window`` tokens of each row's history are the ones looked at.
        temperature: divides the logits first (> 0).
        generator: torch.Generator of the uniforms (two per row per call).

    Raises:
        InvalidArgumentError: bad options, at construction.
    """

    def __init__(self, *legacy, temperature: float = 1.0, generator: torch.Generator | None = None, **options):
        if legacy:  # the old positional order: window, threshold, top_k, top_p, preset, temperature, generator
            given = {"temperature": temperature, "generator": generator}
            options, given = keywords("RasSampler()", legacy, options, RAS_FIELDS, given)
            temperature, generator = given.values()
        self.options = RasOptions(**options)
        self.temperature = _args.real(temperature, "temperature", low=0.0, strict=True)
        self.generator = generator

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        scaled = logits if self.temperature == 1.0 else logits / self.temperature
        return ras(scaled, history[:, -self.options.window :], **self._options())

    def guided(self, cond: torch.Tensor, uncond: torch.Tensor, scale: float, history: torch.Tensor) -> torch.Tensor:
        """RAS of ``(uncond + (cond - uncond) * scale) / temperature``, guidance fused into the
        kernel (:func:`~speechdecode.decoding.ras.guided_ras`)."""
        return guided_ras(
            cond, uncond, scale, history[:, -self.options.window :], temperature=self.temperature, **self._options()
        )

    def _options(self) -> dict:
        """The options :func:`ras` and :func:`guided_ras` take from this sampler."""
        return {**self.options.asdict(), "generator": self.generator}

    def reset(self, rows=None) -> None:
        """Nothing to forget: the loop's history is the record."""


def _trusted(sampler, logits) -> bool:
    """Whether ``sampler``'s tokens for ``logits`` need no check: one of ours (the class itself),
    whose kernels return int64 [N] in [0, V) on a tensor's device."""
    return type(sampler) in (FilterSampler, RasSampler) and isinstance(logits, torch.Tensor)


def check_sampler(sampler, name: str = "sampler") -> Sampler:
    """``sampler`` if it follows the protocol (callable, with ``reset``), else a named error."""
    if not isinstance(sampler, Sampler):
        raise InvalidArgumentError(
            name,
            "a sampler: sampler(logits [N, V], history [N, L]) -> tokens [N], with reset(rows)",
            type(sampler).__name__,
        )
    return sampler


def draw(sampler: Sampler, logits: torch.Tensor, history: torch.Tensor, name: str = "sampler") -> torch.Tensor:
    """``sampler(logits, history)``, checked: int64 [N] in [0, V) on the logits' device. The
    tokens of a :class:`FilterSampler` or :class:`RasSampler` (those classes, not subclasses) for
    tensor logits are their kernels', which return exactly that: they are not checked again (a
    loop draws every step, and at small batches the check costs as much as a few tensor ops).

    Raises:
        TensorError: naming ``name``'s output, what it should be and what it was.
    """
    tokens = sampler(logits, history)
    return tokens if _trusted(sampler, logits) else check_tokens(tokens, logits, name)


def draw_guided(
    sampler: Sampler,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scale: float,
    history: torch.Tensor,
    name: str = "sampler",
) -> torch.Tensor:
    """The draw from classifier-free guided logits ``uncond + (cond - uncond) * scale``, checked:
    fused into the sampler's kernel when it has ``guided()``, else guided in float32 first."""
    if hasattr(sampler, "guided"):
        tokens = sampler.guided(cond, uncond, scale, history)
        return tokens if _trusted(sampler, cond) else check_tokens(tokens, cond, name)
    cond, uncond = cond.float(), uncond.float()
    return draw(sampler, uncond + (cond - uncond) * scale, history, name)


def check_tokens(tokens, logits: torch.Tensor, name: str = "sampler") -> torch.Tensor:
    """A sampler's ``tokens`` for ``logits`` [N, V] as int64 [N] in [0, V) on their device.

    Raises:
        TensorError: naming ``name``'s output, what it should be and what it was.
    """
    rows, vocab = logits.shape
    expected = f"[{rows}] integer tokens in [0, {vocab})"
    if isinstance(tokens, np.ndarray):
        if tokens.dtype.kind not in "iu":
            raise TensorError(f"{name} output", expected, f"numpy {tokens.dtype} {list(tokens.shape)}")
        tokens = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
    if not isinstance(tokens, torch.Tensor):
        raise TensorError(f"{name} output", expected, type(tokens).__name__)
    if (
        tokens.shape != (rows,)
        or tokens.dtype.is_floating_point
        or tokens.dtype.is_complex
        or tokens.dtype == torch.bool
    ):
        raise TensorError(f"{name} output", expected, _tensors._describe(tokens))
    if tokens.device != logits.device:
        if tokens.device.type != "cpu":
            raise TensorError(f"{name} output", f"tokens on {logits.device} or the CPU", str(tokens.device))
        tokens = tokens.to(logits.device)
    tokens = tokens.long()
    bad = (tokens < 0) | (tokens >= vocab)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise TensorError(f"{name} output", expected, f"{int(tokens[row])} at row {row}")
    return tokens
