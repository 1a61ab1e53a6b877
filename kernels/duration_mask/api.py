"""RALL-E duration-guided attention masks (docs/DEFINITIONS.md section 6).

Given per-phoneme durations d [B, L] (speech frames per phoneme), speech frame t belongs to
phoneme l(t) = min{l : cumsum(d)_l > t} and may attend to phoneme keys l(t) - k .. l(t) + k
only (clipped to [0, L)). Zero-duration phonemes own no frame but can sit inside a window.

Frames past a row's total D_b = sum(d_b) (rows shorter than ``num_frames``) are treated as
frame D_b - 1: they keep attending to the last phoneme window. A row with D_b = 0 maps every
frame to phoneme 0.

For a decoder-only model the sequence is laid out as [phonemes (L) | speech (T)]:
phoneme queries attend causally to phoneme keys only; speech queries attend to their phoneme
window and causally to speech keys (their own frame included). :func:`sequence_mask` builds
this densely, :func:`flex_mask_mod` / :func:`block_mask` express it for
``torch.nn.attention.flex_attention`` (both run on CPU with torch 2.13; eager, uncompiled
``flex_attention`` materializes the scores and warns, ``torch.compile`` it for speed).

``reference.py`` holds the same masks written with loops; it is the oracle of the tests.

Example:
    >>> d = torch.tensor([[2, 0, 3]])
    >>> dense_mask(d, k=0).int()[0]
    tensor([[1, 0, 0],
            [1, 0, 0],
            [0, 0, 1],
            [0, 0, 1],
            [0, 0, 1]], dtype=torch.int32)
"""

from __future__ import annotations

import torch

from speechdecode import _args, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError


def _durations(durations) -> torch.Tensor:
    return _tensors.counts(durations, "durations", (2,), "a 2-D array [B, L]", "frame counts").contiguous()


def _frames(d: torch.Tensor, num_frames) -> tuple[torch.Tensor, int]:
    totals = d.sum(dim=1)
    longest = int(totals.max()) if totals.numel() else 0
    if num_frames is None:
        _args.fits_in_memory(d.shape[0] * longest * 8 * 4, "durations", "frame map [B, sum(durations)]")
        return totals, longest
    num_frames = _args.integer(num_frames, "num_frames", 0)
    over = totals > num_frames
    if bool(over.any()):
        b = int(over.nonzero()[0, 0])
        raise TensorError(
            "durations", f"rows summing to at most num_frames={num_frames}", f"sum {int(totals[b])} at row [{b}]"
        )
    _args.fits_in_memory(d.shape[0] * num_frames * 8 * 4, "num_frames", "frame map [B, num_frames]")
    return totals, num_frames


def frame_phonemes(durations, num_frames: int | None = None) -> torch.Tensor:
    """The phoneme l(t) each speech frame belongs to.

    Args:
        durations: [B, L] integer frames per phoneme (>= 0), numpy or torch.
        num_frames: T, the number of speech frames; default the largest row total.

    Returns:
        int64 tensor [B, T] on the durations' device (see the module docstring for frames past D_b).

    Raises:
        TensorError: durations not 2-D or not integer, a negative duration (its [b, l] index),
            a row summing past ``num_frames`` (its row).
        InvalidArgumentError: ``num_frames`` not an integer >= 0.
    """
    return _owner(_durations(durations), num_frames)


def _owner(d: torch.Tensor, num_frames) -> torch.Tensor:
    totals, frames = _frames(d, num_frames)
    t = torch.arange(frames, device=d.device)
    target = torch.minimum(t[None, :], (totals - 1).clamp(min=0)[:, None])
    owner = torch.searchsorted(d.cumsum(dim=1), target.contiguous(), right=True)
    return torch.where(totals[:, None] == 0, torch.zeros_like(owner), owner)


def _band(durations, k, num_frames) -> tuple[torch.Tensor, torch.Tensor]:
    """The [B, T] frame-to-phoneme map and the [L, L] table band[i, j] = |i - j| <= k.

    Row t of the mask depends only on l(t), so the masks index the band table with the map
    instead of comparing B*T*L differences (L times less arithmetic, a bool gather).
    """
    k = _args.integer(k, "k", 0)
    d = _durations(durations)
    owner = _owner(d, num_frames)
    keys = torch.arange(max(d.shape[1], 1), device=owner.device)
    band = (keys[:, None] - keys[None, :]).abs() <= k
    return owner, band[:, : d.shape[1]]


def dense_mask(durations, k: int, num_frames: int | None = None) -> torch.Tensor:
    """bool [B, T, L]: True where speech frame t may attend to phoneme key l.

    Args:
        durations: [B, L] integer frames per phoneme (>= 0).
        k: window half-width (>= 0); frame t sees phonemes l(t) - k .. l(t) + k.
        num_frames: T; default the largest row total. Must be >= every row total.

    Raises:
        TensorError / InvalidArgumentError as :func:`frame_phonemes`, and for ``k < 0``.
    """
    owner, band = _band(durations, k, num_frames)
    _args.fits_in_memory(owner.numel() * band.shape[1], "durations", "mask [B, T, L]")
    return band[owner]


def additive_bias(durations, k: int, num_frames: int | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """float [B, T, L] attention bias: 0 where :func:`dense_mask` is True, -inf elsewhere."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidArgumentError("dtype", "a floating-point torch.dtype", repr(dtype))
    owner, band = _band(durations, k, num_frames)
    _args.fits_in_memory(owner.numel() * band.shape[1] * dtype.itemsize, "durations", "bias [B, T, L]")
    bias = torch.zeros(band.shape, dtype=dtype, device=band.device).masked_fill_(~band, float("-inf"))
    return bias[owner]


def sequence_mask(durations, k: int, num_frames: int | None = None) -> torch.Tensor:
    """bool [B, L + T, L + T] over the layout [phonemes | speech] (True = may attend).

    Phoneme queries: causal over phoneme keys, no speech keys. Speech queries: the phoneme
    window of :func:`dense_mask` plus causal speech keys. Usable as ``attn_mask`` of
    ``scaled_dot_product_attention`` after unsqueezing the head dimension.
    """
    window = dense_mask(durations, k, num_frames)
    batch, frames, phonemes = window.shape
    size = phonemes + frames
    _args.fits_in_memory(batch * size * size * 2, "durations", "mask [B, L + T, L + T]")
    causal = torch.ones(size, size, dtype=torch.bool, device=window.device).tril()
    mask = causal.expand(batch, size, size).clone()
    mask[:, :phonemes, phonemes:] = False
    mask[:, phonemes:, :phonemes] = window
    return mask


def flex_mask_mod(durations, k: int, num_frames: int | None = None):
    """A ``mask_mod(b, h, q_idx, kv_idx)`` for ``flex_attention`` over [phonemes | speech].

    Same rule as :func:`sequence_mask`; sequence length L + T (T defaults to the largest row
    total). The closure holds the [B, T] frame-to-phoneme table on the durations' device.

    Example:
        >>> from torch.nn.attention.flex_attention import create_block_mask
        >>> d = torch.tensor([[2, 1], [1, 1]])
        >>> mod = flex_mask_mod(d, k=0)
        >>> bm = create_block_mask(mod, 2, None, 5, 5, device="cpu")
    """
    k = _args.integer(k, "k", 0)
    d = _durations(durations)
    owner = _owner(d, num_frames)
    phonemes = d.shape[1]
    last = max(owner.shape[1] - 1, 0)
    if owner.shape[1] == 0:  # keep the lookup below valid when there are no speech frames
        owner = torch.zeros(owner.shape[0], 1, dtype=owner.dtype, device=owner.device)

    def mask_mod(b, h, q_idx, kv_idx):
        speech_q = q_idx >= phonemes
        frame_owner = owner[b, (q_idx - phonemes).clamp(0, last)]
        window = (kv_idx - frame_owner).abs() <= k
        phoneme_kv = kv_idx < phonemes
        causal = kv_idx <= q_idx
        return torch.where(speech_q, torch.where(phoneme_kv, window, causal), causal & phoneme_kv)

    return mask_mod


def block_mask(durations, k: int, num_frames: int | None = None, **kwargs):
    """A ``BlockMask`` for ``flex_attention`` over [phonemes | speech], one per batch row.

    Built with ``torch.nn.attention.flex_attention.create_block_mask`` (B rows, H broadcast,
    Q_LEN = KV_LEN = L + T) on the durations' device; ``kwargs`` (e.g. ``BLOCK_SIZE``,
    ``_compile``) pass through.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    d = _durations(durations)
    _, frames = _frames(d, num_frames)
    size = d.shape[1] + frames
    mod = flex_mask_mod(d, k, frames)
    return create_block_mask(mod, d.shape[0], None, size, size, device=d.device, **kwargs)
