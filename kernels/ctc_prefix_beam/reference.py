"""Plain-Python CTC prefix beam search: the oracle of the native (C++) and future GPU searches.

Definition (every backend implements exactly this, frame by frame)::

    beams    prefixes (token-id tuples), each with log-probabilities p_b (alignments ending in
             blank) and p_nb (ending in its last token); initially [()] with p_b = 0, p_nb = -inf
    frame t  x = log_probs[t] (float32 values, added in float64)
             candidates: the non-blank tokens with x[v] >= token_min_logp (with
             extend_best_token, also the frame's most likely label, the first of equals, if it
             is not blank), sorted by (-x[v], v), the first token_topk of them (blank is always
             extended)
             for each beam (in rank order), with total = logaddexp(p_b, p_nb):
               blank:                 p_b(prefix)       += total + x[blank]
               for c in candidates:   c == last token:  p_nb(prefix)     += p_nb + x[c]
                                                        p_nb(prefix + c) += p_b  + x[c]
                                      otherwise:        p_nb(prefix + c) += total + x[c]
             ("+=" is log-sum-exp: equal prefixes merge; a -inf term through a token is
             skipped, so it creates no prefix, while the blank term always keeps its prefix)
             rank: score = logaddexp(p_b, p_nb) + extra(prefix), sorted by (-score, prefix);
             keep the first ``beam``, then drop those with score < best - beam_threshold
    end      final score = logaddexp(p_b, p_nb) + final_extra(prefix); the n-best by
             (-final score, prefix)

``blank_skip_threshold`` (+inf: off): a frame with x[blank] > blank_skip_threshold is not
searched; it acts as a blank frame of probability 1: every beam's p_b becomes total and p_nb
-inf, scores, ranks and beams stay (so a token on both sides of it is two tokens, "a a"). It
counts as a frame (token frames index all frames). ``viterbi``: every log-sum-exp above
(merges, total, final score) is max instead, so a prefix scores its best alignment.
``recombine`` (with an LM): before ranking, of the prefixes with the same future, only the first
by (-score, prefix) is kept; the future of a prefix is its LM state, its unfinished word (one key
for all the words no LM word begins), its last token and its hotword state.

Without LM and hotwords ``extra`` is 0: a plain CTC prefix beam search over the acoustic scores.

Words. A token whose symbol starts with the ``word_boundary`` marker (``|`` alone, or ``▁the``)
starts a new word; its characters after the marker(s) begin that word; other tokens append
their characters to the current word. A word is complete when the next word starts, or at the
end. ``word_boundary=None``: every token is a word of its own.

LM (an :class:`speechdecode.lm.NgramModel`; words not in it score as ``<unk>``). Starting from
``<s>``, each completed word w adds ``alpha * ln(10) * log10 p(w | context) + beta`` (and
``unk_score_offset`` if w is not in the LM's vocabulary, as pyctcdecode does); at the end
the last word (if any) and ``</s>`` are scored. ``partial_word_lm`` (LM look-ahead, as a lexicon
decoder's smeared trie): an unfinished word adds ``alpha * ln(10) * u`` to the ranking score, u the
largest unigram log10 probability of the LM words it begins, or ``unk_score_offset`` if it begins
none (``-inf``: only LM words can be spelled).

``score_boundary=False``: the LM starts from the null context instead of ``<s>`` and ``</s>`` is not
scored.

Lexicon (``lexicon``: (spelling, word) pairs, a spelling being token ids with characters): the
current word is the tuple of its tokens with characters instead of their characters; a completed
spelling that is a lexicon entry's scores as that entry's word (an LM word, else the LM's
``<unk>``, without ``unk_score_offset``), as the best-scoring (first on ties) of the entries
sharing the spelling, and is output as that word; any other spelling scores as ``<unk>`` plus
``unk_score_offset``. The look-ahead ``u`` of a partial spelling is the largest unigram of the
entries it begins. Without an LM, a lexicon still scores words: ``beta`` per word and
``unk_score_offset`` (0 LM score).

Hotwords: phrases of token ids with a weight. A prefix's hotword state is the longest suffix of
its tokens that is a prefix of some phrase (an Aho-Corasick state). The bonus of a state is the
sum over its tokens of the token's weight (the largest weight of the phrases sharing that
prefix). When a state is a whole phrase, its bonus since the longest shorter whole phrase on its
path is committed; the rest of a state's bonus is on loan: ``extra`` includes it, and it is
taken back when the match is abandoned (the state falls to a shorter suffix) or the utterance
ends.

Token frames: the first frame at which a prefix survived pruning is the frame of its last token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.decoding.text import spell
from speechdecode.errors import TensorError

LN10 = math.log(10.0)
NEG_INF = -math.inf


def logaddexp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), exact for -inf operands."""
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


class _Hotwords:
    """The phrases as a set of prefixes; states are token tuples, found by brute force."""

    def __init__(self, phrases: Sequence[tuple[Sequence[int], float]]):
        self.ends = {tuple(p) for p, _ in phrases if len(p)}
        self.weight: dict[tuple[int, ...], float] = {}
        for phrase, weight in phrases:
            for i in range(1, len(phrase) + 1):
                key = tuple(phrase[:i])
                self.weight[key] = max(self.weight.get(key, NEG_INF), float(weight))

    def bonus(self, state: tuple[int, ...]) -> float:
        total = 0.0
        for i in range(1, len(state) + 1):
            total += self.weight[state[:i]]
        return total

    def end_base(self, state: tuple[int, ...]) -> float:
        """The bonus of the longest whole phrase that is a prefix of ``state`` (0 if none)."""
        for i in range(len(state), 0, -1):
            if state[:i] in self.ends:
                return self.bonus(state[:i])
        return 0.0

    def step(self, state: tuple[int, ...], token: int) -> tuple[tuple[int, ...], float]:
        """The next state and the bonus it commits."""
        state = (*state, token)
        while state and state not in self.weight:
            state = state[1:]
        committed = self.bonus(state) - self.end_base(state[:-1]) if state in self.ends else 0.0
        return state, committed

    def loan(self, state: tuple[int, ...]) -> float:
        return self.bonus(state) - self.end_base(state)


class _PrefixInfo:
    """What a prefix's tokens determine: its words so far, LM state and sums, hotword state."""

    __slots__ = ("hot_committed", "hot_state", "lm_state", "lm_sum", "n_words", "word")

    def __init__(self, word, lm_state, lm_sum, n_words, hot_state, hot_committed):
        self.word = word
        self.lm_state = lm_state
        self.lm_sum = lm_sum
        self.n_words = n_words
        self.hot_state = hot_state
        self.hot_committed = hot_committed


class PrefixBeamSearch:
    """One utterance's search, fed frame by frame (:meth:`step`) and read out with :meth:`finish`."""

    def __init__(
        self,
        pieces: Sequence[tuple[bool, str]],
        options,
        *,
        lm=None,
        hotwords: Sequence[tuple[Sequence[int], float]] = (),
        lexicon: Sequence[tuple[Sequence[int], str]] | None = None,
        utterance: int = 0,
    ):
        """``options``: the search's options object (:func:`speechdecode.kernels.ctc_prefix_beam.options`,
        the native search's too); ``lm``, ``hotwords``, ``lexicon`` as the module docstring says."""
        self.pieces = list(pieces)
        self.blank = options.blank
        self.lm = lm
        self.alpha, self.beta = float(options.alpha), float(options.beta)
        self.beam, self.token_topk = options.beam, options.token_topk
        self.beam_threshold, self.token_min_logp = float(options.beam_threshold), float(options.token_min_logp)
        self.hotwords = _Hotwords(hotwords)
        self.lexicon: dict[tuple[int, ...], list[str]] | None = None
        if lexicon:
            self.lexicon = {}
            for spelling, word in lexicon:
                self.lexicon.setdefault(tuple(spelling), []).append(word)
        self.scores_words = lm is not None or self.lexicon is not None
        self.partial_word_lm = options.partial_word_lm and self.scores_words
        self.unk_score_offset = float(options.unk_score_offset)
        self.blank_skip_threshold = float(options.blank_skip_threshold)  # +inf: every frame is searched
        self.merge = max if options.viterbi else logaddexp
        self.recombine = options.recombine and lm is not None
        self.score_boundary = options.score_boundary
        self.extend_best_token = options.extend_best_token
        # The trie's words: spelling (a str, or a token tuple with a lexicon) -> unigram log10 prob.
        if self.lexicon is not None:
            unigram = {
                w: lm.score_word((), w)[0] if lm is not None else 0.0 for ws in self.lexicon.values() for w in ws
            }
            spellings = {s: max(unigram[w] for w in ws) for s, ws in self.lexicon.items()}
        elif lm is not None:
            spellings = {w: lm.score_word((), w)[0] for w in lm.vocab if w not in ("<unk>", "<s>", "</s>")}
        else:
            spellings = {}
        self.word_prefixes = {w[:i] for w in spellings for i in range(1, len(w) + 1)}
        self.lookahead: dict = {}
        for w, p in spellings.items():
            for i in range(1, len(w) + 1):
                self.lookahead[w[:i]] = max(self.lookahead.get(w[:i], NEG_INF), p)
        if lm is None:
            begin = ()
        else:
            begin = lm.begin_state() if self.score_boundary else lm.null_state()
        self.begin = begin
        empty = () if self.lexicon is not None else ""
        self.info = {(): _PrefixInfo(empty, begin, 0.0, 0, (), 0.0)}
        self.beams: list[tuple[int, ...]] = [()]
        self.p_b = {(): 0.0}
        self.p_nb = {(): NEG_INF}
        self.first_frame: dict[tuple[int, ...], int] = {}
        self.frames = 0
        self.searched_frames = 0
        self.utterance = utterance

    def _weighted(self, log10_prob: float) -> float:
        return 0.0 if self.alpha == 0.0 else self.alpha * LN10 * log10_prob

    def _word_score(self, word, state) -> tuple[float, object, str | None]:
        """(natural-log score, next LM state, lexicon word or None) of completing ``word`` after ``state``."""
        if self.lexicon is None:
            p, state = self.lm.score_word(state, word) if self.lm is not None else (0.0, state)
            score = self._weighted(p)
            return (score if word in self.lm else score + self.unk_score_offset), state, None
        entries = self.lexicon.get(word)
        if not entries:
            p, state = self.lm.score_word(state, "<unk>") if self.lm is not None else (0.0, state)
            return self._weighted(p) + self.unk_score_offset, state, None
        best = None
        for entry in entries:
            p, next_state = self.lm.score_word(state, entry) if self.lm is not None else (0.0, state)
            score = self._weighted(p)
            if best is None or score > best[0]:
                best = (score, next_state, entry)
        return best

    def _complete(self, word, state, lm_sum: float, n_words: int):
        """The LM state, weighted LM sum and word count after ``word`` (its characters, or with a
        lexicon its token tuple)."""
        score, state, _ = self._word_score(word, state)
        return state, lm_sum + score, n_words + 1

    def _info(self, prefix: tuple[int, ...]) -> _PrefixInfo:
        if prefix in self.info:
            return self.info[prefix]
        parent = self._info(prefix[:-1])
        starts, chars = self.pieces[prefix[-1]]
        word, lm_state, lm_sum, n_words = parent.word, parent.lm_state, parent.lm_sum, parent.n_words
        piece = ((prefix[-1],) if chars else ()) if self.lexicon is not None else chars
        if starts:
            if word and self.scores_words:
                lm_state, lm_sum, n_words = self._complete(word, lm_state, lm_sum, n_words)
            word = piece
        else:
            word = word + piece
        hot_state, committed = self.hotwords.step(parent.hot_state, prefix[-1])
        info = _PrefixInfo(word, lm_state, lm_sum, n_words, hot_state, parent.hot_committed + committed)
        self.info[prefix] = info
        return info

    def _extra(self, prefix: tuple[int, ...]) -> float:
        i = self._info(prefix)
        extra = i.lm_sum + self.beta * i.n_words if self.scores_words else 0.0
        extra = extra + i.hot_committed + self.hotwords.loan(i.hot_state)
        if self.partial_word_lm and i.word:
            u = self.lookahead.get(i.word)
            extra = extra + (self.unk_score_offset if u is None else self._weighted(u))
        return extra

    def _final(self, prefix: tuple[int, ...]) -> tuple[float, float, int]:
        """(final extra, weighted LM score, words) with the last word and </s> scored."""
        i = self._info(prefix)
        if not self.scores_words:
            return i.hot_committed, 0.0, 0
        lm_sum, n_words, state = i.lm_sum, i.n_words, i.lm_state
        if i.word:
            state, lm_sum, n_words = self._complete(i.word, state, lm_sum, n_words)
        if self.lm is not None and self.score_boundary:
            p, _ = self.lm.score_word(state, "</s>")
            lm_sum = lm_sum + self._weighted(p)
        return lm_sum + self.beta * n_words + i.hot_committed, lm_sum, n_words

    def step(self, x: np.ndarray) -> None:
        """Consume one frame of log-probabilities x[V]."""
        x = [float(v) for v in x]
        for v, value in enumerate(x):
            if math.isnan(value) or value == math.inf:
                kind = "NaN" if math.isnan(value) else "+inf"
                raise TensorError(
                    "log_probs", "finite log-probabilities or -inf", f"{kind} at [{self.utterance}, {self.frames}, {v}]"
                )
        if x[self.blank] > self.blank_skip_threshold:
            for p in self.beams:
                self.p_b[p], self.p_nb[p] = self.merge(self.p_b[p], self.p_nb[p]), NEG_INF
            self.frames += 1
            return
        self.searched_frames += 1
        cands = [v for v in range(len(x)) if v != self.blank and x[v] >= self.token_min_logp]
        most_likely = max(range(len(x)), key=x.__getitem__)
        if self.extend_best_token and most_likely != self.blank and x[most_likely] < self.token_min_logp:
            cands.append(most_likely)
        cands = sorted(cands, key=lambda v: (-x[v], v))[: self.token_topk]
        p_b: dict[tuple[int, ...], float] = {}
        p_nb: dict[tuple[int, ...], float] = {}

        def add(table, prefix, value):
            if value == NEG_INF and table is p_nb:  # log 0 through a token creates no prefix
                return
            if prefix not in p_b:
                p_b[prefix], p_nb[prefix] = NEG_INF, NEG_INF
            table[prefix] = self.merge(table[prefix], value)

        for prefix in self.beams:
            b, nb = self.p_b[prefix], self.p_nb[prefix]
            total = self.merge(b, nb)
            add(p_b, prefix, total + x[self.blank])
            last = prefix[-1] if prefix else None
            for c in cands:
                if c == last:
                    add(p_nb, prefix, nb + x[c])
                    add(p_nb, (*prefix, c), b + x[c])
                else:
                    add(p_nb, (*prefix, c), total + x[c])
        scored = sorted((-(self.merge(p_b[p], p_nb[p]) + self._extra(p)), p) for p in p_b)
        if self.recombine:
            scored = self._recombined(scored)
        scored = scored[: self.beam]
        best = -scored[0][0]
        self.beams = [p for s, p in scored if -s >= best - self.beam_threshold]
        self.p_b = {p: p_b[p] for p in self.beams}
        self.p_nb = {p: p_nb[p] for p in self.beams}
        for p in self.beams:
            self.first_frame.setdefault(p, self.frames)
        self.frames += 1

    def _recombined(self, scored: list) -> list:
        """The first of the ranked (-score, prefix) pairs of each future."""
        kept, futures = [], set()
        for item in scored:
            prefix = item[1]
            i = self._info(prefix)
            word = i.word if not i.word or i.word in self.word_prefixes else None
            future = (i.lm_state, word, prefix[-1] if prefix else None, i.hot_state)
            if future not in futures:
                futures.add(future)
                kept.append(item)
        return kept

    def _hypothesis(self, prefix: tuple[int, ...]) -> Hypothesis:
        am = self.merge(self.p_b[prefix], self.p_nb[prefix])
        extra, lm_score, _ = self._final(prefix)
        frames = [self.first_frame[prefix[: i + 1]] for i in range(len(prefix))]
        words, word_frames = spell(self.pieces, prefix, frames)
        if self.lexicon is not None:
            words = self._lexicon_words(prefix, words)
        return Hypothesis(
            tokens=prefix,
            words=words,
            score=am + extra,
            am_score=am,
            lm_score=lm_score,
            token_frames=tuple(frames),
            word_frames=tuple(word_frames),
        )

    def _lexicon_words(self, prefix: tuple[int, ...], spelled: tuple[str, ...]) -> tuple[str, ...]:
        """The words of a prefix with a lexicon: each spelling's chosen entry (else its characters)."""
        spellings: list[tuple[int, ...]] = []
        for token in prefix:
            starts, chars = self.pieces[token]
            if starts and spellings and spellings[-1]:
                spellings.append(())
            if not spellings:
                spellings.append(())
            if chars:
                spellings[-1] = (*spellings[-1], token)
        state, words = self.begin, []
        for spelling, chars in zip([s for s in spellings if s], spelled, strict=True):
            _, state, entry = self._word_score(spelling, state)
            words.append(chars if entry is None else entry)
        return tuple(words)

    def finish(self, nbest: int) -> list[Hypothesis]:
        """The n-best hypotheses of the frames so far, by final score."""
        ranked = sorted((-(self.merge(self.p_b[p], self.p_nb[p]) + self._final(p)[0]), p) for p in self.beams)[:nbest]
        return [self._hypothesis(p) for _, p in ranked]


def ctc_prefix_beam_search(
    log_probs: np.ndarray, lengths: Sequence[int], pieces: Sequence[tuple[bool, str]], nbest: int, options, **search
) -> list[list[Hypothesis]]:
    """The n-best lists of a batch: log_probs [B, T, V] float, lengths [B]; ``options`` and ``search``
    (lm, hotwords, lexicon) as :class:`PrefixBeamSearch` takes them."""
    results = []
    for b, length in enumerate(lengths):
        search_b = PrefixBeamSearch(pieces, options, utterance=b, **search)
        for t in range(int(length)):
            search_b.step(log_probs[b, t])
        results.append(search_b.finish(nbest))
    return results
