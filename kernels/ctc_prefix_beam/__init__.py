"""CTC prefix beam search: :mod:`.api` (backend dispatch), :mod:`.reference` (plain Python, the
oracle; its docstring defines the search) and :mod:`.triton` (the batched GPU search); the native
search is C++ (csrc/decoding/ctc_prefix_beam_search.h).

The public entry point is :class:`speechdecode.decoding.CtcPrefixBeamSearch`.
"""

from speechdecode.kernels.ctc_prefix_beam.api import decode, decode_triton, native_search, open_stream

__all__ = ["decode", "decode_triton", "native_search", "open_stream"]


def __getattr__(name: str):
    # Deprecated (one release): the oracle's names were re-exported here; token_pieces moved.
    if name in ("PrefixBeamSearch", "ctc_prefix_beam_search", "token_pieces"):
        from speechdecode._deprecation import renamed

        if name == "token_pieces":
            from speechdecode.decoding import text as module

            renamed(f"{__name__}.token_pieces", "speechdecode.decoding.text.token_pieces")
        else:
            from speechdecode.kernels.ctc_prefix_beam import reference as module

            renamed(f"{__name__}.{name}", f"{__name__}.reference.{name}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
