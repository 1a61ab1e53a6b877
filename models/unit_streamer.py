"""LLaMA-Omni-style streaming speech output: LLM hidden states to vocoder chunks of CTC units.

Each LLM step's hidden state is upsampled by lambda (repeated lambda times), a CTC unit head
turns the frames into unit logits, and :class:`~speechdecode.decoding.CtcUnitStreamer` decodes
them greedily and hands the units to the vocoder in chunks of Omega as soon as a chunk is full
(docs/DEFINITIONS.md section 6). Smaller Omega: earlier first audio, more vocoder calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from speechdecode import _args, _tensors
from speechdecode._deprecation import renamed
from speechdecode.decoding.unit_streamer import CtcUnitStreamer, UnitChunk
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["UnitStreamer"]


class UnitStreamer:
    """LLM hidden states -> upsample (lambda) -> CTC unit head -> unit chunks -> ``vocoder``.

    Args:
        unit_head: callable (e.g. an ``nn.Module``) mapping upsampled hidden states
            [B, n * lambda, D] to unit logits [B, n * lambda, V]; e.g.
            :class:`~speechdecode.models.reference_nets.TinyUnitHead`.
        blank: the blank unit id in [0, V).
        upsample: lambda, frames per hidden state (LLaMA-Omni: 25).
        chunk_size: Omega, units per vocoder chunk (LLaMA-Omni: 10..500, default 40).
        vocoder: called as ``vocoder(row, units, index)`` for every chunk, in order; None: use
            the chunks :meth:`accept` / :meth:`finish` return. If it raises, the call raises
            :class:`~speechdecode.decoding.UnitCallbackError` naming the row and chunk index
            (the stream stays consistent; see :class:`~speechdecode.decoding.CtcUnitStreamer`).
        batch_size: B (None: taken from the first accept).

    Attributes:
        steps: hidden states accepted so far per row (list of B ints).
        first_chunk_step: per row, the number of hidden states it had accepted when its first
            chunk was emitted (None before) -- the time to first audio in LLM steps. Chunks of
            a call whose vocoder raised are not counted.

    Example:
        >>> from speechdecode.models.reference_nets import TinyUnitHead
        >>> got = []
        >>> s = UnitStreamer(TinyUnitHead(8, 50, upsample=4), blank=50, upsample=4, chunk_size=3,
        ...                  vocoder=lambda row, units, index: got.append(index))
        >>> for _ in range(5):
        ...     _ = s.accept(torch.randn(1, 1, 8))
        >>> _ = s.finish()
        >>> got == list(range(len(got))) and len(got) > 1
        True
    """

    def __init__(
        self,
        unit_head: Callable[[torch.Tensor], torch.Tensor],
        *,
        blank: int,
        upsample: int = 25,
        chunk_size: int = 40,
        vocoder: Callable | None = None,
        batch_size: int | None = None,
    ):
        if not callable(unit_head):
            raise InvalidArgumentError("unit_head", "a callable (nn.Module)", type(unit_head).__name__)
        upsample = _args.integer(upsample, "upsample", 1)
        self.unit_head = unit_head
        self.upsample = int(upsample)
        self.units = CtcUnitStreamer(blank, chunk_size, vocoder, batch_size)
        self.steps: list[int] = []
        self.first_chunk_step: list[int | None] = []
        self._ended = False

    def _track(self, chunks: list[UnitChunk]) -> list[UnitChunk]:
        for chunk in chunks:
            if self.first_chunk_step[chunk.row] is None:
                self.first_chunk_step[chunk.row] = self.steps[chunk.row]
        return chunks

    def push(self, hidden, lengths=None) -> list[UnitChunk]:
        """Deprecated name of :meth:`accept`."""
        renamed("UnitStreamer.push()", "accept()")
        return self.accept(hidden, lengths)

    def accept(self, hidden, lengths=None) -> list[UnitChunk]:
        """Add n new hidden states per row ([B, n, D] float, ``lengths`` [B] valid counts or None).

        Returns:
            The chunks that became full (also passed to ``vocoder``).

        Raises:
            TensorError: hidden not float [B, n, D]; the unit head's output not a float tensor
                [B, n * lambda, V] (named ``unit head output (logits)``).
            UnitCallbackError: the vocoder raised (names the row and the chunk index).
        """
        h = _tensors.as_tensor(hidden, "hidden")
        if h.ndim != 3 or not h.dtype.is_floating_point:
            raise TensorError("hidden", "a float [B, n, D] tensor", _tensors._describe(hidden))
        batch, count, _ = h.shape
        lens = _tensors.lengths(lengths, "lengths", batch, count, h.device)
        with torch.no_grad():
            logits = self.unit_head(h.repeat_interleave(self.upsample, dim=1))
        frames = count * self.upsample
        if (
            not isinstance(logits, torch.Tensor)
            or logits.ndim != 3
            or tuple(logits.shape[:2]) != (batch, frames)
            or logits.dtype not in _tensors.SCORE_DTYPES
        ):
            raise TensorError(
                "unit head output (logits)",
                f"a float32/float16/bfloat16 tensor [B={batch}, n*lambda={frames}, V]",
                _tensors._describe(logits),
            )
        if not self.steps or self._ended:
            self.steps = [0] * batch
            self.first_chunk_step = [None] * batch
            self._ended = False
        if batch != len(self.steps):
            raise InvalidArgumentError("hidden", f"batch size {len(self.steps)} (B of earlier accepts)", batch)
        for b, n in enumerate(lens.tolist()):
            self.steps[b] += n
        return self._track(self.units.accept(logits, lens * self.upsample))

    def finish(self) -> list[UnitChunk]:
        """Flush every row's remaining units as final chunks; the next accept starts a new stream
        (:attr:`steps` and :attr:`first_chunk_step` keep this stream's values until then)."""
        self._ended = True
        return self._track(self.units.finish())
