"""CTC prefix beam search: the plain-Python reference (the oracle; its docstring defines the search).

The native C++ search is :class:`speechdecode.decoding.CtcPrefixBeamSearch`'s default backend.
"""

from speechdecode.kernels.ctc_prefix_beam.reference import PrefixBeamSearch, ctc_prefix_beam_search, token_pieces

__all__ = ["PrefixBeamSearch", "ctc_prefix_beam_search", "token_pieces"]
