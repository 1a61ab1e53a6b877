"""Benchmark of WFST beam search over a TLG (:class:`speechdecode.decoding.WfstDecoder`).

Data: the prefix-search benchmark's (:func:`speechdecode.bench.asr_common.make_data`): held-out
King James verses turned into CTC log-posteriors (character tokens, ``|`` after every word, blank
``-``) by the posterior simulator and, in the cases named ``real posteriors, ...``, by the shipped
acoustic model listening to the verses spoken by voices it never heard; and an ``ORDER``-gram
modified Kneser-Ney LM built by :mod:`speechdecode.lm` from the other verses, written as ARPA. The TLG is compiled by
:func:`speechdecode.graphs.compile.compile_graph` from that ARPA and the character lexicon of the
LM's words (``w o r d |``), compact CTC topology, outside the timed region.

Both decoders rank by ``ln p_AM + ALPHA * ln p_LM + BETA * words`` (``bench_ctc``'s weights):

* anchor: flashlight-text's ``LexiconDecoder`` with its KenLM on the same ARPA, exactly as
  ``bench_ctc`` sets it up (beam ``BEAMS[i]``, token top-k, beam threshold);
* ours: ``WfstDecoder`` with ``acoustic_scale = 1 / ALPHA`` and the word bonus folded into the
  graph (``- BETA / ALPHA`` on every arc with a word label); search settings
  ``SEARCH[source][i]`` (cost beam, max_active) paired with flashlight's beam ``BEAMS[i]``. On
  simulated posteriors wide cost beams cost little (one label dominates each frame); on the real
  model's posteriors, which are far less certain, every unit of cost beam admits many more states,
  so the real pairings keep the cost beam at 10 and cap the active states at 5 x flashlight's
  beam (its hypothesis count). (With the simulated pairings on an earlier model's real posteriors
  the search ran at 0.14-0.24x flashlight's frames/s; at these, 1.2-5x, at no higher WER.)

Rows: each decoder on one thread and on every core (flashlight on a thread pool), and ours on one
thread with blank skipping (``BLANK_SKIP``; the case's params give the share of such frames); WER in the
row params and the notes' table; frames/ms as items/s with item = frame. Quick mode: 3
utterances, a 3-gram from 3000 verses, the first pairing only.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

from speechdecode.bench.asr_common import (
    ALPHA,
    BEAM_THRESHOLD,
    BETA,
    BLANK_SKIP,
    REAL,
    SIMULATED,
    TOKEN_TOPK,
    TOKENS,
    Rows,
    best_texts,
    case_name,
    flashlight_decoder,
    make_data,
    skippable,
)
from speechdecode.bench.harness import Suite, usable_cores
from speechdecode.decoding import WfstDecoder
from speechdecode.decoding.wfst_decoder import read_graph_arrays
from speechdecode.graphs.compile import compile_graph
from speechdecode.graphs.lexicon import Lexicon
from speechdecode.lm import NgramModel

ORDER = 3
BEAMS = (10, 50, 100)
SEARCH = {SIMULATED: ((12.0, 1000), (18.0, 7000), (20.0, 10000)), REAL: ((10.0, 50), (10.0, 250), (10.0, 500))}
FULL = {"utterances": 40, "order": ORDER, "train": None, "pairs": 3}
QUICK = {"utterances": 3, "order": ORDER, "train": 3000, "pairs": 1}
SPECIAL_WORDS = ("<s>", "</s>", "<unk>")


def compile_char_tlg(arpa: str, words: list[str], out_dir: str) -> dict:
    """Compile TLG (compact topology) of the character lexicon of ``words`` into ``out_dir``; its stats."""
    lexicon = Lexicon()
    for word in words:
        lexicon.add(word, (*word, "|"))
    graph = compile_graph(list(TOKENS[1:]), lexicon, arpa, blank=TOKENS[0], topology="compact", allow_oov=True)
    graph.write(out_dir)
    return graph.stats()


def wfst_decoder(graph_dir: str, beam: float, max_active: int, num_threads: int, blank_skip=None) -> WfstDecoder:
    """WfstDecoder ranking like the anchor: acoustic_scale 1/ALPHA, word bonus BETA in the graph."""
    arrays, words, _ = read_graph_arrays(graph_dir)
    weights = arrays.weights.copy()
    weights[arrays.olabels != 0] -= BETA / ALPHA
    return WfstDecoder(
        dataclasses.replace(arrays, weights=weights),
        words=words,
        beam=beam,
        max_active=max_active,
        acoustic_scale=1.0 / ALPHA,
        num_threads=num_threads,
        blank_skip_threshold=blank_skip,
    )


def run(suite: Suite, quick: bool) -> None:
    """Add the wfst cases to ``suite``: per source and pairing, flashlight and ours on the same posteriors and LM."""
    for source in (SIMULATED, REAL):
        _run_source(suite, {**(QUICK if quick else FULL), "posteriors": source})


def _run_source(suite: Suite, config: dict) -> None:
    threads = usable_cores()
    with tempfile.TemporaryDirectory() as work_dir:
        refs, log_probs, lengths, arpa = make_data(config, work_dir)
        lm = NgramModel.from_arpa(arpa)
        graph_dir = os.path.join(work_dir, "graph")
        stats = compile_char_tlg(arpa, [w for w in lm.vocab if w not in SPECIAL_WORDS], graph_dir)
        utterances = [log_probs[b, : lengths[b]].copy() for b in range(len(refs))]
        rows = Rows(suite, refs, {
            "posteriors": config["posteriors"],
            "utterances": len(refs),
            "frames": int(lengths.sum()),
            "blank_skippable": skippable(log_probs, lengths),
            "vocab": len(TOKENS),
            "lm": f"{config['order']}-gram mkn, {lm.vocab_size} words",
            "tlg": f"compact, {stats['tlg_states']} states, {stats['tlg_arcs']} arcs",
            "alpha": ALPHA,
            "beta": BETA,
        })  # fmt: skip
        pairs = zip(BEAMS, SEARCH[config["posteriors"]], strict=True)
        for beam, (cost_beam, max_active) in list(pairs)[: config["pairs"]]:
            case = case_name(
                config["posteriors"], f"flashlight beam {beam} / wfst beam {cost_beam:g}, max_active {max_active}"
            )
            anchor_params = {"beam": beam, "token_topk": TOKEN_TOPK, "beam_threshold": BEAM_THRESHOLD}
            fl = flashlight_decoder(arpa, lm.vocab, beam)
            rows.add(case, "flashlight LexiconDecoder 1 thread", lambda fl=fl: [fl(u) for u in utterances], list,
                     anchor_params, anchor=True, slow=True)  # fmt: skip
            if threads > 1:
                with ThreadPoolExecutor(threads) as pool:
                    rows.add(case, f"flashlight LexiconDecoder {threads} threads",
                             lambda fl=fl, pool=pool: list(pool.map(fl, utterances)), list,
                             {**anchor_params, "num_threads": threads}, slow=True)  # fmt: skip
            search = {"beam": cost_beam, "max_active": max_active, "acoustic_scale": 1.0 / ALPHA}
            for k in sorted({1, threads}):
                ours = wfst_decoder(graph_dir, cost_beam, max_active, k)
                name = f"ours WfstDecoder {k} thread{'s' if k > 1 else ''}"
                rows.add(case, name, lambda ours=ours: ours(log_probs, lengths), best_texts,
                         {**search, "num_threads": k})  # fmt: skip
            skip = wfst_decoder(graph_dir, cost_beam, max_active, 1, BLANK_SKIP)
            rows.add(case, "ours WfstDecoder 1 thread, blank skip", lambda skip=skip: skip(log_probs, lengths),
                     best_texts, {**search, "num_threads": 1, "blank_skip_threshold": BLANK_SKIP})  # fmt: skip
    rows.note()
