"""N-gram language models for speech decoding.

Counting, smoothing (Kneser-Ney and friends), ARPA read/write and the query model land here with
their issue. For now this holds what they will be tested and benchmarked on: a seeded synthetic
English corpus (:class:`SentenceGenerator`, :func:`write_corpus`), since no real corpus can be
downloaded where the project is built.
"""

from speechdecode.lm.synthetic import MAX_WORDS, MIN_WORDS, SentenceGenerator, write_corpus

__all__ = ["MAX_WORDS", "MIN_WORDS", "SentenceGenerator", "write_corpus"]
