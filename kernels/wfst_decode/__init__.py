"""WFST beam search over a decoding graph: :mod:`.api` (backend dispatch) and :mod:`.reference`
(plain Python, exhaustive Viterbi, the oracle); the fast path is C++ (csrc/decoding/wfst_decoder).

The public entry point is :class:`speechdecode.decoding.WfstDecoder`.
"""

from speechdecode.kernels.wfst_decode.api import decode, open_stream, options

__all__ = ["decode", "open_stream", "options"]
