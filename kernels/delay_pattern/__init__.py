"""Delay patterns of multi-codebook codec LMs (MusicGen, Dia). The API, checks and backend choice are
in ``api.py``; ``reference.py`` is the oracle, ``native.py`` batched torch, ``triton.py`` the GPU kernel.
"""

from speechdecode.kernels.delay_pattern.api import (
    IncrementalRevert,
    build,
    default_delays,
    revert,
    revert_logits,
)

__all__ = [
    "IncrementalRevert",
    "build",
    "default_delays",
    "revert",
    "revert_logits",
]
