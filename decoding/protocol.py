"""The contract every decoder and stream of speechdecode keeps (docs/ARCHITECTURE.md, "Decoders and streams").

A :class:`Decoder` decodes a batch, ``decoder(log_probs [B, T, V], lengths [B])`` -> one n-best
list of :class:`~speechdecode.decoding.Hypothesis` per utterance, and opens a
:class:`DecoderStream` for one utterance whose frames arrive in chunks. Every stream of the
package uses the same verbs with one meaning:

* ``accept(chunk)``: consume the next piece of input;
* ``partial()``: the best result of the input so far, as if it ended here (decoder streams);
* ``finish()``: the input has ended: returns the final result. A decoder stream (one
  utterance) refuses every call after it; a session that serves utterance after utterance
  (:class:`~speechdecode.models.CtcAsr`'s stream, the unit streamers, the codec stream) starts
  the next utterance on its next ``accept``.

The final result equals decoding all the accepted input at once. Greedy
(:class:`~speechdecode.decoding.GreedyCtcDecoder`), prefix beam
(:class:`~speechdecode.decoding.CtcPrefixBeamSearch`) and WFST
(:class:`~speechdecode.decoding.WfstDecoder`) search are decoders;
:class:`~speechdecode.decoding.CtcUnitStreamer` is a :class:`Stream` of unit chunks.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.errors import InvalidArgumentError

__all__ = ["Decoder", "DecoderStream", "Stream"]


@runtime_checkable
class Stream(Protocol):
    """Input that arrives in pieces: ``accept`` each piece, ``finish`` when it has ended."""

    def accept(self, chunk):
        """Consume the next piece of input."""

    def finish(self):
        """End the input; returns the final result."""


@runtime_checkable
class DecoderStream(Protocol):
    """One utterance decoded as its frames arrive."""

    def accept(self, chunk) -> None:
        """Add the next frames, [n, V] log-probs."""

    def partial(self) -> Hypothesis | None:
        """The best hypothesis of the frames so far (None where the decoder has none yet)."""

    def finish(self) -> list[Hypothesis]:
        """The n-best list of the whole utterance; the stream takes no further calls."""


@runtime_checkable
class Decoder(Protocol):
    """A batched CTC decoder with a streaming mode."""

    def __call__(self, log_probs, lengths=None) -> list[list[Hypothesis]]:
        """[B, T, V] log-probs and [B] lengths -> an n-best list per utterance."""

    def stream(self) -> DecoderStream:
        """A stream decoding one utterance."""


class OneUtterance:
    """What the decoder streams share: refusing calls once :meth:`finish` ended the utterance."""

    _finished = False

    def _check_open(self) -> None:
        if self._finished:
            raise InvalidArgumentError("stream", "a stream that was not finished", "a finished stream")

    def _end(self) -> None:
        self._check_open()
        self._finished = True
