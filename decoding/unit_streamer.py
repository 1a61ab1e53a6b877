"""Streaming CTC speech units in fixed-size chunks (LLaMA-Omni, docs/DEFINITIONS.md section 6).

LLaMA-Omni upsamples each LLM hidden state by lambda=25 into unit logits, takes the per-frame
argmax, merges repeats, drops blanks and hands the units to the vocoder in chunks of Omega
(default 40), flushing the rest at the end. Its reference re-decodes the whole sequence at every
step (O(N^2)) for one utterance; :class:`CtcUnitStreamer` keeps, per batch row, the argmax id of
the row's last frame and the units not yet emitted, so an ``accept`` costs O(new frames). It is a
:class:`~speechdecode.decoding.protocol.Stream`: ``accept(logits)`` / ``finish()``.
"""

from __future__ import annotations

import collections
import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from speechdecode import _args, _tensors
from speechdecode._deprecation import renamed
from speechdecode.errors import InvalidArgumentError, SpeechdecodeError
from speechdecode.kernels.ctc_greedy import ctc_greedy_packed

__all__ = ["CtcUnitStreamer", "UnitCallbackError", "UnitChunk"]

_NO_FRAME = -1  # a row's last-frame id before its first frame: equal to no label


class UnitChunk(NamedTuple):
    """One chunk of units of one batch row.

    row: the batch row. units: int64 [n] unit ids (numpy when the logits were numpy, else a
    tensor on the logits' device); n == chunk_size except for the row's final chunk.
    index: the chunk's position in the row's stream, 0, 1, 2, ...
    """

    row: int
    units: np.ndarray | torch.Tensor
    index: int


class UnitCallbackError(SpeechdecodeError, RuntimeError):
    """``on_chunk`` raised; ``row`` and ``index`` name the chunk, ``__cause__`` is the original."""

    def __init__(self, row: int, index: int, error: BaseException):
        self.row = row
        self.index = index
        super().__init__(f"on_chunk raised for row {row}, chunk {index}: {type(error).__name__}: {error}")


class CtcUnitStreamer:
    """Greedy CTC decoding of unit logits that arrive piece by piece, emitted in chunks.

    The units a row emits, concatenated over all its chunks, equal ``ctc_greedy`` of the row's
    whole logit sequence: a run of one unit split across two accepts yields one unit, a blank
    between them keeps both.

    Args:
        blank: the blank unit id (checked against V at every accept).
        chunk_size: units per chunk (Omega); every chunk but a row's last has exactly this many.
        on_chunk: called as ``on_chunk(row, units, index)`` for every chunk, in emission order
            (by row, then index, within one call). None: use the chunks :meth:`accept` and
            :meth:`finish` return.
        batch_size: the number of rows B; None: taken from the first accept.
        backend: passed to :func:`ctc_greedy_packed` ("reference", "native", "triton" or None).

    Callback errors: if ``on_chunk`` raises, the call raises :class:`UnitCallbackError`
    (chained from the original, naming row and chunk index). The streamer's state is already
    updated for the whole call when callbacks run, so it stays consistent: the chunk whose
    callback raised counts as delivered, and the chunks after it in that call stay queued and
    are delivered first, in order, by the next :meth:`accept` or :meth:`finish` (see
    :attr:`undelivered`). Accepting after an error loses no unit and repeats none.

    Example:
        >>> import numpy as np
        >>> got = []
        >>> s = CtcUnitStreamer(blank=0, chunk_size=2, on_chunk=lambda r, u, i: got.append((r, u.tolist(), i)))
        >>> eye = np.eye(4, dtype=np.float32)
        >>> s.accept(eye[[1, 1, 0, 2]][None])  # units 1, 2 -> one full chunk
        [UnitChunk(row=0, units=array([1, 2]), index=0)]
        >>> s.accept(eye[[2, 3]][None])  # the 2 continues the previous run: only 3 is new
        []
        >>> _ = s.finish()
        >>> got
        [(0, [1, 2], 0), (0, [3], 1)]
    """

    def __init__(
        self,
        blank: int,
        chunk_size: int = 40,
        on_chunk: Callable[[int, np.ndarray | torch.Tensor, int], None] | None = None,
        batch_size: int | None = None,
        *,
        backend: str | None = None,
    ):
        if isinstance(blank, bool) or not isinstance(blank, numbers.Integral) or blank < 0:
            raise InvalidArgumentError("blank", "a non-negative integer label id", repr(blank))
        chunk_size = _args.integer(chunk_size, "chunk_size", 1)
        batch_size = _args.optional_integer(batch_size, "batch_size", 1)
        if on_chunk is not None and not callable(on_chunk):
            raise InvalidArgumentError("on_chunk", "a callable or None", type(on_chunk).__name__)
        self.blank = int(blank)
        self.chunk_size = int(chunk_size)
        self.on_chunk = on_chunk
        self.backend = backend
        self._fixed_batch = batch_size is not None
        self._outbox: collections.deque[UnitChunk] = collections.deque()
        self._batch: int | None = None
        self._reset_all(None if batch_size is None else int(batch_size))

    @property
    def batch_size(self) -> int | None:
        """B, or None before the first accept when it was not given."""
        return self._batch

    @property
    def undelivered(self) -> int:
        """Chunks still queued for ``on_chunk`` after a callback raised."""
        return len(self._outbox)

    def pending(self, row: int) -> list[int]:
        """The units of ``row`` decoded but not yet emitted (fewer than ``chunk_size``)."""
        return list(self._pending[self._row(row)])

    def push(self, logits, lengths=None) -> list[UnitChunk]:
        """Deprecated name of :meth:`accept`."""
        renamed("CtcUnitStreamer.push()", "accept()")
        return self.accept(logits, lengths)

    def accept(self, logits, lengths=None) -> list[UnitChunk]:
        """Decode new frames and emit every chunk that became full.

        Args:
            logits: [B, n, V] scores of the new frames (logits or log-probs, only the argmax
                matters), float32/float16/bfloat16, numpy or torch, any device and strides;
                n may be 0.
            lengths: [B] integer counts of valid new frames per row (0 for a row with nothing
                new), or None for n everywhere.

        Returns:
            The chunks this call made full, by row then index (also passed to ``on_chunk``).

        Raises:
            TensorError: wrong ndim/dtype, lengths out of [0, n], NaN/+inf scores.
            InvalidArgumentError: blank outside [0, V); B differs from the streamer's batch size.
            UnitCallbackError: ``on_chunk`` raised (see the class docstring).
        """
        x = _tensors.scores(logits, "logits", ndim=3)
        batch, frames, vocab = x.shape
        if self._batch is not None and batch != self._batch:
            raise InvalidArgumentError("logits", f"batch size {self._batch} (B of earlier accepts)", batch)
        _tensors.label(self.blank, "blank", vocab)
        lens = _tensors.lengths(lengths, "lengths", batch, frames, x.device)
        # Validates the scores (NaN/+inf) before any state changes.
        tokens, starts, offsets = ctc_greedy_packed(x, lens, self.blank, backend=self.backend)
        if self._batch is None:
            self._reset_all(batch)
        rows = (lens > 0).nonzero().flatten()
        last_ids = x[rows, lens[rows] - 1].argmax(dim=-1) if frames else rows
        made: list[UnitChunk] = []
        out = self._outputs(logits, x.device)
        tokens, starts, bounds = tokens.tolist(), starts.tolist(), offsets.tolist()
        for b, last in zip(rows.tolist(), last_ids.tolist(), strict=True):
            a, z = bounds[b], bounds[b + 1]
            # ctc_greedy saw the new frames alone: a first token starting at frame 0 that equals
            # the row's previous last frame continues that run and was emitted already.
            if a < z and starts[a] == 0 and tokens[a] == self._last[b]:
                a += 1
            self._last[b] = last
            self._pending[b].extend(tokens[a:z])
            made += self._cut(b, out, final=False)
        self._deliver(made)
        return made

    def finish(self, row: int | None = None) -> list[UnitChunk]:
        """Flush the remaining units of ``row`` (or of every row) and reset it for a new utterance.

        A row with remaining units emits them as one final chunk shorter than ``chunk_size``;
        its next accept starts chunk numbering at 0 and does not merge with its old last frame.
        ``finish()`` also forgets a batch size taken from the first accept.

        Returns:
            The final chunks (also passed to ``on_chunk``), by row.

        Raises:
            InvalidArgumentError: row outside [0, B).
            UnitCallbackError: ``on_chunk`` raised (see the class docstring).
        """
        rows = range(self._batch or 0) if row is None else [self._row(row)]
        made: list[UnitChunk] = []
        for b in rows:
            made += self._cut(b, self._out, final=True)
            self._pending[b] = []
            self._last[b] = _NO_FRAME
            self._next_index[b] = 0
        if row is None:
            self._reset_all(self._batch if self._fixed_batch else None)
        self._deliver(made)
        return made

    def _reset_all(self, batch: int | None) -> None:
        self._batch = batch
        n = batch or 0
        self._pending: list[list[int]] = [[] for _ in range(n)]
        self._last = [_NO_FRAME] * n
        self._next_index = [0] * n
        self._out: Callable[[list[int]], np.ndarray | torch.Tensor] = _numpy_units

    def _row(self, row) -> int:
        if isinstance(row, bool) or not isinstance(row, numbers.Integral):
            raise InvalidArgumentError("row", "an integer row index or None", repr(row))
        if self._batch is None or not 0 <= row < self._batch:
            raise InvalidArgumentError("row", f"a row in [0, {self._batch or 0})", int(row))
        return int(row)

    def _outputs(self, logits, device: torch.device) -> Callable[[list[int]], np.ndarray | torch.Tensor]:
        """Chunk maker for this input's framework; kept so that finish() answers in kind."""
        if isinstance(logits, np.ndarray):
            self._out = _numpy_units
        else:
            self._out = lambda units: torch.tensor(units, dtype=torch.int64, device=device)
        return self._out

    def _cut(self, b: int, out, final: bool) -> list[UnitChunk]:
        """Take the full chunks (and with ``final``, the rest) off row ``b``'s pending units."""
        pending, size, made = self._pending[b], self.chunk_size, []
        full = len(pending) // size * size
        for start in range(0, full, size):
            made.append(UnitChunk(b, out(pending[start : start + size]), self._next_index[b]))
            self._next_index[b] += 1
        if final and full < len(pending):
            made.append(UnitChunk(b, out(pending[full:]), self._next_index[b]))
            self._next_index[b] += 1
            full = len(pending)
        del pending[:full]
        return made

    def _deliver(self, made: list[UnitChunk]) -> None:
        if self.on_chunk is None:
            return
        self._outbox.extend(made)
        while self._outbox:
            chunk = self._outbox.popleft()
            try:
                self.on_chunk(chunk.row, chunk.units, chunk.index)
            except Exception as error:
                raise UnitCallbackError(chunk.row, chunk.index, error) from error


def _numpy_units(units: list[int]) -> np.ndarray:
    return np.asarray(units, dtype=np.int64)
