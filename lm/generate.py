"""Text generation from an n-gram model: greedy, beam search, and temperature / top-k sampling.

Every step scores all words after the current state in one vectorized call
(:meth:`NgramModel.score_words`). ``<s>`` and ``<unk>`` are never generated; ``</s>`` ends a
sentence.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np

from speechdecode import _args
from speechdecode.errors import InvalidArgumentError
from speechdecode.lm.model import NgramModel
from speechdecode.lm.vocab import BOS_ID, EOS_ID, UNK_ID

STRATEGIES = ("greedy", "beam", "sample")


class Generated(NamedTuple):
    """A generated continuation: its words (prefix excluded) and log10 p(words [+ </s>] | prefix)."""

    words: list[str]
    log10_prob: float
    finished: bool


def _row(model: NgramModel, state: tuple[int, ...]) -> np.ndarray:
    row = np.full(max(model.order - 1, 1), -1, dtype=np.int32)
    row[: len(state)] = state
    return row


def _next_scores(model: NgramModel, state: tuple[int, ...]) -> np.ndarray:
    """log10 p(w | state) for every word id w, with ``<s>`` and ``<unk>`` set to -inf."""
    vocab = model.vocab_size
    states = np.broadcast_to(_row(model, state), (vocab, max(model.order - 1, 1)))
    if model.order == 1:
        states = np.full((vocab, 0), -1, dtype=np.int32)
    scores, _ = model.score_words(np.ascontiguousarray(states), np.arange(vocab, dtype=np.int32))
    scores = scores.astype(np.float64)
    scores[[BOS_ID, UNK_ID]] = -np.inf
    return scores


def _start(model: NgramModel, prefix: str, bos: bool) -> tuple[tuple[int, ...], float]:
    state = model.begin_state() if bos else model.null_state()
    total = 0.0
    for word in prefix.split():
        score, state = model.score_word(state, word)
        total += score
    return state, total


def generate(
    model: NgramModel,
    prefix: str = "",
    *,
    strategy: str = "sample",
    max_words: int = 30,
    num: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    beam: int = 8,
    seed: int | None = None,
    bos: bool = True,
) -> list[Generated]:
    """Continue ``prefix`` with words drawn from ``model``.

    Args:
        model: the LM.
        prefix: words to start from (after ``<s>`` when ``bos``).
        strategy: ``"greedy"`` (most probable word each step), ``"beam"`` (beam search over
            whole continuations, ``beam`` wide, best ``num`` returned, ranked by total log10
            probability including ``</s>``) or ``"sample"`` (``num`` independent draws from
            p(w|h)^(1/temperature) restricted to the ``top_k`` most probable words).
        max_words: stop a continuation after this many words (``finished`` is then False).
        seed: seeds sampling; the same seed gives the same text.

    Returns:
        ``num`` :class:`Generated` continuations (one for greedy).

    Example:
        >>> outs = generate(lm, "in the", strategy="greedy")  # doctest: +SKIP
    """
    if strategy not in STRATEGIES:
        raise InvalidArgumentError("strategy", f"one of {', '.join(STRATEGIES)}", repr(strategy))
    for value, name in ((max_words, "max_words"), (num, "num"), (beam, "beam")):
        _args.integer(value, name, 1)
    _args.real(temperature, "temperature", low=0.0, strict=True, finite=False)
    _args.optional_integer(top_k, "top_k", 1)
    state, _ = _start(model, prefix, bos)
    if strategy == "greedy":
        return [_greedy(model, state, max_words)]
    if strategy == "beam":
        return _beam(model, state, max_words, beam, num)
    rng = np.random.default_rng(seed)
    return [_sample(model, state, max_words, temperature, top_k, rng) for _ in range(num)]


def _walk(model: NgramModel, state, max_words: int, choose) -> Generated:
    """Extend word by word with ``choose(scores) -> word id`` until ``</s>`` or ``max_words``."""
    words, total = [], 0.0
    for _ in range(max_words):
        scores = _next_scores(model, state)
        word = choose(scores)
        total += float(scores[word])
        if word == EOS_ID:
            return Generated(words, total, True)
        words.append(model.vocab[word])
        state = model.score_word(state, word)[1]
    return Generated(words, total, False)


def _greedy(model: NgramModel, state, max_words: int) -> Generated:
    return _walk(model, state, max_words, lambda scores: int(np.argmax(scores)))


def _sample(model: NgramModel, state, max_words: int, temperature: float, top_k, rng) -> Generated:
    def choose(scores: np.ndarray) -> int:
        logits = scores * np.log(10) / temperature
        if top_k is not None and top_k < len(logits):
            cut = np.partition(logits, -top_k)[-top_k]
            logits = np.where(logits >= cut, logits, -np.inf)
        probs = np.exp(logits - logits.max())
        return int(rng.choice(len(probs), p=probs / probs.sum()))

    return _walk(model, state, max_words, choose)


def _beam(model: NgramModel, state, max_words: int, beam: int, num: int) -> list[Generated]:
    live = [(0.0, (), state)]  # (total log10 prob, word ids, state)
    done: list[tuple[float, tuple[int, ...], bool]] = []
    for _ in range(max_words):
        candidates = []
        for total, ids, st in live:
            scores = _next_scores(model, st)
            for w in np.argpartition(-scores, min(beam, len(scores) - 1))[:beam]:
                if np.isfinite(scores[w]):
                    candidates.append((total + float(scores[w]), ids, st, int(w)))
        live = []
        for total, ids, st, w in heapq.nlargest(beam, candidates, key=lambda c: c[0]):
            if w == EOS_ID:
                done.append((total, ids, True))
            else:
                live.append((total, (*ids, w), model.score_word(st, w)[1]))
        # a live continuation can only lose probability: stop once num finished ones beat them all
        best_done = sorted(t for t, _, _ in done)[-num:] if len(done) >= num else None
        if not live or (best_done and best_done[0] >= max(t for t, _, _ in live)):
            break
    done += [(total, ids, False) for total, ids, _ in live]
    ranked = sorted(done, key=lambda d: d[0], reverse=True)[:num]
    return [Generated([model.vocab[i] for i in ids], total, finished) for total, ids, finished in ranked]
