"""Batched token sampling (temperature, top-k, top-p, min-p, guidance). The API, checks and backend
choice are in ``api.py``; ``reference.py`` is the oracle, ``native.py`` C++ / batched torch,
``triton.py`` the GPU kernel.
"""

from speechdecode.kernels.sampling.api import (
    guided_sample,
    keep_mask,
    sample,
)

__all__ = [
    "guided_sample",
    "keep_mask",
    "sample",
]
