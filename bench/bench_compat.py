"""Benchmark of the front doors: defaults only, and the drop-in faces of pyctcdecode and torchaudio.

The same posteriors and LM for every row of a case (:mod:`speechdecode.bench.asr_common`: held-out
King James verses as CTC posteriors, a modified Kneser-Ney 3-gram from ``lm build``'s estimator on
the other verses). Every case runs on simulated posteriors and again, named ``real posteriors,
...``, on the shipped acoustic model's posteriors of the verses spoken by voices it never heard.
Every row decodes one utterance at a time on one thread.

Cases:

* ``pyctcdecode defaults`` (anchor: pyctcdecode's ``build_ctcdecoder(labels, arpa).decode`` with
  every default): :class:`CtcPrefixBeamSearch` given only the tokens and the LM, the
  :mod:`speechdecode.compat.pyctcdecode` shim with every default, and greedy decoding.
* ``torchaudio ctc_decoder`` (anchor: flashlight-text's ``LexiconDecoder`` built as torchaudio's
  ``ctc_decoder`` builds it, :func:`~speechdecode.bench.asr_common.torchaudio_flashlight`): the
  :mod:`speechdecode.compat.torchaudio` shim with the same files and arguments (tokens file, a
  lexicon of the LM's words spelled in characters plus ``|``, ``lm_weight`` = ALPHA * ln 10,
  ``word_score`` = BETA, torchaudio's other defaults: beam 50, beam_threshold 50, every token).

Each row records WER (params and the notes' table) and frames/ms. Quick mode: 3 utterances, a
3-gram from 3000 verses.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import torch

from speechdecode.bench.asr_common import (
    ALPHA,
    BETA,
    BLANK,
    REAL,
    SIMULATED,
    TOKENS,
    Rows,
    best_texts,
    case_name,
    make_data,
    text_of,
    torchaudio_flashlight,
)
from speechdecode.bench.harness import Suite
from speechdecode.compat import pyctcdecode as shim
from speechdecode.compat.torchaudio import ctc_decoder
from speechdecode.decoding import CtcPrefixBeamSearch, ctc_greedy
from speechdecode.errors import BackendUnavailableError
from speechdecode.lm import NgramModel

FULL = {"utterances": 40, "order": 3, "train": None}
QUICK = {"utterances": 3, "order": 3, "train": 3000}
LABELS = ["", " ", *TOKENS[2:]]  # pyctcdecode's conventions: "" blank, " " word boundary


def _pyctcdecode(arpa: str):
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError as exc:
        raise BackendUnavailableError(f"pyctcdecode is not installed ({exc}): pip install pyctcdecode kenlm") from None
    return build_ctcdecoder(LABELS, kenlm_model_path=arpa)


def _greedy_texts(output) -> list[str]:
    return [text_of(h.tokens.tolist()) for h in output]


def _flashlight_texts(output) -> list[str]:
    return [" ".join(words) for _, words, _, _ in output]


def _files(work_dir: str, lm: NgramModel) -> tuple[str, str]:
    """torchaudio's files: tokens (one per line) and a lexicon of the LM's words."""
    tokens, lexicon = os.path.join(work_dir, "tokens.txt"), os.path.join(work_dir, "lexicon.txt")
    with open(tokens, "w", encoding="utf-8") as handle:
        handle.write("\n".join(TOKENS) + "\n")
    words = [w for w in lm.vocab if w not in ("<s>", "</s>", "<unk>")]
    with open(lexicon, "w", encoding="utf-8") as handle:
        handle.writelines(f"{w} {' '.join(w)} |\n" for w in words)
    return tokens, lexicon


def run(suite: Suite, quick: bool) -> None:
    """Add the compat cases to ``suite``, on simulated and on real posteriors."""
    for source in (SIMULATED, REAL):
        _run_source(suite, {**(QUICK if quick else FULL), "posteriors": source})


def _run_source(suite: Suite, config: dict) -> None:
    source = config["posteriors"]
    with tempfile.TemporaryDirectory() as work_dir:
        refs, log_probs, lengths, arpa = make_data(config, work_dir)
        lm = NgramModel.load(arpa)
        utterances = [np.ascontiguousarray(log_probs[b, : lengths[b]]) for b in range(len(refs))]
        base = {"posteriors": source, "utterances": len(refs), "frames": int(lengths.sum()), "vocab": len(TOKENS),
                "lm": f"{config['order']}-gram mkn, {lm.vocab_size} words"}  # fmt: skip
        rows = Rows(suite, refs, base)

        case = case_name(source, "pyctcdecode defaults")
        theirs = _pyctcdecode(arpa)
        rows.add(case, "pyctcdecode", lambda: [theirs.decode(u) for u in utterances], list, {}, anchor=True, slow=True)
        ours = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa)
        rows.add(case, "compat.pyctcdecode shim", lambda: [ours.decode(u) for u in utterances], list, {})
        plain = CtcPrefixBeamSearch(TOKENS, lm=lm, num_threads=1)
        rows.add(case, "CtcPrefixBeamSearch(tokens, lm=lm)", lambda: [plain(u[None])[0] for u in utterances],
                 best_texts, {})  # fmt: skip
        rows.add(case, "greedy", lambda: ctc_greedy(log_probs, lengths, BLANK, num_threads=1), _greedy_texts, {})

        case = case_name(source, "torchaudio ctc_decoder")
        tokens, lexicon = _files(work_dir, lm)
        options = {"lm_weight": ALPHA * math.log(10.0), "word_score": BETA}
        anchor = torchaudio_flashlight(lexicon, tokens, arpa, **options)
        rows.add(case, "flashlight LexiconDecoder (torchaudio's)", lambda: [anchor(u) for u in utterances],
                 _flashlight_texts, {"beam": 50}, anchor=True, slow=True)  # fmt: skip
        decoder = ctc_decoder(lexicon, tokens, lm=arpa, **options)
        emissions = [torch.from_numpy(u[None]) for u in utterances]
        rows.add(case, "compat.torchaudio shim", lambda: [decoder(e)[0] for e in emissions],
                 lambda out: [" ".join(h[0].words) for h in out], {"beam": 50})  # fmt: skip
    rows.note()
