"""Decoding-graph construction on OpenFst (pynini's ``pywrapfst``).

The CTC topology T, lexicon L, grammar G and their TLG/LG compositions land with their issue.
What is here now are their inputs: :class:`SymbolTable` (token and word ids, read and written in
the OpenFst/k2 ``symbol id`` format) and :class:`Lexicon` (word pronunciations, Kaldi
``lexicon.txt``/``lexiconp.txt``), with builders for character-level models.
"""

from speechdecode.graphs.lexicon import Lexicon, Pronunciation, char_lexicon, read_lexicon, write_lexicon
from speechdecode.graphs.symbols import SymbolTable, char_tokens

__all__ = [
    "Lexicon",
    "Pronunciation",
    "SymbolTable",
    "char_lexicon",
    "char_tokens",
    "read_lexicon",
    "write_lexicon",
]
