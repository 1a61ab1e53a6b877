"""Benchmark of CTC decoding with an n-gram LM (:class:`speechdecode.decoding.CtcPrefixBeamSearch`).

Data: held-out King James verses (every ``HOLDOUT``-th, :func:`speechdecode.lm.corpora.kjv_sentences`)
turned into CTC log-posteriors by :class:`speechdecode.models.ctc_simulator.CtcPosteriorSimulator`
(character tokens, ``|`` after every word, blank 0); the LM is a modified Kneser-Ney n-gram built
by :mod:`speechdecode.lm` from the other verses and written as ARPA. Every decoder gets the same
posteriors, the same ARPA file and the same weights: ``ALPHA`` (natural-log LM weight per log10
unit times ln 10) and ``BETA`` (word bonus).

Decoders per beam (``BEAMS``):

* anchor: flashlight-text's ``LexiconDecoder`` with its KenLM, lexicon = the LM's words spelled in
  characters plus ``|`` (``beam_size`` = beam, ``beam_size_token`` = ``TOKEN_TOPK``,
  ``beam_threshold`` = ``BEAM_THRESHOLD``, ``lm_weight`` = ALPHA * ln 10, ``word_score`` = BETA);
* pyctcdecode's ``build_ctcdecoder`` with its kenlm ``LanguageModel`` (``beam_width`` = beam,
  ``beam_prune_logp`` = -BEAM_THRESHOLD, ``token_min_logp`` = ``TOKEN_MIN_LOGP``);
* ours: :class:`CtcPrefixBeamSearch` with the LM (``LEXICON``: LM words only, partial words
  scored by look-ahead, and, as flashlight's ``log_add=False`` decoder, prefixes with equal futures
  recombined and alignments merged by max), on one thread and on every core, and without LM;
  plus greedy decoding.

The "both cores" rows of the anchors run the utterances on a thread pool (flashlight) or a
process pool (pyctcdecode's ``decode_batch``). Each row records WER (in its params and in the
notes' table) and frames/ms (items/s with item = frame). Quick mode: 3 utterances, a 3-gram from
3000 verses, beam 10 only.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from speechdecode.bench.harness import Suite
from speechdecode.decoding import CtcPrefixBeamSearch, ctc_greedy, word_error_rate
from speechdecode.errors import BackendUnavailableError
from speechdecode.lm import NgramModel, count_files, estimate, write_arpa
from speechdecode.lm.corpora import kjv_sentences
from speechdecode.models.ctc_simulator import CtcPosteriorSimulator

TOKENS = ("-", "|", "'", *(chr(c) for c in range(ord("a"), ord("z") + 1)))
BLANK = 0
BOUNDARY = 1
HOLDOUT = 400
ALPHA = 0.5
BETA = 1.0
TOKEN_TOPK = 16
BEAM_THRESHOLD = 20.0
TOKEN_MIN_LOGP = -10.0
FULL = {"utterances": 40, "order": 4, "train": None, "beams": (10, 50, 100)}
QUICK = {"utterances": 3, "order": 3, "train": 3000, "beams": (10,)}
SLOW_ROW = {"warmup": 0, "repeats": 1, "min_seconds": 0.0}
# Ours spells LM words only, as flashlight's lexicon decoder (unk_score = -inf) does; partial
# words are scored by LM look-ahead, as flashlight's smeared trie (SmearingMode.MAX) scores them;
# prefixes with the same LM state, unfinished word and last token are recombined and alignments
# merge by max, as flashlight merges equal states (log_add=False).
LEXICON = {"partial_word_lm": True, "unk_score_offset": float("-inf"), "recombine": True, "viterbi": True}
LEXICON_PARAMS = {**LEXICON, "unk_score_offset": "-inf"}  # JSON has no -inf


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_data(config: dict, work_dir: str, seed: int = 0):
    """(reference texts, log_probs [B, T, V] float32, lengths [B], ARPA path, LM vocabulary)."""
    sentences = kjv_sentences()
    test = sentences[::HOLDOUT][: config["utterances"]]
    train = [s for i, s in enumerate(sentences) if i % HOLDOUT]
    if config["train"] is not None:
        train = train[: config["train"]]
    corpus = os.path.join(work_dir, "train.txt")
    with open(corpus, "w", encoding="utf-8") as handle:
        handle.write("\n".join(train) + "\n")
    arpa = os.path.join(work_dir, "lm.arpa")
    write_arpa(arpa, estimate(count_files(corpus, config["order"]), "mkn"))
    ids = {t: i for i, t in enumerate(TOKENS)}
    labels = [[ids[c] for c in "|".join(s.split()) + "|"] for s in test]
    simulator = CtcPosteriorSimulator(num_labels=len(TOKENS), blank=BLANK, seed=seed)
    log_probs, lengths = simulator.simulate(labels)
    return test, log_probs, lengths, arpa


def _text(tokens) -> str:
    return " ".join("".join(TOKENS[t] for t in tokens).replace("|", " ").split())


def flashlight_decoder(arpa: str, vocab: list[str], beam: int):
    """A function decoding one utterance [T, V] float32 (C-contiguous) to text with flashlight-text."""
    try:
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            SmearingMode,
            Trie,
        )
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import create_word_dict
    except ImportError as exc:
        raise BackendUnavailableError(
            f"flashlight-text is not installed ({exc}): pip install flashlight-text"
        ) from None
    words = [w for w in vocab if w not in ("<s>", "</s>", "<unk>")]
    word_dict = create_word_dict({w: [[*w, "|"]] for w in ["<unk>", *words]})
    lm = KenLM(arpa, word_dict)
    trie = Trie(len(TOKENS), BOUNDARY)
    start = lm.start(False)
    token_ids = {t: i for i, t in enumerate(TOKENS)}
    for w in words:
        index = word_dict.get_index(w)
        trie.insert([token_ids[c] for c in w] + [BOUNDARY], index, lm.score(start, index)[1])
    trie.smear(SmearingMode.MAX)
    options = LexiconDecoderOptions(
        beam_size=beam,
        beam_size_token=TOKEN_TOPK,
        beam_threshold=BEAM_THRESHOLD,
        lm_weight=ALPHA * math.log(10.0),
        word_score=BETA,
        unk_score=-math.inf,
        sil_score=0.0,
        log_add=False,
        criterion_type=CriterionType.CTC,
    )
    unk = word_dict.get_index("<unk>")

    def decode(x: np.ndarray) -> str:
        decoder = LexiconDecoder(options, trie, lm, BOUNDARY, BLANK, unk, [], False)
        best = decoder.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
        return " ".join(word_dict.get_entry(i) for i in best.words if i >= 0)

    return decode


def pyctcdecode_decoder(arpa: str):
    """pyctcdecode's decoder with its kenlm LanguageModel on the ARPA file."""
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError as exc:
        raise BackendUnavailableError(f"pyctcdecode is not installed ({exc}): pip install pyctcdecode kenlm") from None
    labels = ["", " ", *TOKENS[2:]]
    return build_ctcdecoder(labels, kenlm_model_path=arpa, alpha=ALPHA, beta=BETA)


class _Last:
    """Runs fn and keeps its last output, so a timed run also gives the WER (bench_wfst uses it too)."""

    def __init__(self, fn):
        self.fn = fn
        self.output = None

    def __call__(self):
        self.output = self.fn()
        return self.output


class _Rows:
    """Adds timed rows to the suite and keeps each one's WER (from its last timed run)."""

    def __init__(self, suite: Suite, refs: list[str], base: dict):
        self.suite, self.refs, self.base = suite, refs, base
        self.wer: list[tuple[str, str, float, float]] = []

    def add(self, case, impl, fn, texts_of, params, *, anchor=False, slow=False) -> None:
        timed = _Last(fn)
        row = self.suite.add(
            case,
            impl,
            timed,
            anchor=anchor,
            items=self.base["frames"],
            item_unit="frames",
            params={**self.base, **params},
            settings=SLOW_ROW if slow else None,
        )
        wer = word_error_rate(self.refs, texts_of(timed.output))
        row["params"]["wer"] = wer
        self.wer.append((case, impl, wer, row["items_per_s"] / 1e3))

    def note(self) -> None:
        lines = ["WER and frames/ms per decoder:", "", "| case | impl | WER | frames/ms |", "|---|---|---:|---:|"]
        lines += [f"| {c} | {i} | {w:.4f} | {f:.2f} |" for c, i, w, f in self.wer]
        self.suite.note("\n".join(lines))


def _greedy_texts(output) -> list[str]:
    return [_text(h.tokens.tolist()) for h in output]


def _best_texts(output) -> list[str]:
    return [hyps[0].text for hyps in output]


def _beam_rows(rows: _Rows, beam: int, data, lm: NgramModel, threads: int) -> None:
    """The rows of one beam: anchors, greedy, ours with and without the LM."""
    log_probs, lengths, utterances, arpa = data
    case = f"beam {beam}"
    fl = flashlight_decoder(arpa, lm.vocab, beam)
    rows.add(case, "flashlight LexiconDecoder 1 thread", lambda: [fl(u) for u in utterances], list, {"beam": beam},
             anchor=True, slow=True)  # fmt: skip
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            rows.add(case, f"flashlight LexiconDecoder {threads} threads", lambda: list(pool.map(fl, utterances)), list,
                     {"beam": beam, "num_threads": threads}, slow=True)  # fmt: skip
    pyctc = pyctcdecode_decoder(arpa)
    options = {"beam_width": beam, "beam_prune_logp": -BEAM_THRESHOLD, "token_min_logp": TOKEN_MIN_LOGP}
    rows.add(case, "pyctcdecode 1 thread", lambda: [pyctc.decode(u, **options) for u in utterances], list,
             {"beam": beam, "token_min_logp": TOKEN_MIN_LOGP}, slow=True)  # fmt: skip
    if threads > 1:
        with multiprocessing.get_context("fork").Pool(threads) as pool:
            rows.add(case, f"pyctcdecode {threads} processes", lambda: pyctc.decode_batch(pool, utterances, **options),
                     list, {"beam": beam, "num_processes": threads}, slow=True)  # fmt: skip
    rows.add(case, "greedy (native)", lambda: ctc_greedy(log_probs, lengths, BLANK, num_threads=1), _greedy_texts, {})
    common = {
        "beam": beam,
        "token_topk": TOKEN_TOPK,
        "beam_threshold": BEAM_THRESHOLD,
        "token_min_logp": TOKEN_MIN_LOGP,
    }
    for k in sorted({1, threads}):
        ours = CtcPrefixBeamSearch(TOKENS, BLANK, "|", lm, ALPHA, BETA, num_threads=k, **LEXICON, **common)
        rows.add(case, f"ours + LM {k} thread{'s' if k > 1 else ''}", lambda ours=ours: ours(log_probs, lengths),
                 _best_texts, {**common, "num_threads": k, **LEXICON_PARAMS})  # fmt: skip
    plain = CtcPrefixBeamSearch(TOKENS, BLANK, "|", None, num_threads=1, **common)
    rows.add(case, "ours no LM 1 thread", lambda: plain(log_probs, lengths), _best_texts, {**common, "num_threads": 1})


def run(suite: Suite, quick: bool) -> None:
    """Add the ctc cases to ``suite``: per beam, every decoder on the same posteriors and LM."""
    config = QUICK if quick else FULL
    threads = _threads()
    with tempfile.TemporaryDirectory() as work_dir:
        refs, log_probs, lengths, arpa = make_data(config, work_dir)
        lm = NgramModel.from_arpa(arpa)
        utterances = [np.ascontiguousarray(log_probs[b, : lengths[b]]) for b in range(len(refs))]
        base = {
            "utterances": len(refs),
            "frames": int(lengths.sum()),
            "vocab": len(TOKENS),
            "lm": f"{config['order']}-gram mkn, {lm.vocab_size} words",
            "alpha": ALPHA,
            "beta": BETA,
            "token_topk": TOKEN_TOPK,
            "beam_threshold": BEAM_THRESHOLD,
        }
        rows = _Rows(suite, refs, base)
        for beam in config["beams"]:
            _beam_rows(rows, beam, (log_probs, lengths, utterances, arpa), lm, threads)
    rows.note()
