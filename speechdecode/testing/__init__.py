"""Aids for tests, demos, benchmarks and recipes: data that stands in for what cannot be downloaded.

Nothing in the engine (``decoding``, ``lm``, ``graphs``, ``models``, ``kernels``) imports this
package; the CLI's demo, the benchmarks, the acoustic-model recipe and the tests do.

* :mod:`~speechdecode.testing.sentences`: :class:`SentenceGenerator`, a seeded English sentence
  generator (300 words), and :func:`write_corpus`.
* :mod:`~speechdecode.testing.corpora`: real text from Debian packages (the King James Bible,
  ``fortunes``), normalized for word-level LMs.
* :mod:`~speechdecode.testing.ctc_simulator`: :class:`CtcPosteriorSimulator`, seeded peaky CTC
  posteriors from transcripts with systematic confusions.
* :mod:`~speechdecode.testing.speech`: speech synthesized with espeak-ng, flite and festival,
  and the KJV train / test split of the acoustic model.
"""

from speechdecode.testing.corpora import fortune_sentences, kjv_sentences, normalize
from speechdecode.testing.ctc_simulator import CtcPosteriorSimulator
from speechdecode.testing.sentences import MAX_WORDS, MIN_WORDS, SentenceGenerator, write_corpus

__all__ = [
    "MAX_WORDS",
    "MIN_WORDS",
    "CtcPosteriorSimulator",
    "SentenceGenerator",
    "fortune_sentences",
    "kjv_sentences",
    "normalize",
    "write_corpus",
]
