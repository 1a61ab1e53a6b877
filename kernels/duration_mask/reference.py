"""Plain-Python RALL-E duration-guided masks, loop by loop: the oracle for the vectorized ops."""

from __future__ import annotations

import torch


def frame_phonemes(durations: torch.Tensor, num_frames: int) -> torch.Tensor:
    """durations [B, L] int64 -> [B, T] int64: the phoneme each speech frame belongs to.

    Frame t belongs to min{l : cumsum(d)_l > t}. A frame at or past the row's total D is treated
    as frame D - 1 (the last phoneme with frames); a row with D = 0 maps every frame to phoneme 0.
    """
    batch, phonemes = durations.shape
    out = torch.zeros(batch, num_frames, dtype=torch.int64)
    for b in range(batch):
        row = [int(v) for v in durations[b]]
        total = sum(row)
        for t in range(num_frames):
            target = min(t, total - 1)
            running = 0
            for ph in range(phonemes):
                running += row[ph]
                if running > target:
                    out[b, t] = ph
                    break
    return out


def dense_mask(durations: torch.Tensor, k: int, num_frames: int) -> torch.Tensor:
    """bool [B, T, L]: frame t may attend to phoneme keys l(t) - k .. l(t) + k."""
    batch, phonemes = durations.shape
    owner = frame_phonemes(durations, num_frames)
    mask = torch.zeros(batch, num_frames, phonemes, dtype=torch.bool)
    for b in range(batch):
        for t in range(num_frames):
            for ph in range(phonemes):
                mask[b, t, ph] = abs(ph - int(owner[b, t])) <= k
    return mask


def sequence_mask(durations: torch.Tensor, k: int, num_frames: int) -> torch.Tensor:
    """bool [B, L + T, L + T] over the layout [phonemes | speech].

    Phoneme queries attend causally to phoneme keys only; speech queries attend to their phoneme
    window and causally to speech keys (their own frame included).
    """
    batch, phonemes = durations.shape
    owner = frame_phonemes(durations, num_frames)
    size = phonemes + num_frames
    mask = torch.zeros(batch, size, size, dtype=torch.bool)
    for b in range(batch):
        for q in range(size):
            for kv in range(size):
                if q < phonemes:
                    allowed = kv <= q
                elif kv < phonemes:
                    allowed = abs(kv - int(owner[b, q - phonemes])) <= k
                else:
                    allowed = kv <= q
                mask[b, q, kv] = allowed
    return mask
