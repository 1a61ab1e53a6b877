"""Codes to waveform as frames arrive: a codec's decoder run chunk by chunk.

A codec LM hands out frames as soon as all their codebooks exist
(:class:`~speechdecode.kernels.delay_pattern.IncrementalRevert`, ``DelayPatternLM.generate``'s
``on_frame``); :class:`CodecStream` turns them into audio without waiting for the end.

Each :meth:`CodecStream.accept` decodes the frames seen so far (or the last ``context`` of them)
and returns the samples that no later frame can change:

* a **causal** codec (EnCodec with ``use_causal_conv``, the 24 kHz model's setting) computes a
  sample from the frames up to its own: the samples of the new frames are final at once (after
  the first ``kernel_size`` frames: EnCodec's reflection padding reads frames ahead until then),
  and the streamed waveform equals decoding the whole sequence at once (float rounding aside);
* a **non-causal** codec (DAC: its convolutions look ahead) changes a frame's samples when the
  next frames arrive; ``lookahead`` frames are held back until enough right context exists. The
  held frames come out at :meth:`finish`. With a lookahead that covers the decoder's right
  receptive field the stream equals the whole decode too; with less it does not.

``context=None`` decodes every frame so far at each accept (exact; the cost grows with the length);
``context=C`` decodes only the last C frames before the new ones (constant cost; an
approximation for decoders with long memory, such as EnCodec's LSTM).
"""

from __future__ import annotations

import torch

from speechdecode import _args, _tensors
from speechdecode._deprecation import renamed
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["CodecStream"]


def _codec(codec) -> tuple[str, int, int, int]:
    """(kind, samples per frame, codebooks it can decode, frames before the first samples are
    final) of a transformers codec model."""
    kind = type(codec).__name__
    config = getattr(codec, "config", None)
    if kind == "EncodecModel":
        hop = 1
        for ratio in config.upsampling_ratios:
            hop *= int(ratio)
        # EnCodec pads its causal convolutions by reflection: until the first one (at the frame
        # rate) has a whole kernel of frames, the padding reads frames that do not exist yet
        warmup = int(config.kernel_size) if config.pad_mode == "reflect" else 1
        return kind, hop, int(config.num_quantizers), warmup
    if kind == "DacModel":
        return kind, int(config.hop_length), int(config.n_codebooks), 1
    raise InvalidArgumentError("codec", "a transformers EncodecModel or DacModel", kind)


class CodecStream:
    """Waveform from codec frames accepted as they are generated (a
    :class:`~speechdecode.decoding.protocol.Stream`).

    Args:
        codec: a transformers ``EncodecModel`` or ``DacModel`` (eval mode; any device).
        lookahead: frames held back for the decoder's right context (0 for causal codecs;
            see the module docstring).
        context: frames of left context decoded with the new ones (None: all of them).

    ``accept(frames [B, K, n])`` returns the final samples so far, [B, C, m] float
    (``m = n * hop`` for a causal codec); ``finish()`` returns the held-back rest and resets.

    Raises:
        InvalidArgumentError: an unsupported codec, bad ``lookahead`` / ``context``.
        TensorError: frames not [B, K, n] integer codes, K above what the codec decodes, or a
            batch / K other than the first accept's.

    Example (a small EnCodec with random weights; ``EncodecModel.from_pretrained`` gives a real one):
        >>> from transformers import EncodecConfig, EncodecModel
        >>> _ = torch.manual_seed(0)
        >>> codec = EncodecModel(EncodecConfig(
        ...     codebook_size=32, hidden_size=8, num_filters=4, upsampling_ratios=[2, 2],
        ...     target_bandwidths=[4.0], sampling_rate=400, codebook_dim=8, num_lstm_layers=1)).eval()
        >>> stream = CodecStream(codec)
        >>> codes = torch.randint(0, 32, (1, 4, 12))  # [B, K, frames], as a codec LM emits them
        >>> pieces = [stream.accept(codes[..., t : t + 1]) for t in range(12)]  # one frame at a time
        >>> [p.shape[-1] for p in pieces]  # EnCodec's first samples need its 7-frame kernel
        [0, 0, 0, 0, 0, 0, 28, 4, 4, 4, 4, 4]
        >>> audio = torch.cat([*pieces, stream.finish()], dim=-1)
        >>> with torch.no_grad():
        ...     whole = codec.decode(codes[None], [None]).audio_values  # all frames at once
        >>> torch.allclose(audio, whole, atol=1e-5)
        True
    """

    def __init__(self, codec, *, lookahead: int = 0, context: int | None = None):
        self.codec = codec
        self.kind, self.hop, self.max_codebooks, self.warmup = _codec(codec)
        self.lookahead = _args.integer(lookahead, "lookahead", 0)
        self.context = None if context is None else _args.integer(context, "context", 1)
        self.reset()

    def reset(self) -> None:
        """Forget every frame (a new utterance)."""
        self._codes: torch.Tensor | None = None
        self._emitted = 0  # frames whose samples were returned

    def push(self, frames) -> torch.Tensor:
        """Deprecated name of :meth:`accept`."""
        renamed("CodecStream.push()", "accept()")
        return self.accept(frames)

    def accept(self, frames) -> torch.Tensor:
        """Add [B, K, n] frames; returns the samples that are now final, [B, C, m]."""
        z = _tensors.as_tensor(frames, "frames")
        if z.ndim != 3 or z.dtype.is_floating_point or z.dtype == torch.bool:
            raise TensorError("frames", "integer codes [B, K, n]", _tensors._describe(frames))
        if not 1 <= z.shape[1] <= self.max_codebooks:
            raise TensorError(
                "frames", f"K in [1, {self.max_codebooks}] (the codebooks {self.kind} decodes)", f"K = {z.shape[1]}"
            )
        z = z.long()
        if self._codes is None:
            self._codes = z
        elif z.shape[:2] != self._codes.shape[:2]:
            raise TensorError("frames", f"[B, K] = {list(self._codes.shape[:2])} as before", list(z.shape[:2]))
        else:
            self._codes = torch.cat([self._codes, z], dim=-1)
        total = self._codes.shape[-1]
        return self._emit(total - self.lookahead if total >= self.warmup else 0)

    def flush(self) -> torch.Tensor:
        """Deprecated name of :meth:`finish`."""
        renamed("CodecStream.flush()", "finish()")
        return self.finish()

    def finish(self) -> torch.Tensor:
        """The samples of the held-back frames; resets the stream (the next accept starts anew)."""
        if self._codes is None:
            return torch.zeros(0)
        out = self._emit(self._codes.shape[-1])
        self.reset()
        return out

    def _emit(self, final: int) -> torch.Tensor:
        """Samples of frames [emitted, final), decoded with the context the options allow."""
        total = self._codes.shape[-1]
        if final <= self._emitted:
            return self._decode(self._codes[..., :0])
        start = 0 if self.context is None else max(0, self._emitted - self.context)
        audio = self._decode(self._codes[..., start:total])
        out = audio[..., (self._emitted - start) * self.hop : (final - start) * self.hop]
        self._emitted = final
        return out

    @torch.no_grad()
    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        device = next(self.codec.parameters()).device
        codes = codes.to(device)
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 1, 0, device=device)
        if self.kind == "EncodecModel":
            return self.codec.decode(codes[None], [None]).audio_values
        audio = self.codec.decode(audio_codes=codes).audio_values  # DacModel: [B, samples]
        return audio[:, None] if audio.ndim == 2 else audio
