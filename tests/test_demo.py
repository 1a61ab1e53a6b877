"""speechdecode demo: its files are consistent and its table is what the decoders produce."""

import json
import subprocess
import sys
import wave

import numpy as np
import torch

from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder, ctc_greedy, word_error_rate
from speechdecode.decoding.posteriors import load_posteriors
from speechdecode.decoding.text import words_from_tokens
from speechdecode.demo.tts import SAMPLE_RATE, _codec, repetition_rate
from speechdecode.graphs import SymbolTable, load_graph, read_lexicon
from speechdecode.lm import NgramModel
from speechdecode.models import CtcAsr
from speechdecode.models.acoustic import TOKENS, encode_batch
from speechdecode.models.audio import read_wav


def test_demo_json(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "speechdecode", "demo", "--out", str(tmp_path), "--sentences", "40", "--json",
         "--audio-utterances", "3", "--audio-lm-verses", "2000"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["data"]["test_sentences"] == 40

    tokens = SymbolTable.read(tmp_path / "tokens.txt")
    lexicon = read_lexicon(tmp_path / "lexicon.txt")
    test = (tmp_path / "test.txt").read_text().splitlines()
    train = (tmp_path / "train.txt").read_text().splitlines()
    assert len(test) == 40 and len(train) == 5000
    assert {w for s in test + train for w in s.split()} <= set(lexicon)
    assert lexicon.tokens() <= set(tokens)

    posteriors = load_posteriors(tmp_path / "posteriors.npz")
    assert posteriors.log_probs.shape[0] == 40 and posteriors.log_probs.shape[2] == len(tokens)
    assert report["data"]["frames"] == int(posteriors.lengths.sum())
    # The reported WER is the WER of decoding the written posteriors against the written text.
    hyps = ctc_greedy(posteriors.log_probs, posteriors.lengths, tokens.id("<blk>"), backend="reference")
    text = [" ".join(words_from_tokens(tokens.decode(h.tokens.tolist()))) for h in hyps]
    wer = word_error_rate(test, text)
    decode = {row["backend"]: row for row in report["rows"] if row["stage"] == "decode" and row["what"] == "greedy"}
    assert set(decode) == {"reference", "native"}
    for row in decode.values():
        assert abs(row["wer"] - wer) < 1e-12 and row["speed"] > 0 and row["quality"] == f"WER {100 * wer:.2f}%"
    assert 0 < wer < 1
    # The LM stage: both backends write the same ARPA, and its perplexity is reported.
    lm_rows = [row for row in report["rows"] if row["stage"] == "lm"]
    assert [row["backend"] for row in lm_rows] == ["reference", "native"]
    native_arpa = (tmp_path / "lm.o3.native.arpa").read_bytes()
    assert native_arpa == (tmp_path / "lm.o3.reference.arpa").read_bytes()
    model = NgramModel.from_arpa(tmp_path / "lm.o3.native.arpa")
    assert lm_rows[1]["quality"] == f"ppl {model.perplexity_of(test):.2f}"
    # The graph stage wrote a TLG the WFST decoder reads; the decoders' WERs are those of their
    # transcripts of the written posteriors, and the LM-constrained searches beat greedy here.
    graph = load_graph(tmp_path / "graph")
    (graph_row,) = [row for row in report["rows"] if row["stage"] == "graph"]
    assert graph_row["quality"] == f"{graph.num_arcs:,} arcs"
    wers = {row["what"]: row["wer"] for row in report["rows"] if row["stage"] == "decode"}
    wfst = [n[0].text for n in WfstDecoder(tmp_path / "graph", beam=16, word_boundary="|")(*posteriors[:2])]
    assert wers["wfst TLG"] == word_error_rate(test, wfst)
    assert wers["wfst TLG"] < wer and wers["prefix + LM"] < wer
    # TTS: both samplers generated codes; RAS lowers the repetition rate of the same model.
    tts = {row["what"]: row for row in report["rows"] if row["stage"] == "tts"}
    codes = np.load(tmp_path / "tts_codes.npz")
    for key, row in zip(("nucleus", "ras"), tts.values(), strict=True):
        assert row["repetition_rate"] == repetition_rate(torch.from_numpy(codes[key]), codes[f"{key}_lengths"])
        assert row["tokens"] == 4 * int(codes[f"{key}_lengths"].sum())
    assert tts["RAS paper top_p=0.8"]["repetition_rate"] < tts["nucleus top_p=0.8"]["repetition_rate"]
    # tts.wav: the first RAS utterance streamed through the codec equals decoding it at once
    with wave.open(str(tmp_path / "tts.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    frames = int(codes["ras_lengths"][0])
    with torch.no_grad():
        whole = _codec(0).decode(torch.from_numpy(codes["ras"][None, :1, :, :frames]), [None]).audio_values[0, 0]
    assert pcm.size == frames * 320
    assert np.abs(pcm - np.round(whole.numpy() / np.abs(whole.numpy()).max() * 32767)).max() <= 1

    # audio: the written WAV files, encoded and decoded again with the written LM, give the
    # reported WERs (up to the 16-bit rounding of the WAV files); every decoder has a real-time factor
    audio = {row["what"]: row for row in report["rows"] if row["stage"] == "audio"}
    assert set(audio) == {"greedy", "prefix + LM", "wfst TLG"}
    refs = dict(line.split("\t") for line in (tmp_path / "audio" / "text.txt").read_text().splitlines())
    asr = CtcAsr.pretrained()
    wavs = [read_wav(tmp_path / "audio" / f"{name}.wav") for name in sorted(refs)]
    assert {w.sample_rate for w in wavs} == {16000}
    log_probs, lengths = encode_batch(asr.encoder, [w.samples for w in wavs])
    refs = [refs[name] for name in sorted(refs)]
    assert len(refs) == 3 and report["data"]["audio"]["voice"] == "festival:ked_diphone"
    prefix = CtcPrefixBeamSearch(list(TOKENS), lm=str(tmp_path / "kjv.o3.arpa"), partial_word_lm=True, recombine=True,
                                 beam=16)  # fmt: skip
    for what, decoder in (("greedy", asr.decoder), ("prefix + LM", prefix)):
        hyps = [n[0].text for n in decoder(log_probs, lengths)]
        assert abs(word_error_rate(refs, hyps) - audio[what]["wer"]) <= 0.05, what
    assert all(0 < row["rtf"] < 5 for row in audio.values())


def test_demo_table(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "speechdecode", "demo", "--out", "demo-test-output", "--sentences", "10",
         "--audio-utterances", "2", "--audio-lm-verses", "500"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    assert lines[header].split() == ["stage", "what", "backend", "quality", "ms", "speed"]
    stages = [(line[:8].strip(), line[9:31].strip(), line[32:42].strip()) for line in lines[header + 1 : header + 14]]
    assert stages == [
        ("lm", "mkn order 3", "reference"),
        ("lm", "mkn order 3", "native"),
        ("graph", "TLG compact", "openfst"),
        ("decode", "greedy", "reference"),
        ("decode", "greedy", "native"),
        ("decode", "prefix beam", "native"),
        ("decode", "prefix + LM", "native"),
        ("decode", "wfst TLG", "native"),
        ("tts", "nucleus top_p=0.8", "torch"),
        ("tts", "RAS paper top_p=0.8", "torch"),
        ("audio", "greedy", "native"),
        ("audio", "prefix + LM", "native"),
        ("audio", "wfst TLG", "native"),
    ]
    assert any(line.startswith("audio: 2 held-out verses spoken by festival:ked_diphone") for line in lines)
    assert lines[-1].startswith(f"files: {tmp_path}/demo-test-output/")
