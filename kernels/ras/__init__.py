"""Repetition-aware sampling (VALL-E 2) with its three presets. The API, checks and backend choice
are in ``api.py``; ``reference.py`` is the per-row oracle, ``native.py`` the C++ kernel and
batched torch, ``triton.py`` the GPU kernel.
"""

from speechdecode.kernels.ras.api import PRESETS, guided_ras, ras

__all__ = ["PRESETS", "guided_ras", "ras"]
