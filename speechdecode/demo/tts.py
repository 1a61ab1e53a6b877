"""The TTS stage of ``speechdecode demo``: codec-LM generation on the seeded reference model.

:func:`tts_demo` generates a batch of utterances with :class:`~speechdecode.models.DelayPatternLM`
(VoiceCraft layout, K = 4 codebooks, delay pattern 0..3) on a random-weight
:class:`~speechdecode.models.reference_nets.TinyTransformerLM` with tied input/output embeddings
(so that, like real codec LMs, it tends to repeat the codes it just read), with RALL-E duration-guided
attention masks and stopping, twice: plain nucleus sampling and repetition-aware sampling
(VALL-E 2 ``paper`` preset, same top-p). The weights are random, so the codes are not speech;
the table shows the loop's speed and how RAS changes repetition.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from speechdecode._io import atomic_write
from speechdecode.models.codec_lm import DelayPatternLM
from speechdecode.models.reference_nets import TinyTransformerLM

__all__ = ["FRAME_RATE", "repetition_rate", "tts_demo"]

FRAME_RATE = 75.0  # codec frames per second of audio (EnCodec at 24 kHz)
SAMPLE_RATE = 24000
_CARD, _K, _PHONEMES, _TOP_P, _WINDOW = 1024, 4, 64, 0.8, 10


def repetition_rate(codes: torch.Tensor, lengths: torch.Tensor, window: int = _WINDOW) -> float:
    """Share of generated codes that already occur among the ``window`` previous codes of the
    same row and codebook (the repetitions RAS looks for); codes [B, K, T], lengths [B]."""
    repeats = total = 0
    for b in range(codes.shape[0]):
        n = int(lengths[b])
        for k in range(codes.shape[1]):
            row = codes[b, k, :n].tolist()
            repeats += sum(row[t] in row[max(0, t - window) : t] for t in range(n))
            total += n
    return repeats / max(total, 1)


def tts_demo(
    out_dir: str | os.PathLike,
    *,
    batch: int = 8,
    frames: int = 120,
    phonemes: int = 24,
    seed: int = 0,
    num_threads: int | None = 1,
) -> dict:
    """Run the TTS stage; write the generated codes to ``out_dir/tts_codes.npz`` and, with
    transformers installed, the first RAS utterance as ``out_dir/tts.wav`` (streamed frame by frame
    through :class:`~speechdecode.models.CodecStream` and a random-weight EnCodec: the path from
    codes to audio, not speech).

    Args:
        out_dir: where the codes go (created if missing).
        batch: utterances generated together.
        frames: the longest utterance in codec frames; durations give each row between
            ``frames * 3 / 4`` and ``frames`` frames.
        phonemes: phonemes per utterance.
        seed: seeds the model, the inputs and the sampling.
        num_threads: torch intra-op threads while generating (restored afterwards); the loop's
            ops are small, and on a busy machine a multi-thread pool stalls on them. None keeps
            torch's setting.

    Returns:
        ``{"rows": [...], "files": {"tts_codes.npz": path, "tts.wav": path}}``; one row per sampler with keys
        stage, what, backend, quality, seconds, speed, speed_unit (as the demo's other
        stages) plus tokens (codes generated: frames x K), tokens_per_s, rtf (generation
        seconds / audio seconds at :data:`FRAME_RATE` Hz) and repetition_rate
        (:func:`repetition_rate`).

    Example:
        >>> report = tts_demo("demo-output", batch=2, frames=16)  # doctest: +SKIP
        >>> [row["what"] for row in report["rows"]]  # doctest: +SKIP
        ['nucleus top_p=0.8', 'RAS paper top_p=0.8']
    """
    before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _run(out_dir, batch, frames, phonemes, seed)
    finally:
        torch.set_num_threads(before)


def _run(out_dir, batch: int, frames: int, phonemes: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    vocab = DelayPatternLM.input_vocab(_CARD, _PHONEMES)
    net = TinyTransformerLM(
        vocab, _K, _CARD + 2, _K, dim=64, max_context=phonemes + frames + 2 * _K, tie_weights=True, seed=seed
    )
    lm = DelayPatternLM(net, card=_CARD, num_codebooks=_K)
    text = torch.randint(0, _PHONEMES, (batch, phonemes), generator=gen)
    totals = torch.randint(frames * 3 // 4, frames + 1, (batch,), generator=gen)
    durations = torch.zeros(batch, phonemes, dtype=torch.int64)
    for b in range(batch):  # split each total over the phonemes at random cut points
        cuts = torch.sort(torch.randint(0, int(totals[b]) + 1, (phonemes - 1,), generator=gen)).values
        durations[b] = torch.diff(torch.cat([torch.tensor([0]), cuts, totals[b : b + 1]]))
    samplers = {
        f"nucleus top_p={_TOP_P}": {"top_p": _TOP_P},
        f"RAS paper top_p={_TOP_P}": {"ras": {"preset": "paper", "window": _WINDOW, "threshold": 0.1, "top_p": _TOP_P}},
    }
    rows, arrays = [], {}
    for name, options in samplers.items():
        lm.generate(text[:1], max_frames=4, **options)  # warm-up
        start = time.perf_counter()
        out = lm.generate(
            text, max_frames=frames, durations=durations, generator=torch.Generator().manual_seed(seed), **options
        )
        seconds = time.perf_counter() - start
        made = int(out.lengths.sum())
        tokens = made * _K
        rate = repetition_rate(out.codes, out.lengths)
        rows.append(
            {
                "stage": "tts",
                "what": name,
                "backend": "torch",
                "quality": f"repetition {100 * rate:.1f}%",
                "seconds": seconds,
                "speed": tokens / seconds,
                "speed_unit": "tokens/s",
                "tokens": tokens,
                "tokens_per_s": tokens / seconds,
                "rtf": seconds / (made / FRAME_RATE),
                "repetition_rate": rate,
            }
        )
        arrays["ras" if "ras" in options else "nucleus"] = out.codes.numpy()
        arrays[("ras" if "ras" in options else "nucleus") + "_lengths"] = out.lengths.numpy()
    path = os.path.join(os.path.abspath(out_dir), "tts_codes.npz")
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    files = {"tts_codes.npz": path}
    codec = _codec(seed)
    if codec is not None:
        files["tts.wav"] = os.path.join(os.path.abspath(out_dir), "tts.wav")
        frames = int(arrays["ras_lengths"][0])
        write_wav(files["tts.wav"], _stream_audio(codec, torch.from_numpy(arrays["ras"][:1, :, :frames])), SAMPLE_RATE)
    return {"rows": rows, "files": files}


def _codec(seed: int):
    """A random-weight transformers EnCodec at 24 kHz / 75 Hz with the demo LM's codebooks, or None
    without transformers (the ``hf`` extra). No trained codec can be downloaded here: its audio
    shows the path from codes to samples, it is not speech."""
    try:
        from transformers import EncodecConfig, EncodecModel
    except ImportError:
        return None
    torch.manual_seed(seed)
    config = EncodecConfig(
        codebook_size=_CARD, hidden_size=32, num_filters=8, upsampling_ratios=[8, 5, 4, 2], sampling_rate=SAMPLE_RATE,
        target_bandwidths=[3.0], num_lstm_layers=1,
    )  # fmt: skip
    return EncodecModel(config).eval()


def _stream_audio(codec, codes: torch.Tensor) -> np.ndarray:
    """The codes [1, K, T] decoded frame by frame as a generation loop hands them out."""
    from speechdecode.models.codec_stream import CodecStream

    stream = CodecStream(codec)
    pieces = [stream.accept(codes[..., t : t + 1]) for t in range(codes.shape[-1])]
    pieces.append(stream.finish())
    return torch.cat(pieces, dim=-1)[0, 0].numpy()


def write_wav(path: str, samples: np.ndarray, rate: int) -> None:
    """16-bit mono PCM, peak-normalized, written under the output rule."""
    import wave

    peak = float(np.abs(samples).max()) if samples.size else 0.0
    pcm = np.round(samples / peak * 32767 if peak > 0 else samples).astype("<i2")
    with atomic_write(path, "wb") as handle, wave.open(handle, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
