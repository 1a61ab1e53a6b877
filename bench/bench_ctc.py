"""Benchmark of CTC decoding with an n-gram LM (:class:`speechdecode.decoding.CtcPrefixBeamSearch`).

Data, weights and the flashlight anchor: :mod:`speechdecode.bench.asr_common` (held-out King
James verses as CTC posteriors, a modified Kneser-Ney n-gram from the other verses). Every case
runs twice: on simulated posteriors, and on the shipped acoustic model's real posteriors of the
verses spoken by voices it never heard (cases named ``real posteriors, ...``), same LM.

Decoders per beam (``BEAMS``):

* anchor: flashlight-text's ``LexiconDecoder`` with its KenLM, lexicon = the LM's words spelled in
  characters plus ``|`` (``beam_size`` = beam, ``beam_size_token`` = ``TOKEN_TOPK``,
  ``beam_threshold`` = ``BEAM_THRESHOLD``, ``lm_weight`` = ALPHA * ln 10, ``word_score`` = BETA);
* pyctcdecode's ``build_ctcdecoder`` with its kenlm ``LanguageModel`` (``beam_width`` = beam,
  ``beam_prune_logp`` = -BEAM_THRESHOLD, ``token_min_logp`` = ``TOKEN_MIN_LOGP``);
* ours: :class:`CtcPrefixBeamSearch` with the LM (``LEXICON``: LM words only, partial words
  scored by look-ahead, and, as flashlight's ``log_add=False`` decoder, prefixes with equal futures
  recombined and alignments merged by max), on one thread and on every core, and without LM;
  plus greedy decoding, and ours + LM with blank skipping (frames whose blank probability
  exceeds 0.999 not searched, ``BLANK_SKIP``); each case's params give the share of such frames.

The "both cores" rows of the anchors run the utterances on a thread pool (flashlight) or a
process pool (pyctcdecode's ``decode_batch``). Each row records WER (in its params and in the
notes' table) and frames/ms (items/s with item = frame). Quick mode: 3 utterances, a 3-gram from
3000 verses, beam 10 only.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from speechdecode.bench.asr_common import (
    ALPHA,
    BEAM_THRESHOLD,
    BETA,
    BLANK,
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
    text_of,
)
from speechdecode.bench.harness import Suite, usable_cores
from speechdecode.decoding import CtcPrefixBeamSearch, ctc_greedy
from speechdecode.errors import BackendUnavailableError
from speechdecode.lm import NgramModel

TOKEN_MIN_LOGP = -10.0
FULL = {"utterances": 40, "order": 4, "train": None, "beams": (10, 50, 100)}
QUICK = {"utterances": 3, "order": 3, "train": 3000, "beams": (10,)}
# Ours spells LM words only, as flashlight's lexicon decoder (unk_score = -inf) does; partial
# words are scored by LM look-ahead, as flashlight's smeared trie (SmearingMode.MAX) scores them;
# prefixes with the same LM state, unfinished word and last token are recombined and alignments
# merge by max, as flashlight merges equal states (log_add=False).
LEXICON = {"partial_word_lm": True, "unk_score_offset": float("-inf"), "recombine": True, "viterbi": True}
LEXICON_PARAMS = {**LEXICON, "unk_score_offset": "-inf"}  # JSON has no -inf


def pyctcdecode_decoder(arpa: str):
    """pyctcdecode's decoder with its kenlm LanguageModel on the ARPA file."""
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError as exc:
        raise BackendUnavailableError(f"pyctcdecode is not installed ({exc}): pip install pyctcdecode kenlm") from None
    labels = ["", " ", *TOKENS[2:]]
    return build_ctcdecoder(labels, kenlm_model_path=arpa, alpha=ALPHA, beta=BETA)


def _greedy_texts(output) -> list[str]:
    return [text_of(h.tokens.tolist()) for h in output]


def _beam_rows(rows: Rows, case: str, beam: int, data, lm: NgramModel, threads: int) -> None:
    """The rows of one beam: anchors, greedy, ours with and without the LM and blank skipping."""
    log_probs, lengths, utterances, arpa = data
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
                 best_texts, {**common, "num_threads": k, **LEXICON_PARAMS})  # fmt: skip
    skip = CtcPrefixBeamSearch(TOKENS, BLANK, "|", lm, ALPHA, BETA, num_threads=1, blank_skip_threshold=BLANK_SKIP,
                               **LEXICON, **common)  # fmt: skip
    rows.add(case, "ours + LM 1 thread, blank skip", lambda: skip(log_probs, lengths), best_texts,
             {**common, "num_threads": 1, **LEXICON_PARAMS, "blank_skip_threshold": BLANK_SKIP})  # fmt: skip
    plain = CtcPrefixBeamSearch(TOKENS, BLANK, "|", None, num_threads=1, **common)
    rows.add(case, "ours no LM 1 thread", lambda: plain(log_probs, lengths), best_texts, {**common, "num_threads": 1})


def run(suite: Suite, quick: bool) -> None:
    """Add the ctc cases to ``suite``: per source and beam, every decoder on the same posteriors and LM."""
    for source in (SIMULATED, REAL):
        _run_source(suite, {**(QUICK if quick else FULL), "posteriors": source})


def _run_source(suite: Suite, config: dict) -> None:
    threads = usable_cores()
    source = config["posteriors"]
    with tempfile.TemporaryDirectory() as work_dir:
        refs, log_probs, lengths, arpa = make_data(config, work_dir)
        lm = NgramModel.from_arpa(arpa)
        utterances = [np.ascontiguousarray(log_probs[b, : lengths[b]]) for b in range(len(refs))]
        base = {
            "posteriors": source,
            "utterances": len(refs),
            "frames": int(lengths.sum()),
            "blank_skippable": skippable(log_probs, lengths),
            "vocab": len(TOKENS),
            "lm": f"{config['order']}-gram mkn, {lm.vocab_size} words",
            "alpha": ALPHA,
            "beta": BETA,
            "token_topk": TOKEN_TOPK,
            "beam_threshold": BEAM_THRESHOLD,
        }
        rows = Rows(suite, refs, base)
        for beam in config["beams"]:
            data = (log_probs, lengths, utterances, arpa)
            _beam_rows(rows, case_name(source, f"beam {beam}"), beam, data, lm, threads)
    rows.note()
