"""The audio stage of ``speechdecode demo``: real speech in, text out, with the shipped acoustic model.

:func:`asr_demo` synthesizes held-out King James verses (test verses of the model's recipe) with
festival's ``ked_diphone`` voice, which no training utterance used, writes them as 16 kHz WAV
files, runs the shipped character CTC model (:meth:`speechdecode.models.CtcAsr.pretrained`) on
them and decodes its log-probs three ways: greedy, CTC prefix beam search with a KJV 3-gram
(modified Kneser-Ney, built from the recipe's training verses) and WFST beam search over the
TLG compiled from the same 3-gram. Rows give WER, CER and the real-time factor (seconds of
feature extraction + encoder + decoder per second of audio).
"""

from __future__ import annotations

import os
import time
import wave

import numpy as np

from speechdecode._io import atomic_write
from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder, char_error_rate, word_error_rate
from speechdecode.graphs import char_lexicon, compile_graph, write_lexicon
from speechdecode.lm import NgramModel, count_files, estimate, write_arpa
from speechdecode.models.acoustic import encode_batch
from speechdecode.models.audio import SAMPLE_RATE
from speechdecode.models.ctc_asr import CtcAsr
from speechdecode.testing.speech import kjv_split, synthesize

__all__ = ["VOICE", "asr_demo", "write_wav"]

VOICE = "festival:ked_diphone"
LM_ORDER = 3
BEAM = 16


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV file (atomically)."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with atomic_write(path, "wb") as handle, wave.open(handle, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def asr_demo(out_dir: str | os.PathLike, *, utterances: int = 20, lm_verses: int | None = None) -> dict:
    """Run the audio stage; files go under ``out_dir`` (which must exist).

    Args:
        utterances: held-out verses to synthesize and transcribe.
        lm_verses: training verses the 3-gram is built from (None: all of them).

    Returns:
        ``{"rows": [...], "files": {...}, "data": {...}}``; each row has ``stage`` ("audio"),
        ``what`` (the decoder), ``wer``, ``cer``, ``rtf``, ``seconds`` and ``speed`` (frames/s).
    """
    split = kjv_split()
    texts = split["test"][:utterances]
    train = split["train"] if lm_verses is None else split["train"][:lm_verses]
    files = {}
    audio_dir = os.path.join(out_dir, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    audio = []
    for i, text in enumerate(texts):
        samples = synthesize(text, VOICE)
        path = os.path.join(audio_dir, f"verse-{i:03d}.wav")
        write_wav(path, samples)
        audio.append(samples)
    files["audio/"] = audio_dir
    with atomic_write(os.path.join(audio_dir, "text.txt")) as handle:
        handle.writelines(f"verse-{i:03d}\t{t}\n" for i, t in enumerate(texts))

    corpus, arpa = os.path.join(out_dir, "kjv-train.txt"), os.path.join(out_dir, f"kjv.o{LM_ORDER}.arpa")
    with atomic_write(corpus) as handle:
        handle.write("\n".join(train) + "\n")
    write_arpa(arpa, estimate(count_files(corpus, LM_ORDER), "mkn"))
    lm = NgramModel.from_arpa(arpa)
    words = [w for w in lm.vocab if w not in ("<s>", "</s>", "<unk>")]
    asr = CtcAsr.pretrained()
    tokens = list(asr.encoder.config.tokens)
    lexicon = os.path.join(out_dir, "kjv-lexicon.txt")
    write_lexicon(lexicon, char_lexicon(words))
    graph_dir = os.path.join(out_dir, "kjv-graph")
    compile_graph(tokens, lexicon, arpa, allow_oov=True).write(graph_dir)
    files.update({"kjv.o3.arpa": arpa, "kjv-graph/": graph_dir})

    start = time.perf_counter()
    log_probs, lengths = encode_batch(asr.encoder, audio)
    encode_seconds = time.perf_counter() - start
    seconds = sum(len(a) for a in audio) / SAMPLE_RATE
    frames = int(lengths.sum())
    decoders = {
        "greedy": asr.decoder,
        "prefix + LM": CtcPrefixBeamSearch(tokens, lm=lm, partial_word_lm=True, recombine=True, beam=BEAM),
        "wfst TLG": WfstDecoder(graph_dir, beam=BEAM, word_boundary="|"),
    }
    rows = []
    for what, decoder in decoders.items():
        start = time.perf_counter()
        hyps = [n[0].text for n in decoder(log_probs, lengths)]
        spent = time.perf_counter() - start
        wer, cer = word_error_rate(texts, hyps), char_error_rate(texts, hyps)
        rows.append({
            "stage": "audio", "what": what, "backend": "native", "quality": f"WER {100 * wer:.2f}%",
            "seconds": spent, "speed": frames / spent, "speed_unit": "frames/s",
            "wer": wer, "cer": cer, "rtf": (encode_seconds + spent) / seconds,
        })  # fmt: skip
    data = {"utterances": len(texts), "voice": VOICE, "audio_seconds": seconds, "frames": frames}
    data["encode_seconds"] = encode_seconds
    data["lm"] = f"{LM_ORDER}-gram mkn, {len(train)} verses, {len(words)} words"
    return {"rows": rows, "files": files, "data": data}
