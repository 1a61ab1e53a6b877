"""Held-out CER/WER of the acoustic model per voice: greedy and prefix search + a KJV 4-gram.

Test verses (``i % 100 == 0``, never trained on) spoken cleanly by seen voices (``SEEN_VOICES``)
and by the festival voices no training utterance used (``TEST_VOICES``). The 4-gram (modified
Kneser-Ney) is built from the training verses only. Prints a Markdown table and writes the
numbers as JSON.

    python recipes/acoustic_model/evaluate.py --weights models/weights/char_ctc.safetensors --work /work/am-data
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os

import torch

from speechdecode._io import atomic_write
from speechdecode.decoding import CtcPrefixBeamSearch, char_error_rate, word_error_rate
from speechdecode.lm import count_files, estimate, write_arpa
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--work", required=True, help="folder for the LM and the results")
    parser.add_argument("--verses", type=int, default=30, help="test verses per voice")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.jobs)
    split = kjv_split()
    texts = split["test"][: args.verses]
    arpa = kjv_4gram(args.work, split["train"])
    asr = CtcAsr.pretrained(weights=args.weights)
    tokens = list(asr.encoder.config.tokens)
    search = CtcPrefixBeamSearch(tokens, lm=arpa, partial_word_lm=True, recombine=True)
    rows = []
    with multiprocessing.Pool(args.jobs) as pool:
        for voice in (*SEEN_VOICES, *TEST_VOICES):
            audio = pool.map(speak, [(t, voice) for t in texts])
            log_probs, lengths = encode_batch(asr.encoder, audio)
            greedy = [n[0].text for n in asr.decoder(log_probs, lengths)]
            prefix = [n[0].text for n in search(log_probs, lengths)]
            row = {
                "voice": voice,
                "seen": voice not in TEST_VOICES,
                "utterances": len(texts),
                "greedy_cer": char_error_rate(texts, greedy),
                "greedy_wer": word_error_rate(texts, greedy),
                "lm_wer": word_error_rate(texts, prefix),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    for seen in (True, False):
        group = [r for r in rows if r["seen"] == seen]
        mean = {k: sum(r[k] for r in group) / len(group) for k in ("greedy_cer", "greedy_wer", "lm_wer")}
        rows.append({"voice": "all seen" if seen else "all unseen", "seen": seen, "utterances": 0, **mean})
    with atomic_write(os.path.join(args.work, "evaluation.json")) as handle:
        json.dump(rows, handle, indent=1)
    print("| voice | seen in training | greedy CER | greedy WER | prefix + 4-gram WER |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['voice']} | {'yes' if r['seen'] else 'no'} | {100 * r['greedy_cer']:.1f}% "
            f"| {100 * r['greedy_wer']:.1f}% | {100 * r['lm_wer']:.1f}% |"
        )


if __name__ == "__main__":
    main()
