"""CTC speech recognition around any acoustic encoder and any decoder of ``speechdecode.decoding``.

:class:`CtcAsr` runs a user's ``nn.Module`` (features [B, T, F] -> log-probs [B, T', V]), checks
its output, and decodes it with a :class:`~speechdecode.decoding.Decoder`: anything called as
``decoder(log_probs [B, T', V], lengths [B]) -> [[Hypothesis, ...] per utterance]`` with a
``decoder.stream()`` whose streams take ``accept(chunk [n, V])`` / ``partial()`` /
``finish()`` (``decoding.CtcPrefixBeamSearch``, ``decoding.WfstDecoder``,
``decoding.GreedyCtcDecoder``; :mod:`speechdecode.decoding.protocol`). Streaming runs the
encoder chunk by chunk -- statefully when the encoder has
``initial_state(batch, dtype, device) -> state`` and
``forward_chunk(features [B, n, F], state) -> (log_probs [B, n', V], state)`` (e.g.
:class:`~speechdecode.models.reference_nets.CausalConvLstmEncoder`), else by re-running it on
``left_context`` frames of history plus the new chunk -- and feeds each row's new frames to its
decoder stream; the final hypotheses equal offline decoding. An encoder that looks ahead (its
output frames depend on later input, e.g. :class:`~speechdecode.models.acoustic.CharCtcModel`
with a ``lookahead``) also has ``flush(state) -> (log_probs [B, n', V], state)``, the frames it
held back, and takes ``forward_chunk(features, state, lengths)`` with each row's valid frames
in the chunk (so that a row's end is known when its last frames are computed).

:meth:`CtcAsr.pretrained` wraps the character model shipped in ``models/weights/``
(:mod:`speechdecode.models.acoustic`); :meth:`CtcAsr.transcribe_audio` and
:meth:`CtcAsr.word_times` then take audio at any sample rate and give words with times.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import torch

from speechdecode import _args, _tensors
from speechdecode._deprecation import renamed
from speechdecode.decoding import protocol
from speechdecode.decoding.ctc_greedy import GreedyCtcDecoder as _GreedyCtcDecoder
from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.decoding.protocol import Decoder
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["AsrStream", "CtcAsr"]

# Deprecated names (one release): the protocol and the greedy decoder live in speechdecode.decoding.
MOVED = {
    "CtcDecoder": ("speechdecode.decoding.Decoder", protocol.Decoder),
    "CtcDecoderStream": ("speechdecode.decoding.DecoderStream", protocol.DecoderStream),
    "GreedyCtcDecoder": ("speechdecode.decoding.GreedyCtcDecoder", _GreedyCtcDecoder),
}


def __getattr__(name: str):
    if name in MOVED:
        new, value = MOVED[name]
        renamed(f"{__name__}.{name}", new)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_OUTPUT = "encoder output (log_probs)"


def _decoder_vocab(decoder) -> int | None:
    for name in ("vocab_size", "num_tokens"):
        size = getattr(decoder, name, None)
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            return int(size)
    tokens = getattr(decoder, "tokens", None)
    return len(tokens) if isinstance(tokens, Sequence) else None


class CtcAsr:
    """An acoustic encoder plus a CTC decoder: offline and streaming recognition of a batch.

    Args:
        encoder: ``nn.Module`` called as ``encoder(features [B, T, F], lengths [B])`` returning
            log-probs [B, T', V] or ``(log_probs, out_lengths)``. Without out_lengths they are
            ``lengths // subsampling``.
        decoder: a :class:`~speechdecode.decoding.Decoder`; its vocabulary size (``decoder.vocab_size``,
            ``decoder.num_tokens`` or ``len(decoder.tokens)``, when it has one) must equal V.
        subsampling: input frames per output frame.
        left_context: for streaming an encoder without ``forward_chunk``: the input frames of
            history an output frame depends on (a multiple of ``subsampling``); each chunk is
            encoded together with that much history. Exact for encoders whose output frame i
            depends on input frames ``[i s - left_context, (i + 1) s)`` only.

    Raises:
        InvalidArgumentError: bad subsampling / left_context, a decoder without ``stream``.

    Example:
        >>> from speechdecode.models.reference_nets import CausalConvLstmEncoder
        >>> enc = CausalConvLstmEncoder(num_features=8, vocab_size=6, subsampling=2)
        >>> from speechdecode.decoding import GreedyCtcDecoder
        >>> asr = CtcAsr(enc, GreedyCtcDecoder(6), subsampling=2)
        >>> feats = torch.randn(2, 20, 8)
        >>> offline = asr.transcribe(feats)
        >>> stream = asr.stream(batch_size=2)
        >>> for start in range(0, 20, 6):
        ...     stream.accept(feats[:, start : start + 6])
        >>> [h[0].tokens for h in stream.finish()] == [h[0].tokens for h in offline]
        True
    """

    def __init__(self, encoder: torch.nn.Module, decoder: Decoder, *, subsampling: int = 1, left_context=None):
        subsampling = _args.integer(subsampling, "subsampling", 1)
        if not callable(decoder) or not callable(getattr(decoder, "stream", None)):
            raise InvalidArgumentError("decoder", "a Decoder (callable with a stream() method)", type(decoder))
        if left_context is not None and (
            isinstance(left_context, bool)
            or not isinstance(left_context, numbers.Integral)
            or left_context < 0
            or left_context % subsampling
        ):
            raise InvalidArgumentError(
                "left_context", f"None or an integer >= 0 divisible by subsampling={subsampling}", repr(left_context)
            )
        self.encoder = encoder
        self.decoder = decoder
        self.subsampling = int(subsampling)
        self.left_context = None if left_context is None else int(left_context)
        self.vocab_size = _decoder_vocab(decoder)
        config = getattr(encoder, "config", None)
        self.frame_seconds = getattr(config, "frame_seconds", None)

    @classmethod
    def pretrained(cls, decoder: Decoder | None = None, weights: str | os.PathLike | None = None) -> CtcAsr:
        """The shipped character CTC model (or ``weights``, a file ``save_acoustic_model`` wrote).

        ``decoder`` defaults to :class:`~speechdecode.decoding.GreedyCtcDecoder` over the model's
        tokens. A decoder with a token table (``decoder.tokens``) must list the model's tokens in its order.

        Raises:
            InputFileError: a bad weights file (see :func:`~speechdecode.models.acoustic.load_acoustic_model`).
            InvalidArgumentError: the decoder's token table differs from the model's.

        Example:
            >>> asr = CtcAsr.pretrained()
            >>> asr.encoder.config.tokens[:4], asr.frame_seconds
            (('<blk>', '|', "'", 'a'), 0.03)
        """
        from speechdecode.models.acoustic import WEIGHTS, load_acoustic_model

        model = load_acoustic_model(WEIGHTS if weights is None else weights)
        tokens = list(model.config.tokens)
        decoder = _GreedyCtcDecoder(tokens) if decoder is None else decoder
        theirs = getattr(decoder, "tokens", None)
        if isinstance(theirs, Sequence) and not isinstance(theirs, str) and list(theirs) != tokens:
            raise InvalidArgumentError(
                "decoder", f"a decoder over the model's {len(tokens)} tokens {tokens}", f"tokens {list(theirs)}"
            )
        return cls(model, decoder, subsampling=model.config.subsampling)

    def transcribe_audio(self, samples, sample_rate: int) -> list[Hypothesis]:
        """Recognise one utterance of mono float audio at any ``sample_rate``: its n-best list.

        The audio is resampled to 16 kHz and turned into :func:`~speechdecode.models.audio.log_mel`
        features, the input of the shipped model (:meth:`pretrained`).

        Raises:
            TensorError: ``samples`` not a 1-D float array.
            InvalidArgumentError: a bad sample rate, or an encoder that does not take 80 log-mel features.
        """
        from speechdecode.models.audio import log_mel, resample

        self._check_log_mel()
        features = log_mel(resample(samples, sample_rate))
        return self.transcribe(features[None])[0]

    def _check_log_mel(self) -> None:
        from speechdecode.models.audio import N_MELS

        config = getattr(self.encoder, "config", None)
        if getattr(config, "num_features", None) != N_MELS or self.frame_seconds is None:
            raise InvalidArgumentError(
                "encoder", f"an encoder of {N_MELS} log-mel features with a config (e.g. CtcAsr.pretrained())", None
            )

    def word_times(self, hypothesis: Hypothesis) -> list[tuple[str, float, float]]:
        """(word, start, end) in seconds: start of its first token's frame to end of its last's.

        These are the frames where the model emitted the characters; a causal model emits a
        character once it has heard it, so the times lag the audio by up to a few frames.
        """
        self._check_log_mel()
        step = self.frame_seconds
        return [
            (word, round(first * step, 3), round((last + 1) * step, 3))
            for word, (first, last) in zip(hypothesis.words, hypothesis.word_frames, strict=True)
        ]

    def _check_output(self, output, batch: int, lengths: torch.Tensor, frames: int | None):
        """The encoder's (log_probs, out_lengths), checked; ``frames``: the exact T' required."""
        log_probs, out_lengths = output if isinstance(output, tuple) else (output, None)
        vocab = self.vocab_size if self.vocab_size is not None else "V"
        expected = f"a float32/float16/bfloat16 tensor [B={batch}, T', {vocab}]"
        if not isinstance(log_probs, torch.Tensor):
            raise TensorError(_OUTPUT, expected, type(log_probs).__name__)
        if log_probs.ndim != 3 or log_probs.dtype not in _tensors.SCORE_DTYPES or log_probs.shape[0] != batch:
            raise TensorError(_OUTPUT, expected, _tensors._describe(log_probs))
        if self.vocab_size is not None and log_probs.shape[2] != self.vocab_size:
            raise TensorError(
                _OUTPUT, f"[B, T', {self.vocab_size}] (V = the decoder's tokens)", _tensors._describe(log_probs)
            )
        if frames is not None and log_probs.shape[1] != frames:
            raise TensorError(
                _OUTPUT, f"[{batch}, {frames}, V] (T // subsampling frames)", _tensors._describe(log_probs)
            )
        if out_lengths is None:
            out_lengths = lengths // self.subsampling
        else:
            out_lengths = _tensors.lengths(out_lengths, "encoder output (lengths)", batch, log_probs.shape[1], "cpu")
        too_long = out_lengths.cpu() > log_probs.shape[1]
        if bool(too_long.any()):
            raise TensorError(
                _OUTPUT,
                f"at least T' = lengths // subsampling = {int(out_lengths.max())} frames",
                _tensors._describe(log_probs),
            )
        return log_probs, out_lengths.cpu()

    def _features(self, features, lengths):
        x = _tensors.as_tensor(features, "features")
        if x.ndim != 3 or not x.dtype.is_floating_point:
            raise TensorError("features", "a float [B, T, F] array", _tensors._describe(features))
        return x, _tensors.lengths(lengths, "lengths", x.shape[0], x.shape[1], x.device)

    def encode(self, features, lengths=None):
        """Run the encoder on [B, T, F] features; returns checked (log_probs [B, T', V], lengths [B]).

        Raises:
            TensorError: features not float [B, T, F]; the encoder's output not a float
                [B, T', V] tensor with V = the decoder's vocabulary and T' >= its lengths.
        """
        x, lens = self._features(features, lengths)
        with torch.no_grad():
            output = self.encoder(x, lens)
        return self._check_output(output, x.shape[0], lens.cpu(), None)

    def transcribe(self, features, lengths=None) -> list[list[Hypothesis]]:
        """Offline recognition: features [B, T, F] (+ lengths [B]) -> an n-best list per utterance."""
        log_probs, out_lengths = self.encode(features, lengths)
        return self.decoder(log_probs, out_lengths)

    def stream(self, batch_size: int = 1) -> AsrStream:
        """A streaming session for ``batch_size`` utterances decoded in lockstep.

        Raises:
            InvalidArgumentError: the encoder has no ``forward_chunk`` and no ``left_context``
                was given (no exact way to run it chunk by chunk).
        """
        stateful = callable(getattr(self.encoder, "forward_chunk", None)) and callable(
            getattr(self.encoder, "initial_state", None)
        )
        if not stateful and self.left_context is None:
            raise InvalidArgumentError(
                "left_context",
                "an integer (the encoder has no initial_state/forward_chunk for streaming)",
                None,
            )
        return AsrStream(self, _args.integer(batch_size, "batch_size", 1), stateful)


class AsrStream:
    """A batch of utterances recognised chunk by chunk (made by :meth:`CtcAsr.stream`).

    ``accept(features [B, n, F], lengths=None)`` encodes the new frames and feeds each row's new
    output frames to its decoder stream; a row whose ``lengths`` entry is below n has ended
    and may not receive more frames. ``partial()`` gives every row's current best,
    ``finish()`` the n-best lists (equal to :meth:`CtcAsr.transcribe` of the whole input);
    the next ``accept`` starts new utterances.
    """

    def __init__(self, asr: CtcAsr, batch: int, stateful: bool):
        self.asr = asr
        self.batch = batch
        self.stateful = stateful
        self.flushes = stateful and callable(getattr(asr.encoder, "flush", None))
        self._reset()

    def _reset(self) -> None:
        self.streams = [self.asr.decoder.stream() for _ in range(self.batch)]
        self.consumed = torch.zeros(self.batch, dtype=torch.int64)  # valid input frames per row
        self.emitted = 0  # output frames produced for the batch
        self.ended = torch.zeros(self.batch, dtype=torch.bool)
        self.state = None
        self.history = None  # left-context mode: encoded input frames kept as context
        self.rest = None  # left-context mode: input frames not yet forming an output frame

    def _encode(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        s = self.asr.subsampling
        if self.stateful:
            if self.state is None:
                self.state = self.asr.encoder.initial_state(x.shape[0], x.dtype, x.device)
            if self.flushes:
                output, self.state = self.asr.encoder.forward_chunk(x, self.state, lens.to(x.device))
            else:
                output, self.state = self.asr.encoder.forward_chunk(x, self.state)
            expected = None
        else:
            if self.rest is not None:
                x = torch.cat([self.rest, x], dim=1)
            usable = x.shape[1] // s * s
            self.rest = x[:, usable:]
            context = self.history if self.history is not None else x[:, :0]
            window = torch.cat([context, x[:, :usable]], dim=1)
            self.history = window[:, max(0, window.shape[1] - self.asr.left_context) :]
            if usable == 0:
                return x.new_zeros(x.shape[0], 0, self.asr.vocab_size or 0)
            lens = torch.full((x.shape[0],), window.shape[1], dtype=torch.int64, device=x.device)
            with torch.no_grad():
                output = self.asr.encoder(window, lens)
            expected = window.shape[1] // s
        log_probs, _ = self.asr._check_output(output, x.shape[0], torch.zeros(x.shape[0], dtype=torch.int64), expected)
        if not self.stateful:
            log_probs = log_probs[:, context.shape[1] // s :]
        return log_probs

    def accept(self, features, lengths=None) -> None:
        """Encode and decode the next frames of every row (see the class docstring).

        Raises:
            TensorError: features not float [B, n, F] with the session's B; lengths out of [0, n].
            InvalidArgumentError: frames for a row that has ended.
        """
        x, lens = self.asr._features(features, lengths)
        if x.shape[0] != self.batch:
            raise TensorError("features", f"[{self.batch}, n, F] (the stream's batch size)", _tensors._describe(x))
        lens = lens.cpu()
        late = self.ended & (lens > 0)
        if bool(late.any()):
            row = int(late.nonzero()[0, 0])
            raise InvalidArgumentError("lengths", f"0 for row {row} (it ended in an earlier chunk)", int(lens[row]))
        self.ended |= lens < x.shape[1]
        self.consumed += lens
        self._feed(self._encode(x, lens))

    def _feed(self, log_probs: torch.Tensor) -> None:
        """Give each row's decoder stream its valid frames of the encoder's next output frames."""
        start, count = self.emitted, log_probs.shape[1]
        self.emitted += count
        valid = (self.consumed // self.asr.subsampling - start).clamp(0, count).tolist()
        for b, n in enumerate(valid):
            if n:
                self.streams[b].accept(log_probs[b, :n])

    def partial(self) -> list[Hypothesis | None]:
        """Every row's current best hypothesis (its decoder stream's ``partial()``)."""
        return [s.partial() for s in self.streams]

    def finish(self) -> list[list[Hypothesis]]:
        """Every row's n-best list; the session then starts over."""
        if self.flushes and self.state is not None:
            output, self.state = self.asr.encoder.flush(self.state)
            zeros = torch.zeros(self.batch, dtype=torch.int64)
            self._feed(self.asr._check_output(output, self.batch, zeros, None)[0])
        result = [s.finish() for s in self.streams]
        self._reset()
        return result

    def finalize(self) -> list[list[Hypothesis]]:
        """Deprecated name of :meth:`finish`."""
        renamed("AsrStream.finalize()", "finish()")
        return self.finish()
