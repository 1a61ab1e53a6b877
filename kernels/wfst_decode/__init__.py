"""WFST beam search over a decoding graph: ``reference`` (plain Python, exhaustive Viterbi).

The fast path is C++ (csrc/decoding/wfst_decoder), reached through
:class:`speechdecode.decoding.WfstDecoder`, the public entry point.
"""
