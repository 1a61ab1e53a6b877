"""Duration-guided attention masks (RALL-E). The API and checks are in ``api.py``; ``reference.py``
is the per-row oracle.
"""

from speechdecode.kernels.duration_mask.api import (
    additive_bias,
    block_mask,
    dense_mask,
    flex_mask_mod,
    frame_phonemes,
    sequence_mask,
)

__all__ = [
    "additive_bias",
    "block_mask",
    "dense_mask",
    "flex_mask_mod",
    "frame_phonemes",
    "sequence_mask",
]
