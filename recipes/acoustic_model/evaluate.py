"""Held-out CER/WER of the acoustic model per voice: greedy and prefix search + a KJV 4-gram.

Test verses (``i % 100 == 0``, never trained on) spoken cleanly by seen voices (``SEEN_VOICES``)
and by the festival voices no training utterance used (``TEST_VOICES``). The 4-gram (modified
Kneser-Ney) is built from the training verses only. The prefix search runs twice: with the
library's defaults (open vocabulary: a spelling outside the LM costs ``unk_score_offset``), and
spelling the LM's words only (``unk_score_offset=-inf``) with ``alpha`` and ``beta`` chosen on
development verses (``i % 100 == 50``, in neither the training nor the LM text) spoken by the
seen voices, so the unseen voices and the test verses play no part in any choice. Prints a
Markdown table and writes the numbers as JSON.

    python recipes/acoustic_model/evaluate.py --weights models/weights/char_ctc.safetensors --work /work/am-data
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os

import torch

from speechdecode._io import atomic_write
from speechdecode.decoding import CtcPrefixBeamSearch, char_error_rate, word_error_rate
from speechdecode.lm import NgramModel, count_files, estimate, write_arpa
from speechdecode.models import CtcAsr
from speechdecode.models.acoustic import encode_batch
from speechdecode.testing.speech import SEEN_VOICES, TEST_VOICES, kjv_split, synthesize


def speak(job):
    text, voice = job
    return synthesize(text, voice)


def kjv_4gram(work: str, verses: list[str]) -> str:
    corpus, arpa = os.path.join(work, "lm-train.txt"), os.path.join(work, "kjv.o4.arpa")
    with atomic_write(corpus) as handle:
        handle.write("\n".join(verses) + "\n")
    write_arpa(arpa, estimate(count_files(corpus, 4), "mkn"))
    return arpa


# The grid the LM weights are chosen from on the development verses.
ALPHAS = (0.3, 0.5, 0.8, 1.2)
BETAS = (0.0, 1.0, 2.0, 3.0)


def tune(pool, asr, lm, verses: list[str]) -> tuple[float, float, float]:
    """(alpha, beta, WER) of the best word-constrained search over ``verses`` spoken by the seen voices."""
    jobs = [(t, v) for v in SEEN_VOICES for t in verses]
    log_probs, lengths = encode_batch(asr.encoder, pool.map(speak, jobs))
    texts, tokens = [t for t, _ in jobs], list(asr.encoder.config.tokens)
    scored = []
    for alpha, beta in itertools.product(ALPHAS, BETAS):
        search = CtcPrefixBeamSearch(tokens, lm=lm, alpha=alpha, beta=beta, unk_score_offset=-math.inf)
        scored.append((word_error_rate(texts, [n[0].text for n in search(log_probs, lengths)]), alpha, beta))
    wer, alpha, beta = min(scored)
    return alpha, beta, wer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--work", required=True, help="folder for the LM and the results")
    parser.add_argument("--verses", type=int, default=30, help="test verses per voice")
    parser.add_argument("--dev-verses", type=int, default=20, help="development verses per seen voice (LM weights)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.jobs)
    split = kjv_split()
    texts = split["test"][: args.verses]
    lm = NgramModel.from_arpa(kjv_4gram(args.work, split["train"]))
    asr = CtcAsr.pretrained(weights=args.weights)
    tokens = list(asr.encoder.config.tokens)
    search = CtcPrefixBeamSearch(tokens, lm=lm)
    rows = []
    with multiprocessing.Pool(args.jobs) as pool:
        alpha, beta, dev_wer = tune(pool, asr, lm, split["dev"][: args.dev_verses])
        print(f"LM weights from the development verses: alpha {alpha}, beta {beta} (WER {100 * dev_wer:.1f}%)")
        words_only = CtcPrefixBeamSearch(tokens, lm=lm, alpha=alpha, beta=beta, unk_score_offset=-math.inf)
        for voice in (*SEEN_VOICES, *TEST_VOICES):
            audio = pool.map(speak, [(t, voice) for t in texts])
            log_probs, lengths = encode_batch(asr.encoder, audio)
            greedy = [n[0].text for n in asr.decoder(log_probs, lengths)]
            prefix = [n[0].text for n in search(log_probs, lengths)]
            tuned = [n[0].text for n in words_only(log_probs, lengths)]
            row = {
                "voice": voice,
                "seen": voice not in TEST_VOICES,
                "utterances": len(texts),
                "greedy_cer": char_error_rate(texts, greedy),
                "greedy_wer": word_error_rate(texts, greedy),
                "lm_wer": word_error_rate(texts, prefix),
                "lm_words_wer": word_error_rate(texts, tuned),
                "alpha": alpha,
                "beta": beta,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    for seen in (True, False):
        group = [r for r in rows if r["seen"] == seen]
        keys = ("greedy_cer", "greedy_wer", "lm_wer", "lm_words_wer")
        mean = {k: sum(r[k] for r in group) / len(group) for k in keys}
        rows.append({"voice": "all seen" if seen else "all unseen", "seen": seen, "utterances": 0, **mean})
    with atomic_write(os.path.join(args.work, "evaluation.json")) as handle:
        json.dump(rows, handle, indent=1)
    print("| voice | seen in training | greedy CER | greedy WER | prefix + 4-gram WER, defaults | LM words, tuned |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['voice']} | {'yes' if r['seen'] else 'no'} | {100 * r['greedy_cer']:.1f}% "
            f"| {100 * r['greedy_wer']:.1f}% | {100 * r['lm_wer']:.1f}% | {100 * r['lm_words_wer']:.1f}% |"
        )


if __name__ == "__main__":
    main()
