"""One beam-search step. The API, checks and backend choice are in ``api.py``; ``reference.py`` is
the oracle, ``native.py`` batched torch, ``triton.py`` the GPU kernel.
"""

from speechdecode.kernels.beam_search.api import (
    beam_search_step,
)

__all__ = [
    "beam_search_step",
]
