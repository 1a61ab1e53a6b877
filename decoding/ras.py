"""Repetition-aware sampling (VALL-E 2, section 3.4.1) for users: the functions :func:`ras` and
:func:`guided_ras` (defined, with the presets, in :mod:`speechdecode.kernels.ras.api`) and
:class:`RepetitionAwareSampler`, which keeps each row's recent tokens between steps.
"""

from __future__ import annotations

import numbers

import torch

from speechdecode import _args, _tensors
from speechdecode._deprecation import keywords
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.ras import PRESETS, guided_ras, ras
from speechdecode.kernels.ras.api import RAS_FIELDS, RasOptions

__all__ = ["PRESETS", "RepetitionAwareSampler", "guided_ras", "ras"]


class RepetitionAwareSampler:
    """Stateful RAS for a batch decoded in lockstep: keeps each row's last ``window`` tokens.

    Args:
        options: ``window``, ``threshold``, ``top_k``, ``top_p``, ``preset`` as for :func:`ras`
            (a :class:`~speechdecode.kernels.ras.api.RasOptions`, kept as ``self.options``).
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

    def __init__(self, *legacy, batch_size: int = 1, device=None, generator: torch.Generator | None = None, **options):
        if legacy:  # the old positional order: window, threshold, top_k, top_p, preset, batch_size, ...
            given = {"batch_size": batch_size, "device": device, "generator": generator}
            options, given = keywords("RepetitionAwareSampler()", legacy, options, RAS_FIELDS, given)
            batch_size, device, generator = given.values()
        self.options = RasOptions(**options)
        self.batch_size = _args.integer(batch_size, "batch_size", 1)
        self.generator = generator
        self.buffer = torch.full((self.batch_size, self.options.window), -1, dtype=torch.int64, device=device)
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
        tokens = ras(t, self.buffer, uniforms=uniforms, generator=self.generator, **self.options.asdict())
        self.buffer[:, self._pos] = tokens
        self._pos = (self._pos + 1) % self.options.window
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
