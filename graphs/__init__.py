"""Decoding-graph construction on OpenFst (pynini's ``pywrapfst``).

Inputs: :class:`SymbolTable` (token and word ids, read and written in the OpenFst/k2
``symbol id`` format) and :class:`Lexicon` (word pronunciations, Kaldi ``lexicon.txt``/
``lexiconp.txt``), with builders for character and word-piece models. The FST builders -- the CTC
topology T (:func:`ctc_topology`), the lexicon L (:func:`lexicon_fst`), the grammar G
(:func:`grammar_fst`) -- and :func:`compile_graph` (TLG/LG, docs/DEFINITIONS.md section 2) need pynini's
``pywrapfst`` and are imported on first use; :func:`load_graph` reads the flat-array export.

>>> from speechdecode.graphs import compile_graph  # doctest: +SKIP
>>> compile_graph("tokens.txt", "lexicon.txt", "lm.arpa").write("graph/")  # doctest: +SKIP
"""

from speechdecode.graphs.lexicon import Lexicon, Pronunciation, char_lexicon, piece_lexicon, read_lexicon, write_lexicon
from speechdecode.graphs.symbols import SymbolTable, acoustic_units, char_tokens, token_table, word_table

# Names whose modules need pywrapfst, imported on first access.
_OPENFST_NAMES = {
    "CompiledGraph": "compile",
    "GraphCompileError": "compile",
    "compile_graph": "compile",
    "compose_lg": "compile",
    "compose_tlg": "compile",
    "ctc_topology": "topology",
    "lexicon_fst": "lexicon_fst",
    "grammar_fst": "grammar",
    "DecodingGraph": "export",
    "export_npz": "export",
    "load_graph": "export",
}


def __getattr__(name: str):
    if name in _OPENFST_NAMES:
        import importlib

        return getattr(importlib.import_module(f"speechdecode.graphs.{_OPENFST_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_OPENFST_NAMES,
    "Lexicon",
    "Pronunciation",
    "SymbolTable",
    "char_lexicon",
    "acoustic_units",
    "char_tokens",
    "piece_lexicon",
    "token_table",
    "word_table",
    "read_lexicon",
    "write_lexicon",
]
