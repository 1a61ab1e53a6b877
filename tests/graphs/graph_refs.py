"""Test helpers for graphs/: small LMs, FST path enumeration, and an independent tropical-LM oracle."""

from __future__ import annotations

import math
import random
import warnings

import pywrapfst as fst

from speechdecode.lm.arpa import write_arpa
from speechdecode.lm.counting import count_files
from speechdecode.lm.estimate import estimate

LN10 = math.log(10.0)


def write_corpus_lm(
    tmp_path, vocab: list[str], sentences: int, order: int, seed: int, name: str = "lm.arpa", lines=None
):
    """A modified-Kneser-Ney ARPA estimated on ``lines``, or on random sentences over ``vocab`` (a
    skewed choice so that some n-grams repeat and get back-off weights); returns (path, ArpaModel)."""
    if lines is None:
        rng = random.Random(seed)
        weights = [1.0 / (i + 1) for i in range(len(vocab))]
        lines = [" ".join(rng.choices(vocab, weights, k=rng.randint(1, 7))) for _ in range(sentences)]
    text = tmp_path / f"{name}.txt"
    text.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny corpora make mkn fall back to default discounts
        model = estimate(count_files([text], order), "mkn")
    path = tmp_path / name
    write_arpa(path, model)
    return path, model


def openfst_lg(L, G):
    """LG by OpenFst's algorithms alone (the reference for graphs.compile's native minimization):
    arcsort(minimize over encoded (input, output, weight) of determinize_log(L∘G))."""
    lg = fst.compose(L.copy().arcsort("olabel"), G.copy().arcsort("ilabel"))
    det = fst.arcmap(fst.determinize(fst.arcmap(lg, map_type="to_log")), map_type="to_std")
    mapper = fst.EncodeMapper(det.arc_type(), encode_labels=True, encode_weights=True)
    det.encode(mapper)
    det.minimize()
    det.decode(mapper)
    return det.arcsort("ilabel")


def linear_fst(ilabels, olabels=None):
    """A linear FST reading ``ilabels`` (and writing ``olabels``, default the same), weight 0."""
    olabels = ilabels if olabels is None else olabels
    f = fst.VectorFst()
    state = f.add_state()
    f.set_start(state)
    for i, o in zip(ilabels, olabels, strict=True):
        nxt = f.add_state()
        f.add_arc(state, fst.Arc(i, o, fst.Weight.one("tropical"), nxt))
        state = nxt
    f.set_final(state)
    return f


def all_paths(f) -> list[tuple[tuple[int, ...], tuple[int, ...], float]]:
    """Every successful path of an acyclic FST: (inputs without eps, outputs without eps, cost)."""
    out = []

    def walk(state, ins, outs, cost):
        final = float(f.final(state))
        if math.isfinite(final):
            out.append((tuple(ins), tuple(outs), cost + final))
        for arc in f.arcs(state):
            walk(
                arc.nextstate,
                ins + ([arc.ilabel] if arc.ilabel else []),
                outs + ([arc.olabel] if arc.olabel else []),
                cost + float(arc.weight),
            )

    if f.start() >= 0:
        walk(f.start(), [], [], 0.0)
    return out


def best_path(f) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    """Input labels, output labels (epsilons dropped) and cost of the shortest path of ``f``."""
    paths = all_paths(fst.shortestpath(f))
    assert len(paths) == 1
    return paths[0]


class TropicalLm:
    """The cost, under a tropical back-off G, of a word sequence: the minimum over all back-off paths.

    Written from the ARPA semantics, independently of graphs/grammar.py. A history is the last
    N-1 words. From history h, word w can be read with an explicit n-gram h' w, h' a suffix of h,
    paying the back-off weights of every longer suffix on the way (a back-off may be taken even
    where an explicit n-gram exists: that is what makes G's best path a minimum). The ARPA's
    own (KenLM) cost is the path that backs off only when it must, so it is >= this minimum.
    """

    def __init__(self, model):
        self.order = model.order
        self.words = model.words
        self.prob: dict[tuple[str, ...], float] = {}
        self.backoff: dict[tuple[str, ...], float] = {}
        for n in range(model.order):
            for i, row in enumerate(model.ngrams[n]):
                key = tuple(model.words[w] for w in row)
                self.prob[key] = -LN10 * float(model.log10_probs[n][i])
                if n < model.order - 1:
                    self.backoff[key] = -LN10 * float(model.backoffs[n][i])

    def _step(self, history: tuple[str, ...], word: str) -> list[tuple[tuple[str, ...], float]]:
        """(new history, cost) for each way of reading ``word`` after ``history``."""
        options, acc = [], 0.0
        for k in range(len(history) + 1):
            context = history[k:]
            if (*context, word) in self.prob:
                new = ((*context, word))[-(self.order - 1) :] if self.order > 1 else ()
                options.append((new, acc + self.prob[(*context, word)]))
            acc += self.backoff.get(context, 0.0)
        return options

    def cost(self, words: list[str]) -> float:
        """min over paths of the G cost of ``<s> words </s>``; inf when G cannot read it."""
        states = {("<s>",) if self.order > 1 else (): 0.0}
        for word in [*words, "</s>"]:
            nxt: dict[tuple[str, ...], float] = {}
            for history, cost in states.items():
                for new, step in self._step(history, word):
                    if cost + step < nxt.get(new, math.inf):
                        nxt[new] = cost + step
            states = nxt
        return min(states.values(), default=math.inf)

    def kenlm_cost(self, words: list[str]) -> float:
        """The ARPA's own cost: at each word, the longest explicit n-gram, with the back-offs above it."""
        history, total = ("<s>",) if self.order > 1 else (), 0.0
        for word in [*words, "</s>"]:
            new, step = self._step(history, word)[0]
            history, total = new, total + step
        return total
