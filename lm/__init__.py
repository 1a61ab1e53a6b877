"""N-gram language models for speech decoding.

Data flow: text files --:func:`count_files` (C++; :func:`count_sentences` is the reference)--> :class:`NgramCounts`
--:func:`estimate` (``mkn`` as KenLM's lmplz, ``kn``, ``absolute``, ``katz``, ``witten-bell``,
``jelinek-mercer``, ``add-k``, ``mle``)--> :class:`ArpaModel` --:func:`write_arpa`--> ARPA file;
:func:`prune_entropy` prunes a model (Stolcke); :class:`NgramModel` loads an ARPA file or
memory-maps a KenLM binary for fast queries (KenLM's semantics) and :func:`generate` samples text
from it; :func:`write_binary` writes KenLM binaries (as ``build_binary``) and
:func:`binary_to_arpa` turns a trie back into ARPA.
Corpora for tests and demos live in :mod:`speechdecode.testing`.
"""

from speechdecode._deprecation import moved_names
from speechdecode.lm.arpa import ArpaModel, read_arpa, write_arpa
from speechdecode.lm.counting import count_files, parse_size
from speechdecode.lm.counts import NgramCounts, count_sentences
from speechdecode.lm.estimate import METHODS, estimate, estimate_arpa
from speechdecode.lm.generate import generate
from speechdecode.lm.kenlm_binary import binary_to_arpa, write_binary
from speechdecode.lm.model import NgramModel, WordScore
from speechdecode.lm.prune import prune_entropy
from speechdecode.lm.vocab import Vocabulary

__all__ = [
    "METHODS",
    "ArpaModel",
    "NgramCounts",
    "NgramModel",
    "Vocabulary",
    "WordScore",
    "binary_to_arpa",
    "count_files",
    "count_sentences",
    "estimate",
    "estimate_arpa",
    "generate",
    "parse_size",
    "prune_entropy",
    "read_arpa",
    "write_arpa",
    "write_binary",
]

# Moved to speechdecode.testing (test and demo aids); the old names work for one more release.
_MOVED = ("MAX_WORDS", "MIN_WORDS", "SentenceGenerator", "write_corpus")
__getattr__ = moved_names(__name__, dict.fromkeys(_MOVED, "speechdecode.testing"))
