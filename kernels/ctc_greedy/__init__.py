"""CTC greedy decoding: :mod:`.api` (checks, backend dispatch), :mod:`.reference` (plain torch,
the oracle), :mod:`.native` (C++) and :mod:`.triton` (CUDA / interpreter).

The public entry point is :func:`speechdecode.decoding.ctc_greedy`.
"""

from speechdecode.kernels.ctc_greedy.api import ctc_greedy_packed

__all__ = ["ctc_greedy_packed"]
