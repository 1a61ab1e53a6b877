"""Plain-Python Viterbi decoding over a flat-array graph: the oracle for the C++ WFST search.

No pruning at all: every state reachable after each frame is kept, so the best path is the
optimum over the whole graph. Epsilon arcs are relaxed until nothing changes (Bellman-Ford),
which terminates on graphs without negative epsilon cycles. Meant for small graphs and few
frames; the conventions (scores, token collapse, word times) are those documented in
:class:`speechdecode.decoding.WfstDecoder`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from speechdecode.graphs.export import DecodingGraph


class ReferenceResult(NamedTuple):
    """One path: ``cost`` = -(acoustic_scale * am_score + lm_score); ``words`` are output label ids."""

    cost: float
    words: tuple[int, ...]
    tokens: tuple[int, ...]
    token_frames: tuple[int, ...]
    word_frames: tuple[tuple[int, int], ...]
    am_score: float
    lm_score: float
    reached_final: bool


def _arcs(graph: DecodingGraph, state: int):
    for a in range(int(graph.arc_offsets[state]), int(graph.arc_offsets[state + 1])):
        yield a, int(graph.ilabels[a]), float(graph.weights[a]), int(graph.nextstates[a])


def _searched_frames(graph: DecodingGraph, log_probs: np.ndarray, blank_skip_threshold: float) -> list[int]:
    return [t for t in range(log_probs.shape[0]) if not log_probs[t, graph.blank] > blank_skip_threshold]


def _closure(graph: DecodingGraph, layer: dict, key_of) -> None:
    """Relax epsilon arcs in ``layer`` ({key: (cost, back)}) until no cost improves."""
    changed = True
    while changed:
        changed = False
        for key, (cost, _) in list(layer.items()):
            for a, ilabel, weight, nextstate in _arcs(graph, key_of(key)):
                if ilabel != 0:
                    continue
                new_key = key_of(key, nextstate, a)
                if new_key not in layer or cost + weight < layer[new_key][0]:
                    layer[new_key] = (cost + weight, (key, a, None))
                    changed = True


def _describe(graph: DecodingGraph, path: list, final: float, scale: float, reached: bool, word_boundary: int | None):
    """ReferenceResult of a path given as (arc, log_prob or None for epsilon, frame) in order."""
    tokens, token_frames, words, word_first_token, word_arc_frame = [], [], [], [], []
    previous_label, previous_frame = graph.blank, -2
    am, graph_cost = 0.0, final
    for a, log_prob, frame in path:
        graph_cost += float(graph.weights[a])
        if int(graph.olabels[a]) != 0:
            words.append(int(graph.olabels[a]))
            word_first_token.append(len(tokens))
            word_arc_frame.append(max(frame, 0))
        if log_prob is not None:
            am += log_prob
            label = int(graph.ilabels[a]) - 1
            if frame != previous_frame + 1:
                previous_label = graph.blank  # a skipped frame counts as blank
            if label != graph.blank and label != previous_label:
                tokens.append(label)
                token_frames.append(frame)
            previous_label, previous_frame = label, frame
    if words:
        word_first_token[0] = 0
    word_frames = []
    if word_boundary is not None:
        groups, group = [], []
        for token, frame in zip(tokens, token_frames, strict=True):
            if token != word_boundary:
                group.append(frame)
            elif group:
                groups.append((group[0], group[-1]))
                group = []
        if group:
            groups.append((group[0], group[-1]))
        if len(groups) == len(words):
            word_frames, word_first_token = groups, []
    for k, first in enumerate(word_first_token):
        last = word_first_token[k + 1] if k + 1 < len(words) else len(tokens)
        if first < last:
            word_frames.append((token_frames[first], token_frames[last - 1]))
        else:
            word_frames.append((word_arc_frame[k], word_arc_frame[k]))
    return ReferenceResult(
        cost=-(scale * am - graph_cost),
        words=tuple(words),
        tokens=tuple(tokens),
        token_frames=tuple(token_frames),
        word_frames=tuple(word_frames),
        am_score=am,
        lm_score=-graph_cost,
        reached_final=reached,
    )


def decode(graph: DecodingGraph, log_probs: np.ndarray, options, use_final: bool = True) -> list[ReferenceResult]:
    """The ``options.nbest`` best paths with distinct word sequences over ``log_probs`` [T, V], best first.

    ``options``: the search's options object (:func:`speechdecode.kernels.wfst_decode.options`,
    the native search's too); this search reads ``nbest``, ``acoustic_scale``,
    ``blank_skip_threshold`` (+inf: off) and ``word_boundary`` (-1: none) and never prunes.

    With ``nbest`` 1 a Viterbi search over graph states; otherwise over (state, words so far)
    pairs, so each word sequence's cost is the minimum over all its paths (exponential in
    general: tiny graphs only). Final weights are added when some path ends in a final state
    (else, or with ``use_final`` False, every state counts as final with cost 0). Empty when
    no path consumes every searched frame. ``word_boundary``: the token that ends each word, for
    word times (see :class:`speechdecode.decoding.WfstDecoder`).
    """
    nbest = options.nbest if use_final else 1
    acoustic_scale = options.acoustic_scale
    word_boundary = None if options.word_boundary < 0 else options.word_boundary
    frames = _searched_frames(graph, log_probs, options.blank_skip_threshold)

    def key_of(key, nextstate=None, arc=None):
        if nbest == 1:
            return key if nextstate is None else nextstate
        if nextstate is None:
            return key[0]
        word = int(graph.olabels[arc])
        return (nextstate, key[1] + (word,) if word else key[1])

    start = graph.start if nbest == 1 else (graph.start, ())
    layers: list[dict] = [{start: (0.0, None)}]
    _closure(graph, layers[0], key_of)
    for t in frames:
        layer: dict = {}
        for key, (cost, _) in layers[-1].items():
            for a, ilabel, weight, nextstate in _arcs(graph, key_of(key)):
                if ilabel == 0:
                    continue
                log_prob = float(log_probs[t, ilabel - 1])
                new_key, new = key_of(key, nextstate, a), cost + weight - acoustic_scale * log_prob
                if new_key not in layer or new < layer[new_key][0]:
                    layer[new_key] = (new, (key, a, log_prob))
        _closure(graph, layer, key_of)
        layers.append(layer)
    last = layers[-1]
    finals = {k: float(graph.final_weights[key_of(k)]) for k in last} if use_final else {}
    finals = {k: w for k, w in finals.items() if math.isfinite(w)}
    reached = bool(finals)
    ends = finals if reached else dict.fromkeys(last, 0.0)
    best: dict = {}  # words -> (total cost, end key)
    for key, final in ends.items():
        words = key[1] if nbest > 1 else ()
        total = last[key][0] + final
        if words not in best or total < best[words][0]:
            best[words] = (total, key)
    results = []
    for _, end in sorted(best.values())[:nbest]:
        path, key, step = [], end, len(layers) - 1
        while (back := layers[step][key][1]) is not None:
            key, a, log_prob = back
            path.append((a, log_prob, frames[step - 1] if step > 0 else -1))
            step -= log_prob is not None
        path.reverse()
        results.append(_describe(graph, path, ends[end], acoustic_scale, reached, word_boundary))
    return results
