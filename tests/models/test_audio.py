"""WAV reading (formats and bad files), resampling and log-mel features of models/audio.py."""

import math
import struct

import numpy as np
import pytest
import torch

from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError
from speechdecode.models.audio import N_MELS, LogMelStream, frames_of, log_mel, read_wav, resample


def wav_bytes(payload: bytes, tag: int, channels: int, rate: int, bits: int, extensible: bool = False) -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits)
    if extensible:  # cbSize, valid bits, channel mask, then the sub-format GUID (tag first)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + bytes(14)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"  # a chunk readers must skip
    body += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("tag", "bits", "dtype", "scale"),
    [(1, 16, "<i2", 2**15), (1, 32, "<i4", 2**31), (3, 32, "<f4", 1.0), (3, 64, "<f8", 1.0)],
)
@pytest.mark.parametrize("extensible", [False, True])
def test_formats_read_as_scaled_samples(tmp_path, tag, bits, dtype, scale, extensible):
    rng = np.random.default_rng(bits + tag)
    values = (rng.uniform(-0.9, 0.9, 37) * scale).astype(dtype)
    audio = read_wav(write(tmp_path, "a.wav", wav_bytes(values.tobytes(), tag, 1, 11025, bits, extensible)))
    assert audio.sample_rate == 11025 and audio.channels == 1 and audio.notes == []
    np.testing.assert_allclose(audio.samples, values.astype(np.float64) / scale, rtol=1e-6, atol=1e-7)


def test_8_and_24_bit_pcm(tmp_path):
    eight = np.array([0, 64, 128, 192, 255], dtype=np.uint8)
    audio = read_wav(write(tmp_path, "u8.wav", wav_bytes(eight.tobytes(), 1, 1, 8000, 8)))
    np.testing.assert_allclose(audio.samples, [-1.0, -0.5, 0.0, 0.5, 127 / 128])
    ints = [-(2**23), -1, 0, 1, 2**22, 2**23 - 1]
    payload = b"".join(struct.pack("<i", v)[:3] for v in ints)
    audio = read_wav(write(tmp_path, "s24.wav", wav_bytes(payload, 1, 1, 8000, 24)))
    np.testing.assert_allclose(audio.samples, np.array(ints) / 2**23, rtol=1e-7)


def test_channels_are_mixed_down_with_a_note(tmp_path):
    frames = np.array([[1000, 3000, -4000], [-2000, 0, 2000]], dtype="<i2")  # 2 frames x 3 channels
    audio = read_wav(write(tmp_path, "c3.wav", wav_bytes(frames.tobytes(), 1, 3, 16000, 16)))
    np.testing.assert_allclose(audio.samples, [0.0, 0.0])
    assert audio.channels == 3 and audio.notes == ["3 channels mixed down to one"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, this is text and not audio\n", "not a WAV file"),
        (b"", "not a WAV file"),
        (wav_bytes(b"", 1, 1, 16000, 16), "empty WAV file"),
        (wav_bytes(b"\x01", 1, 1, 16000, 16), "empty WAV file"),
        (wav_bytes(b"\x00" * 20, 7, 1, 8000, 8), "unsupported sample format: mu-law with 8 bits"),
        (wav_bytes(b"\x00" * 20, 6, 1, 8000, 8), "unsupported sample format: A-law"),
        (wav_bytes(b"\x00" * 20, 1, 1, 8000, 12), "unsupported sample format: format tag 0x0001 with 12 bits"),
        (wav_bytes(b"\x00" * 24, 3, 1, 8000, 16), "unsupported sample format"),
        (wav_bytes(b"\x00" * 8, 1, 1, 8000, 16)[:36], "without a 'data' chunk"),
        (b"RIFF\x04\x00\x00\x00WAVE", "without a complete 'fmt ' chunk"),
        (wav_bytes(np.array([np.nan], "<f4").tobytes(), 3, 1, 8000, 32), "NaN or infinite"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, data, message):
    path = write(tmp_path, "bad.wav", data)
    with pytest.raises(InputFileError, match=message) as info:
        read_wav(path)
    assert info.value.path == str(path) and str(info.value).startswith(str(path))


@pytest.mark.parametrize(("src", "dst"), [(22050, 16000), (7919, 16000), (44100, 16000), (16000, 8000), (8000, 11025)])
def test_resample_keeps_a_tone(src, dst):
    n = src // 2 + 13
    freq = 0.31 * min(src, dst)  # below both Nyquist frequencies
    y = resample(torch.sin(2 * math.pi * freq * torch.arange(n, dtype=torch.float64) / src).float(), src, dst)
    assert y.shape[0] == math.ceil(n * dst / src)
    expected = torch.sin(2 * math.pi * freq * torch.arange(y.shape[0], dtype=torch.float64) / dst)
    inner = slice(dst // 50, y.shape[0] - dst // 50)  # away from the zero padding at both ends
    assert float((y[inner] - expected[inner]).abs().max()) < 5e-3


def test_resample_removes_what_the_new_rate_cannot_hold():
    t = torch.arange(44100) / 44100
    y = resample(torch.sin(2 * math.pi * 11000 * t), 44100, 16000)  # above 8 kHz: would alias to 5 kHz
    assert float(y[800:-800].pow(2).mean()) < 1e-4


def test_resample_checks_arguments():
    assert torch.equal(resample(torch.ones(5), 16000, 16000), torch.ones(5))
    with pytest.raises(InvalidArgumentError, match="from_rate"):
        resample(torch.ones(5), 0, 16000)
    with pytest.raises(TensorError, match="samples"):
        resample(torch.ones(2, 5), 8000, 16000)


def test_log_mel_frames_and_tone_band():
    assert [frames_of(n) for n in (0, 399, 400, 559, 560)] == [0, 0, 1, 1, 2]
    t = torch.arange(16000) / 16000
    low, high = log_mel(torch.sin(2 * math.pi * 300 * t)), log_mel(torch.sin(2 * math.pi * 3000 * t))
    assert low.shape == (98, N_MELS)
    assert int(low.mean(0).argmax()) < int(high.mean(0).argmax())
    # twice the amplitude: four times the energy in the bands the tone dominates
    louder = log_mel(2 * torch.sin(2 * math.pi * 3000 * t))
    band = int(high.mean(0).argmax())
    assert torch.allclose(louder[:, band] - high[:, band], torch.full((98,), math.log(4.0)), atol=1e-3)


@pytest.mark.parametrize("chunk", [1, 159, 160, 161, 401, 997])
def test_log_mel_stream_equals_offline(chunk):
    x = torch.randn(4001, generator=torch.Generator().manual_seed(chunk))
    stream = LogMelStream()
    parts = [stream.accept(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    # the same frames; batched FFTs and products may round differently by a few ulps
    torch.testing.assert_close(torch.cat(parts), log_mel(x), rtol=1e-5, atol=1e-5)
