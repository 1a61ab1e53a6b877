"""Cases of test_threads.py that run in a child process (a crash there fails one test, not pytest).

Each function raises AssertionError on a wrong result; a crash is the process's signal.
"""

from __future__ import annotations

import numpy as np
from test_threads import THREADS, TOKENS, WORDS, log_probs, run_threads, word_loop_graph

from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder

ROUNDS = 6


def _shared_stream(decoder, chunk: np.ndarray) -> None:
    """Every thread accepts ``chunk`` ROUNDS times on one stream, asking for partials between;
    the result equals one stream that accepted it THREADS * ROUNDS times."""
    want_stream = decoder.stream()
    for _ in range(THREADS * ROUNDS):
        want_stream.accept(chunk)
    want = want_stream.finish()
    stream = decoder.stream()

    def work(i: int) -> None:
        for _ in range(ROUNDS):
            stream.accept(chunk)
            stream.partial()

    run_threads(work)
    frames = getattr(stream, "frames_accepted", None) or stream.frames
    assert frames == THREADS * ROUNDS * len(chunk), frames
    got = stream.finish()
    assert got == want, (got, want)


def shared_prefix_stream() -> None:
    search = CtcPrefixBeamSearch(TOKENS, blank=0, beam=8, nbest=2, num_threads=1)
    _shared_stream(search, log_probs(600, 1, 5, len(TOKENS))[0])


def shared_wfst_stream() -> None:
    decoder = WfstDecoder(word_loop_graph(), words=WORDS, beam=12.0, nbest=2, num_threads=1)
    _shared_stream(decoder, log_probs(601, 1, 5, 5)[0])
