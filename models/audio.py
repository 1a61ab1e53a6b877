"""Audio in for the acoustic model: WAV files, resampling and log-mel features, in plain torch.

* :func:`read_wav` -- a RIFF/WAVE file (PCM 8/16/24/32-bit or IEEE float 32/64-bit, plain or
  ``WAVE_FORMAT_EXTENSIBLE``) to float32 samples in [-1, 1]; several channels are averaged into
  one and the returned notes say so.
* :func:`resample` -- band-limited (windowed-sinc) resampling between any two integer rates.
* :func:`log_mel` / :class:`LogMelStream` -- 80 log-mel energies per 10 ms frame (25 ms Hann
  window, no centring: frame i covers samples ``[i hop, i hop + win)``), offline or chunk by
  chunk with the same arithmetic.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field

import numpy as np
import torch

from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError

__all__ = ["SAMPLE_RATE", "Audio", "LogMelStream", "log_mel", "read_wav", "resample"]

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 80

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_FORMAT_NAMES = {2: "Microsoft ADPCM", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 0x55: "MPEG layer 3"}


@dataclass
class Audio:
    """Mono float32 samples in [-1, 1] at ``sample_rate`` Hz, with what reading them changed."""

    samples: np.ndarray
    sample_rate: int
    channels: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def _chunks(path: str, data: bytes):
    """(id, offset, size) of each RIFF chunk after the WAVE header."""
    offset = 12
    while offset + 8 <= len(data):
        ident, size = struct.unpack_from("<4sI", data, offset)
        yield ident, offset + 8, min(size, len(data) - offset - 8)
        offset += 8 + size + (size & 1)


def read_wav(path: str | os.PathLike) -> Audio:
    """Read a WAV file into mono float32 samples (channels averaged; ``notes`` says so).

    Raises:
        InputFileError: the file is not RIFF/WAVE audio, has no ``fmt `` or ``data`` chunk,
            holds no samples, or uses a sample format other than PCM 8/16/24/32-bit or IEEE
            float 32/64-bit (the message names the format).
        OSError: the file cannot be read.

    Example:
        >>> import wave, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
        >>> with wave.open(path, "wb") as w:
        ...     w.setnchannels(2); w.setsampwidth(2); w.setframerate(8000)
        ...     w.writeframes(np.array([[16384, 0], [0, -16384]], dtype="<i2").tobytes())
        >>> audio = read_wav(path)
        >>> audio.samples.tolist(), audio.sample_rate, audio.notes
        ([0.25, -0.25], 8000, ['2 channels mixed down to one'])
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise InputFileError(path, None, f"not a WAV file (expected a RIFF/WAVE header, got {data[:12]!r})")
    if data[:4] == b"RIFX":
        raise InputFileError(path, None, "big-endian WAV (RIFX) is not supported; expected little-endian RIFF")
    chunks = {ident: (start, size) for ident, start, size in reversed(list(_chunks(path, data)))}
    if b"fmt " not in chunks or chunks[b"fmt "][1] < 16:
        raise InputFileError(path, None, "WAV file without a complete 'fmt ' chunk")
    start, size = chunks[b"fmt "]
    tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", data, start)
    if tag == _EXTENSIBLE and size >= 40:
        tag = struct.unpack_from("<H", data, start + 24)[0]  # the sub-format GUID's first two bytes
    kind = {(_PCM, 8): "u1", (_PCM, 16): "<i2", (_PCM, 24): "i3", (_PCM, 32): "<i4"}.get((tag, bits))
    kind = kind or {(_FLOAT, 32): "<f4", (_FLOAT, 64): "<f8"}.get((tag, bits))
    if kind is None:
        name = _FORMAT_NAMES.get(tag, f"format tag {tag:#06x}")
        raise InputFileError(
            path,
            None,
            f"unsupported sample format: {name} with {bits} bits per sample "
            "(expected PCM 8/16/24/32-bit or IEEE float 32/64-bit)",
        )
    if channels < 1 or rate < 1 or align != channels * bits // 8:
        raise InputFileError(path, None, f"bad 'fmt ' chunk: {channels} channels, {rate} Hz, block align {align}")
    if b"data" not in chunks:
        raise InputFileError(path, None, "WAV file without a 'data' chunk")
    start, size = chunks[b"data"]
    frames = size // align
    if frames == 0:
        raise InputFileError(path, None, "empty WAV file (no samples in its 'data' chunk)")
    raw = data[start : start + frames * align]
    if kind == "i3":
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float64) / 2**23
    else:
        values = np.frombuffer(raw, dtype=kind).astype(np.float64)
        if kind == "u1":
            values = (values - 128.0) / 128.0
        elif kind != "<f4" and kind != "<f8":
            values /= 2.0 ** (bits - 1)
    samples = values.reshape(frames, channels).mean(axis=1).astype(np.float32)
    if not np.isfinite(samples).all():
        raise InputFileError(path, None, "WAV file with NaN or infinite samples")
    notes = [f"{channels} channels mixed down to one"] if channels > 1 else []
    return Audio(samples, int(rate), int(channels), notes)


def _sinc_filters(up: int, down: int, zeros: int = 16) -> tuple[torch.Tensor, int]:
    """Kernels [up, K] of each output phase, Hann-windowed sinc at the lower Nyquist rate."""
    cutoff = 0.97 * min(1.0, up / down)  # of the input rate's Nyquist frequency, a little under
    half = math.ceil(zeros / cutoff)
    taps = torch.arange(-half, half + 1, dtype=torch.float64)  # input samples around each output
    phase = torch.arange(up, dtype=torch.float64)[:, None] * down / up  # output i % up -> offset
    t = taps[None, :] - (phase - torch.floor(phase))
    window = torch.where(t.abs() < half, torch.cos(math.pi * t / (2 * half)) ** 2, torch.zeros_like(t))
    kernels = cutoff * torch.special.sinc(cutoff * t) * window
    return kernels.float(), half


def resample(samples, from_rate: int, to_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Resample 1-D ``samples`` from ``from_rate`` to ``to_rate`` Hz (windowed sinc, 16 zero crossings).

    Returns ``ceil(n * to_rate / from_rate)`` float32 samples; the same tensor when the rates match.

    Raises:
        InvalidArgumentError: a rate is not a positive integer.
        TensorError: ``samples`` is not a 1-D float array.

    Example:
        >>> t = torch.arange(8000) / 8000
        >>> y = resample(torch.sin(2 * math.pi * 440 * t), 8000, 16000)
        >>> y.shape[0], round(float(y[4000:12000].abs().max()), 2)
        (16000, 1.0)
    """
    for name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
            raise InvalidArgumentError(name, "a positive integer sample rate", repr(rate))
    x = torch.as_tensor(samples)
    if x.ndim != 1 or not x.dtype.is_floating_point:
        raise TensorError("samples", "a 1-D float array", f"{x.dtype} {list(x.shape)}")
    x = x.float()
    if from_rate == to_rate:
        return x
    g = math.gcd(int(from_rate), int(to_rate))
    up, down = int(to_rate) // g, int(from_rate) // g
    kernels, half = _sinc_filters(up, down)
    out = -(-x.shape[0] * up // down)
    n = torch.arange(out)
    # output n reads input samples floor(n down / up) + [-half, half], weighted by its phase's kernel
    first = n * down // up
    padded = torch.nn.functional.pad(x, (half, half + 1))
    taps = padded[first[:, None] + torch.arange(2 * half + 1)[None, :]]
    return (taps * kernels[n % up]).sum(dim=1)


def _mel_matrix(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> torch.Tensor:
    """[n_fft // 2 + 1, n_mels] triangular filters, equally spaced on the HTK mel scale, 20 Hz to Nyquist."""

    def mel(hz):
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    edges_mel = torch.linspace(float(mel(torch.tensor(20.0))), float(mel(torch.tensor(rate / 2))), n_mels + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    bins = torch.linspace(0, rate / 2, n_fft // 2 + 1)[:, None]
    rising = (bins - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[None, 2:] - bins) / (edges[2:] - edges[1:-1])
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


_MEL = _mel_matrix()
_WINDOW = torch.hann_window(WINDOW, periodic=True)


def frames_of(samples: int) -> int:
    """Feature frames :func:`log_mel` makes from ``samples`` samples."""
    return 0 if samples < WINDOW else 1 + (samples - WINDOW) // HOP


def log_mel(samples) -> torch.Tensor:
    """[T, 80] natural-log mel energies of 16 kHz float samples [n]; T = 1 + (n - 400) // 160.

    Raises:
        TensorError: ``samples`` is not a 1-D float array.

    Example:
        >>> log_mel(torch.zeros(16000)).shape
        torch.Size([98, 80])
    """
    x = torch.as_tensor(samples)
    if x.ndim != 1 or not x.dtype.is_floating_point:
        raise TensorError("samples", "a 1-D float array", f"{x.dtype} {list(x.shape)}")
    frames = frames_of(x.shape[0])
    if frames == 0:
        return torch.zeros(0, N_MELS)
    windows = x.float().unfold(0, WINDOW, HOP)[:frames] * _WINDOW
    power = torch.fft.rfft(windows, n=N_FFT).abs() ** 2
    return torch.log(power @ _MEL + 1e-6)


class LogMelStream:
    """:func:`log_mel` of audio that arrives in pieces: ``accept(samples)`` returns the new frames,
    ``finish()`` ends the audio (a :class:`~speechdecode.decoding.protocol.Stream`).

    The frames are those of :func:`log_mel` of the whole audio (up to float rounding).

    Example:
        >>> x = torch.randn(5000)
        >>> stream = LogMelStream()
        >>> parts = [stream.accept(x[i : i + 777]) for i in range(0, 5000, 777)]
        >>> torch.allclose(torch.cat(parts), log_mel(x), atol=1e-5)
        True
    """

    def __init__(self):
        self.pending = torch.zeros(0)

    def accept(self, samples) -> torch.Tensor:
        x = torch.cat([self.pending, torch.as_tensor(samples, dtype=torch.float32)])
        frames = frames_of(x.shape[0])
        self.pending = x[frames * HOP :]
        return log_mel(x[: (frames - 1) * HOP + WINDOW]) if frames else torch.zeros(0, N_MELS)

    def finish(self) -> torch.Tensor:
        """The frames the audio still owes when it ends: none (:func:`log_mel` has no frame for
        samples short of a whole window, and :meth:`accept` returned every other), as
        ``[0, 80]``; the next accept starts new audio."""
        self.pending = torch.zeros(0)
        return torch.zeros(0, N_MELS)
