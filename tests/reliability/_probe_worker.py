"""The process the fuzz tests load files in, so that a crash or a hang fails one probe, not pytest.

Run as a script (``python _probe_worker.py``). It reads requests from stdin and writes results to
stdout, each a 4-byte little-endian length and a pickle: the request ``(probe, args)``, the result
``("ok", summary)`` or ``("error", type name, [names of the type's classes], message)``. A summary
is plain data (words, counts, table bytes, scores), so the parent can compare two loaders. A fatal
signal prints the Python stack (faulthandler) to stderr, which the parent reports.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import struct
import sys

import numpy as np


def _arrays(arrays) -> list:
    return [(a.dtype.str, a.shape, a.tobytes()) for a in arrays]


def read_arpa(path: str, backend: str):
    from speechdecode.lm.arpa import read_arpa

    model = read_arpa(path, backend=backend)
    return (model.words, _arrays(model.ngrams), _arrays(model.log10_probs), _arrays(model.backoffs))


def ngram_load(path: str, sentences: list[str]):
    """The model's shape and the scores of ``sentences`` (which exercise every order)."""
    from speechdecode.lm import NgramModel

    model = NgramModel.load(path)
    scores = [model.score(s) for s in sentences]
    # Every word (by id: a KenLM binary built with -v has no strings) scored after <s>.
    state = model.begin_state()
    words = [model.score_word(state, i)[0] for i in range(model.vocab_size)]
    return (model.order, model.counts, model.vocab_size, scores, words)


def read_lexicon(path: str, probabilities):
    from speechdecode.graphs.lexicon import read_lexicon

    lexicon = read_lexicon(path, probabilities)
    return [(w, p.tokens, p.prob) for w, p in lexicon.entries()]


def read_symbols(path: str):
    from speechdecode.graphs.symbols import SymbolTable

    return SymbolTable.read(path).symbols


def acoustic_units(path: str):
    from speechdecode.graphs.symbols import acoustic_units

    return acoustic_units(path)


def load_graph(path: str):
    from speechdecode.graphs.export import load_graph

    graph = load_graph(path)
    return _graph_summary(graph)


def _graph_summary(graph) -> tuple:
    names = ("final_weights", "arc_offsets", "ilabels", "olabels", "weights", "nextstates")
    return (graph.start, graph.num_tokens, graph.blank, graph.topology, _arrays(getattr(graph, n) for n in names))


def wfst_decode(path: str, seed: int):
    """WfstDecoder on the file, both backends on the same random posteriors: (native, reference)."""
    from speechdecode.decoding import WfstDecoder

    native = WfstDecoder(path, backend="native", beam=float("inf"))
    reference = WfstDecoder(path, backend="reference")
    if native.num_tokens > 64:  # a valid graph, but random posteriors that wide are not worth making
        return ("wide", native.num_tokens)
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((2, 4, native.num_tokens)) * 2
    x = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(np.float32)
    got = [[(h.words, h.tokens, round(h.score, 3)) for h in n] for n in native(x)]
    want = [[(h.words, h.tokens, round(h.score, 3)) for h in n] for n in reference(x)]
    return got, want


def load_posteriors(path: str):
    from speechdecode.decoding.posteriors import load_posteriors

    posteriors = load_posteriors(path)
    return (_arrays([posteriors.log_probs, posteriors.lengths]), posteriors.utt_ids)


def kenlm_binary_summary(path: str):
    """What a KenLM binary holds, by the loader the tests trust (NgramModel.load)."""
    return ngram_load(path, [])


PROBES = {f.__name__: f for f in (read_arpa, ngram_load, read_lexicon, read_symbols, acoustic_units, load_graph,
                                  wfst_decode, load_posteriors, kenlm_binary_summary)}  # fmt: skip


def _read_exact(stream, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main() -> None:
    faulthandler.enable()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a probe prints may corrupt the replies
    while True:
        header = _read_exact(requests, 4)
        if header is None:
            return
        name, args = pickle.loads(_read_exact(requests, struct.unpack("<I", header)[0]))
        try:
            result = ("ok", PROBES[name](*args))
        except Exception as exc:  # the type and the message are what the tests check
            result = ("error", type(exc).__name__, [c.__name__ for c in type(exc).__mro__], str(exc))
        data = pickle.dumps(result)
        replies.write(struct.pack("<I", len(data)) + data)
        replies.flush()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
