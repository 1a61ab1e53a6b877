"""``speechdecode demo``: every stage that exists, on a data set the demo makes itself.

Data: sentences from :class:`speechdecode.lm.SentenceGenerator` (a training corpus for the LM
stages and held-out test sentences), a character lexicon and token table for its vocabulary,
and simulated CTC posteriors (:class:`speechdecode.models.CtcPosteriorSimulator`) of the
test sentences. ASR stages: building a modified Kneser-Ney LM from the training text on every
CPU backend (perplexity of the held-out text, speed); compiling the TLG decoding graph from the
tokens, the lexicon and that LM; decoding the posteriors with every decoder (greedy on every CPU
backend, CTC prefix beam search without and with the LM, WFST beam search over the TLG: WER and
speed). TTS stage: codec-LM generation on a random-weight reference model with the delay
pattern, duration-guided masks and stopping, with and without repetition-aware sampling
(:func:`speechdecode.demo.tts.tts_demo`: tokens/s, real-time factor, repetition rate).
Audio stage: held-out King James verses synthesized with a voice the shipped acoustic model never
heard, written as WAV files and transcribed by that model with greedy, prefix + LM and WFST
decoding (:func:`speechdecode.demo.asr.asr_demo`: WER, CER, real-time factor).
"""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np

from speechdecode import _args, _backend
from speechdecode._io import output_folder
from speechdecode._progress import progress
from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder, char_error_rate, ctc_greedy, word_error_rate
from speechdecode.decoding.posteriors import save_posteriors
from speechdecode.decoding.text import words_from_tokens
from speechdecode.demo.asr import asr_demo
from speechdecode.demo.tts import tts_demo
from speechdecode.graphs import char_lexicon, char_tokens, compile_graph, write_lexicon
from speechdecode.lm import NgramModel, count_files, estimate, write_arpa
from speechdecode.testing import CtcPosteriorSimulator, SentenceGenerator, write_corpus

TRAIN_SENTENCES = 5000
# Frame rate of a typical CTC encoder: 10 ms features subsampled 4x.
FRAME_SECONDS = 0.04
REPEATS = 5
LM_ORDER = 3
BEAM = 16


def _time(fn) -> tuple[float, object]:
    """Median seconds of REPEATS runs after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def _row(stage: str, what: str, backend: str, quality: str, seconds: float, speed: float, unit: str) -> dict:
    return {
        "stage": stage,
        "what": what,
        "backend": backend,
        "quality": quality,
        "seconds": seconds,
        "speed": speed,
        "speed_unit": unit,
    }


def run_demo(
    out_dir: str | os.PathLike = "demo-output",
    sentences: int = 200,
    seed: int = 0,
    audio_utterances: int = 20,
    audio_lm_verses: int | None = None,
) -> dict:
    """Make the data set under ``out_dir``, run every stage, return the report (see :func:`format_report`).

    ``audio_utterances`` held-out verses go through the audio stage (0 skips it), whose 3-gram is
    built from ``audio_lm_verses`` training verses (None: all).
    """
    audio_utterances = _args.integer(audio_utterances, "audio_utterances", 0)
    out_dir = output_folder(os.path.abspath(out_dir))
    files = {name: os.path.join(out_dir, name) for name in ("train.txt", "test.txt", "lexicon.txt", "tokens.txt")}
    files["posteriors.npz"] = os.path.join(out_dir, "posteriors.npz")

    bar = progress(total=6 if audio_utterances else 5, desc="demo", unit="stage")
    generator = SentenceGenerator(seed)
    corpus = generator.sentences(TRAIN_SENTENCES + sentences)
    train, test = corpus[:TRAIN_SENTENCES], corpus[TRAIN_SENTENCES:]
    write_corpus(files["train.txt"], train)
    write_corpus(files["test.txt"], test)
    lexicon = char_lexicon(generator.vocabulary)
    tokens = char_tokens(generator.vocabulary)
    write_lexicon(files["lexicon.txt"], lexicon)
    tokens.write(files["tokens.txt"])
    bar.update()

    labels = [tokens.encode([t for word in s.split() for t in lexicon[word][0].tokens]) for s in test]
    simulator = CtcPosteriorSimulator(len(tokens), blank=tokens.id("<blk>"), seed=seed)
    log_probs, lengths = simulator.simulate(labels)
    utt_ids = [f"test-{i:05d}" for i in range(len(test))]
    save_posteriors(files["posteriors.npz"], log_probs, lengths, utt_ids)
    bar.update()

    frames = int(lengths.sum())
    rows, notes = [], set()
    # Triton on CPU would run in its interpreter: a correctness tool, not a speed figure.
    backends = [b for b in _backend.available("cpu") if b != "triton"]
    train_words = sum(len(t.split()) for t in train)
    for backend in backends:
        arpa = os.path.join(out_dir, f"lm.o{LM_ORDER}.{backend}.arpa")

        def build(b=backend, path=arpa):
            counts = count_files([files["train.txt"]], LM_ORDER, backend=b)
            write_arpa(path, estimate(counts, "mkn", backend=b))

        with warnings.catch_warnings(record=True) as caught:  # a 300-word vocabulary: few singletons
            warnings.simplefilter("always")
            seconds, _ = _time(build)
        notes.update(str(w.message) for w in caught)
        files[os.path.basename(arpa)] = arpa
        model = NgramModel.from_arpa(arpa)
        rows.append(
            _row(
                "lm",
                f"mkn order {LM_ORDER}",
                backend,
                f"ppl {model.perplexity_of(test):.2f}",
                seconds,
                train_words / seconds,
                "words/s",
            )
        )
    bar.update()

    arpa = files[f"lm.o{LM_ORDER}.native.arpa"]
    graph_dir = os.path.join(out_dir, "graph")
    # The LM knows <unk>, which no lexicon spells: its n-grams are dropped (and counted).
    seconds, graph = _time(lambda: compile_graph(files["tokens.txt"], files["lexicon.txt"], arpa, allow_oov=True))
    graph.write(graph_dir)
    files["graph/"] = graph_dir
    stats = graph.stats()
    rows.append(
        _row("graph", "TLG compact", "openfst", f"{stats['tlg_arcs']:,} arcs", seconds, stats["tlg_arcs"] / seconds,
             "arcs/s")
    )  # fmt: skip
    bar.update()

    def decode_row(what: str, backend: str, decode) -> None:
        seconds, texts = _time(decode)
        wer, cer = word_error_rate(test, texts), char_error_rate(test, texts)
        row = _row("decode", what, backend, f"WER {100 * wer:.2f}%", seconds, frames / seconds, "frames/s")
        rows.append({**row, "wer": wer, "cer": cer, "rtf": seconds / (frames * FRAME_SECONDS)})

    blank = tokens.id("<blk>")
    for backend in backends:
        decode_row(
            "greedy", backend,
            lambda b=backend: [
                " ".join(words_from_tokens(tokens.decode(h.tokens.tolist())))
                for h in ctc_greedy(log_probs, lengths, blank, backend=b)
            ],
        )  # fmt: skip
    symbols = list(tokens)
    lm = NgramModel.from_arpa(arpa)
    searches = {
        "prefix beam": CtcPrefixBeamSearch(symbols, blank=blank, beam=BEAM),
        # Words restricted to the LM's vocabulary, unfinished words scored by look-ahead, equal
        # futures recombined: what a lexicon decoder does (without look-ahead, an unfinished word
        # pays nothing and beats finished out-of-vocabulary words in the beam).
        "prefix + LM": CtcPrefixBeamSearch(
            symbols,
            blank=blank,
            beam=BEAM,
            lm=lm,
            partial_word_lm=True,
            unk_score_offset=-math.inf,
            recombine=True,
            viterbi=True,
        ),
        "wfst TLG": WfstDecoder(graph_dir, beam=BEAM, word_boundary="|"),
    }
    for what, search in searches.items():
        decode_row(what, "native", lambda s=search: [n[0].text for n in s(log_probs, lengths)])
    bar.update()

    tts = tts_demo(out_dir, seed=seed)
    rows += tts["rows"]
    files.update(tts["files"])
    bar.update()
    audio = None
    if audio_utterances:
        audio = asr_demo(out_dir, utterances=audio_utterances, lm_verses=audio_lm_verses)
        rows += audio["rows"]
        files.update(audio["files"])
        bar.update()
    bar.close()
    return {
        "out_dir": out_dir,
        "files": files,
        "data": {
            "train_sentences": len(train),
            "test_sentences": len(test),
            "vocabulary": len(generator.vocabulary),
            "tokens": len(tokens),
            "frames": frames,
            "audio_seconds": frames * FRAME_SECONDS,
            "log_probs_shape": list(log_probs.shape),
            "audio": None if audio is None else audio["data"],
        },
        "rows": rows,
        "notes": sorted(notes),
    }


def format_report(report: dict) -> str:
    """The report as one plain-text table plus where the files are."""
    data = report["data"]
    lines = [
        f"speechdecode demo: {data['train_sentences']} training sentences, {data['test_sentences']} held-out "
        f"sentences ({data['frames']} frames = {data['audio_seconds']:.0f} s of audio at "
        f"{FRAME_SECONDS * 1000:.0f} ms/frame), {data['tokens']} tokens, {data['vocabulary']}-word vocabulary",
        "",
        f"{'stage':<8} {'what':<22} {'backend':<10} {'quality':<17} {'ms':>9} {'speed':>22}",
    ]
    for row in report["rows"]:
        lines.append(
            f"{row['stage']:<8} {row['what']:<22} {row['backend']:<10} {row['quality']:<17} "
            f"{1000 * row['seconds']:>9.2f} {row['speed']:>13,.0f} {row['speed_unit']:<8}"
        )
    audio = data.get("audio")
    if audio:
        lines.append(
            f"audio: {audio['utterances']} held-out verses spoken by {audio['voice']} (unseen in training), "
            f"{audio['audio_seconds']:.0f} s; LM {audio['lm']}; real-time factors (features + model + decoder): "
            + ", ".join(f"{r['what']} {r['rtf']:.3f}" for r in report["rows"] if r["stage"] == "audio")
        )
    lines += [f"note: {note}" for note in report["notes"]]
    lines += ["", f"files: {report['out_dir']}/ ({', '.join(sorted(report['files']))})"]
    return "\n".join(lines)
