"""CTC speech recognition around any acoustic encoder and any decoder of ``speechdecode.decoding``.

:class:`CtcAsr` runs a user's ``nn.Module`` (features [B, T, F] -> log-probs [B, T', V]), checks
its output, and decodes it with a :class:`CtcDecoder`: anything called as
``decoder(log_probs [B, T', V], lengths [B]) -> [[Hypothesis, ...] per utterance]`` with a
``decoder.stream()`` whose streams take ``accept(chunk [n, V])`` / ``partial()`` /
``finalize()`` (``decoding.CtcPrefixBeamSearch``, ``decoding.WfstDecoder`` and
:class:`GreedyCtcDecoder` here). Streaming runs the encoder chunk by chunk -- statefully when
the encoder has ``initial_state(batch, dtype, device) -> state`` and
``forward_chunk(features [B, n, F], state) -> (log_probs [B, n', V], state)`` (e.g.
:class:`~speechdecode.models.reference_nets.CausalConvLstmEncoder`), else by re-running it on
``left_context`` frames of history plus the new chunk -- and feeds each row's new frames to its
decoder stream; the final hypotheses equal offline decoding.

:meth:`CtcAsr.pretrained` wraps the character model shipped in ``models/weights/``
(:mod:`speechdecode.models.acoustic`); :meth:`CtcAsr.transcribe_audio` and
:meth:`CtcAsr.word_times` then take audio at any sample rate and give words with times.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from speechdecode import _tensors
from speechdecode.decoding.ctc_greedy import ctc_greedy
from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["AsrStream", "CtcAsr", "CtcDecoder", "CtcDecoderStream", "GreedyCtcDecoder"]

_OUTPUT = "encoder output (log_probs)"


@runtime_checkable
class CtcDecoderStream(Protocol):
    """One utterance decoded as its frames arrive."""

    def accept(self, chunk) -> None:
        """Add the next frames, [n, V] log-probs."""

    def partial(self) -> Hypothesis | None:
        """The best hypothesis of the frames so far (None where the decoder has none yet)."""

    def finalize(self) -> list[Hypothesis]:
        """The n-best list of the whole utterance."""


@runtime_checkable
class CtcDecoder(Protocol):
    """A batched CTC decoder with a streaming mode (the interface :class:`CtcAsr` calls)."""

    def __call__(self, log_probs, lengths) -> list[list[Hypothesis]]:
        """[B, T, V] log-probs and [B] lengths -> an n-best list per utterance."""

    def stream(self) -> CtcDecoderStream:
        """A stream decoding one utterance."""


def _word_spans(pieces: Sequence[str], frames: Sequence[int], boundary: str | None):
    """Words and their (first, last) token frames; ``boundary`` pieces split words."""
    words, spans, current, first, last = [], [], "", -1, -1
    for piece, frame in zip(pieces, frames, strict=True):
        if boundary is not None and piece == boundary:
            if current:
                words.append(current)
                spans.append((first, last))
            current = ""
            continue
        if boundary is None:
            words.append(piece)
            spans.append((frame, frame))
            continue
        if not current:
            first = frame
        current += piece
        last = frame
    if current:
        words.append(current)
        spans.append((first, last))
    return tuple(words), tuple(spans)


class GreedyCtcDecoder:
    """:func:`~speechdecode.decoding.ctc_greedy` behind the :class:`CtcDecoder` interface.

    Args:
        tokens: the symbol of every label id (a sequence of strings, blank included), or an
            integer V when there are no symbols (hypotheses then have no words).
        blank: the blank id.
        word_boundary: the symbol that separates words (character models), or None when every
            token is a word.

    Hypotheses: ``score == am_score`` = the best path's log-probability (sum of each frame's
    maximum), ``lm_score`` 0, one hypothesis per utterance.

    Example:
        >>> import numpy as np
        >>> dec = GreedyCtcDecoder(["-", "a", "b", "|"])
        >>> x = torch.log(torch.eye(4)[[1, 0, 1, 3, 2]] * 0.9 + 0.025)[None]
        >>> dec(x, torch.tensor([5]))[0][0].words
        ('aa', 'b')
    """

    def __init__(self, tokens: Sequence[str] | int, blank: int = 0, word_boundary: str | None = "|"):
        if isinstance(tokens, numbers.Integral) and not isinstance(tokens, bool):
            self.tokens = None
            self.vocab_size = int(tokens)
        elif isinstance(tokens, Sequence) and not isinstance(tokens, str) and all(isinstance(t, str) for t in tokens):
            self.tokens = list(tokens)
            self.vocab_size = len(self.tokens)
        else:
            raise InvalidArgumentError("tokens", "a sequence of symbols or an integer V", repr(tokens))
        if self.vocab_size < 1:
            raise InvalidArgumentError("tokens", "at least one label", self.vocab_size)
        self.blank = _tensors.label(blank, "blank", self.vocab_size)
        self.word_boundary = word_boundary

    def hypothesis(self, ids: Sequence[int], frames: Sequence[int], score: float) -> Hypothesis:
        """The :class:`Hypothesis` of a decoded label sequence."""
        words, spans = (), ()
        if self.tokens is not None:
            words, spans = _word_spans([self.tokens[i] for i in ids], frames, self.word_boundary)
        return Hypothesis(tuple(ids), words, score, score, 0.0, tuple(frames), spans)

    def __call__(self, log_probs, lengths=None) -> list[list[Hypothesis]]:
        x = _tensors.scores(log_probs, "log_probs", 3)
        if x.shape[2] != self.vocab_size:
            raise TensorError(
                "log_probs", f"[B, T, {self.vocab_size}] (V = the decoder's tokens)", _tensors._describe(x)
            )
        lens = _tensors.lengths(lengths, "lengths", x.shape[0], x.shape[1], x.device)
        hyps = ctc_greedy(x, lens, self.blank)
        best = x.max(dim=2).values.double()
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lens[:, None]
        scores = torch.where(valid, best, torch.zeros_like(best)).sum(dim=1).tolist()
        return [[self.hypothesis(h.tokens.tolist(), h.frames.tolist(), s)] for h, s in zip(hyps, scores, strict=True)]

    def stream(self) -> _GreedyStream:
        """A stream for one utterance: ``accept(chunk [n, V])``, ``partial()``, ``finalize()``."""
        return _GreedyStream(self)


class _GreedyStream:
    def __init__(self, decoder: GreedyCtcDecoder):
        self.decoder = decoder
        self.reset()

    def reset(self) -> None:
        self.ids: list[int] = []
        self.frames: list[int] = []
        self.offset = 0
        self.last = -1
        self.score = 0.0

    def accept(self, chunk) -> None:
        x = _tensors.scores(chunk, "chunk", 2)
        if x.shape[1] != self.decoder.vocab_size:
            raise TensorError("chunk", f"[n, {self.decoder.vocab_size}]", _tensors._describe(chunk))
        if x.shape[0] == 0:
            return
        hyp = ctc_greedy(x[None], None, self.decoder.blank)[0]
        ids, frames = hyp.tokens.tolist(), hyp.frames.tolist()
        if ids and frames[0] == 0 and ids[0] == self.last:  # continues the previous chunk's run
            ids, frames = ids[1:], frames[1:]
        self.ids += ids
        self.frames += [f + self.offset for f in frames]
        best = x.max(dim=1)
        self.last = int(best.indices[-1])
        self.score += float(best.values.double().sum())
        self.offset += x.shape[0]

    def partial(self) -> Hypothesis:
        return self.decoder.hypothesis(self.ids, self.frames, self.score)

    def finalize(self) -> list[Hypothesis]:
        result = [self.partial()]
        self.reset()
        return result


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
        decoder: a :class:`CtcDecoder`; its vocabulary size (``decoder.vocab_size``,
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
        >>> asr = CtcAsr(enc, GreedyCtcDecoder(6), subsampling=2)
        >>> feats = torch.randn(2, 20, 8)
        >>> offline = asr.transcribe(feats)
        >>> stream = asr.stream(batch_size=2)
        >>> for start in range(0, 20, 6):
        ...     stream.accept(feats[:, start : start + 6])
        >>> [h[0].tokens for h in stream.finalize()] == [h[0].tokens for h in offline]
        True
    """

    def __init__(self, encoder: torch.nn.Module, decoder: CtcDecoder, *, subsampling: int = 1, left_context=None):
        if isinstance(subsampling, bool) or not isinstance(subsampling, numbers.Integral) or subsampling < 1:
            raise InvalidArgumentError("subsampling", "an integer >= 1", repr(subsampling))
        if not callable(decoder) or not callable(getattr(decoder, "stream", None)):
            raise InvalidArgumentError("decoder", "a CtcDecoder (callable with a stream() method)", type(decoder))
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
    def pretrained(cls, decoder: CtcDecoder | None = None, weights: str | os.PathLike | None = None) -> CtcAsr:
        """The shipped character CTC model (or ``weights``, a file ``save_acoustic_model`` wrote).

        ``decoder`` defaults to :class:`GreedyCtcDecoder` over the model's tokens. A decoder
        with a token table (``decoder.tokens``) must list the model's tokens in its order.

        Raises:
            InputFileError: a bad weights file (see :func:`~speechdecode.models.acoustic.load_acoustic_model`).
            InvalidArgumentError: the decoder's token table differs from the model's.

        Example:
            >>> asr = CtcAsr.pretrained()
            >>> asr.encoder.config.tokens[:4], asr.frame_seconds
            (('<blk>', '|', "'", 'a'), 0.04)
        """
        from speechdecode.models.acoustic import WEIGHTS, load_acoustic_model

        model = load_acoustic_model(WEIGHTS if weights is None else weights)
        tokens = list(model.config.tokens)
        decoder = GreedyCtcDecoder(tokens) if decoder is None else decoder
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
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise InvalidArgumentError("batch_size", "an integer >= 1", repr(batch_size))
        return AsrStream(self, int(batch_size), stateful)


class AsrStream:
    """A batch of utterances recognised chunk by chunk (made by :meth:`CtcAsr.stream`).

    ``accept(features [B, n, F], lengths=None)`` encodes the new frames and feeds each row's new
    output frames to its decoder stream; a row whose ``lengths`` entry is below n has ended
    and may not receive more frames. ``partial()`` gives every row's current best,
    ``finalize()`` the n-best lists (equal to :meth:`CtcAsr.transcribe` of the whole input)
    and resets the session.
    """

    def __init__(self, asr: CtcAsr, batch: int, stateful: bool):
        self.asr = asr
        self.batch = batch
        self.stateful = stateful
        self._reset()

    def _reset(self) -> None:
        self.streams = [self.asr.decoder.stream() for _ in range(self.batch)]
        self.consumed = torch.zeros(self.batch, dtype=torch.int64)  # valid input frames per row
        self.emitted = 0  # output frames produced for the batch
        self.ended = torch.zeros(self.batch, dtype=torch.bool)
        self.state = None
        self.history = None  # left-context mode: encoded input frames kept as context
        self.rest = None  # left-context mode: input frames not yet forming an output frame

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        s = self.asr.subsampling
        if self.stateful:
            if self.state is None:
                self.state = self.asr.encoder.initial_state(x.shape[0], x.dtype, x.device)
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
        log_probs = self._encode(x)
        start, count = self.emitted, log_probs.shape[1]
        self.emitted += count
        valid = (self.consumed // self.asr.subsampling - start).clamp(0, count).tolist()
        for b, n in enumerate(valid):
            if n:
                self.streams[b].accept(log_probs[b, :n])

    def partial(self) -> list[Hypothesis | None]:
        """Every row's current best hypothesis (its decoder stream's ``partial()``)."""
        return [s.partial() for s in self.streams]

    def finalize(self) -> list[list[Hypothesis]]:
        """Every row's n-best list; the session then starts over."""
        result = [s.finalize() for s in self.streams]
        self._reset()
        return result
