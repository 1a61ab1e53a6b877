"""CTC prefix beam search: :mod:`.api` (backend dispatch), :mod:`.reference` (plain Python, the
oracle; its docstring defines the search) and :mod:`.triton` (the batched GPU search); the native
search is C++ (csrc/decoding/ctc_prefix_beam_search.h).

The public entry point is :class:`speechdecode.decoding.CtcPrefixBeamSearch`.
"""

from speechdecode.kernels.ctc_prefix_beam.api import decode, decode_triton, native_search, open_stream, options

__all__ = ["decode", "decode_triton", "native_search", "open_stream", "options"]
