"""``speechdecode transcribe``: a WAV file to text with word times, with the shipped acoustic model.

Decoders: greedy (default), CTC prefix beam search with an n-gram LM (``--arpa``), or WFST beam
search over a compiled graph (``--graph``, e.g. from ``speechdecode graph compile``). Any sample
rate (resampled to 16 kHz); several channels are mixed down (a note says so). ``--streaming``
feeds the audio in ``--chunk-ms`` pieces through the streaming feature extractor, encoder and
decoder, as a live source would; the result equals offline decoding.
"""

from __future__ import annotations

import os
import re
import sys
import time

from speechdecode.cli import emit
from speechdecode.errors import InputFileError


def register(commands) -> None:
    cmd = commands.add("transcribe", "transcribe a WAV file with the shipped CTC acoustic model", run)
    cmd.add_argument("wav", metavar="FILE.wav", help="audio: PCM 8/16/24/32-bit or float WAV, any rate and channels")
    source = cmd.add_mutually_exclusive_group()
    source.add_argument("--arpa", metavar="LM", help="prefix beam search with this n-gram LM (ARPA, gzip, KenLM)")
    source.add_argument("--graph", metavar="DIR", help="WFST beam search over this compiled graph directory")
    cmd.add_argument("--weights", metavar="FILE", help="acoustic model safetensors (default: the shipped model)")
    cmd.add_argument("--streaming", action="store_true", help="feed the audio chunk by chunk")
    cmd.add_argument("--chunk-ms", type=int, default=320, help="--streaming: audio per chunk (default 320 ms)")
    cmd.add_argument("--beam", type=float, default=None, help="prefix: prefixes kept (32); wfst: cost beam (16)")
    cmd.add_argument("--alpha", type=float, default=None, help="prefix: LM weight (default 0.5)")
    cmd.add_argument("--beta", type=float, default=None, help="prefix: word insertion bonus (default 1.0)")


def _decoder(args, tokens: list[str]):
    from speechdecode._args import integer
    from speechdecode.decoding import CtcPrefixBeamSearch, GreedyCtcDecoder, WfstDecoder
    from speechdecode.graphs import SymbolTable

    if args.graph:
        path = os.path.join(args.graph, "tokens.txt")
        if os.path.isfile(path):
            # a compiled graph's table also holds <eps> and disambiguation symbols #0, #1, ...
            theirs = [s for s in SymbolTable.read(path) if s != "<eps>" and not re.fullmatch(r"#\d+", s)]
            if theirs != tokens:
                raise InputFileError(
                    path, None, f"{len(theirs)} tokens {theirs[:6]}... do not match the model's {len(tokens)} {tokens}"
                )
        beam = 16.0 if args.beam is None else args.beam
        return "wfst", WfstDecoder(args.graph, beam=beam, word_boundary="|", num_tokens=len(tokens))
    if args.arpa:
        options = {k: getattr(args, k) for k in ("alpha", "beta") if getattr(args, k) is not None}
        if args.beam is not None:
            options["beam"] = integer(args.beam, "--beam", 1)
        search = CtcPrefixBeamSearch(tokens, lm=args.arpa, partial_word_lm=True, recombine=True, **options)
        return "prefix", search
    return "greedy", GreedyCtcDecoder(tokens)


def _stream(asr, samples, chunk: int):
    """Final n-best and the partial transcripts (with the audio seconds fed) of a chunked run."""
    from speechdecode.models.audio import SAMPLE_RATE, LogMelStream

    features, stream, partials = LogMelStream(), asr.stream(), []
    for start in range(0, len(samples), chunk):
        frames = features.accept(samples[start : start + chunk])
        stream.accept(frames[None])
        best = stream.partial()[0]
        partials.append({"seconds": min(len(samples), start + chunk) / SAMPLE_RATE, "text": best.text if best else ""})
    return stream.finish()[0], partials


def run(args) -> None:
    from speechdecode._args import integer
    from speechdecode.models import CtcAsr
    from speechdecode.models.audio import SAMPLE_RATE, read_wav, resample

    chunk_ms = integer(args.chunk_ms, "--chunk-ms", 10)
    audio = read_wav(args.wav)
    for note in audio.notes:
        sys.stderr.write(f"speechdecode transcribe: note: {args.wav}: {note}\n")
    probe = CtcAsr.pretrained(weights=args.weights)
    name, decoder = _decoder(args, list(probe.encoder.config.tokens))
    asr = CtcAsr(probe.encoder, decoder, subsampling=probe.subsampling)
    begin = time.perf_counter()
    if args.streaming:
        samples = resample(audio.samples, audio.sample_rate)
        nbest, partials = _stream(asr, samples, chunk_ms * SAMPLE_RATE // 1000)
    else:
        nbest, partials = asr.transcribe_audio(audio.samples, audio.sample_rate), None
    seconds = time.perf_counter() - begin
    best = nbest[0]
    words = [{"word": w, "start": a, "end": b} for w, a, b in asr.word_times(best)]
    payload = {
        "file": args.wav,
        "sample_rate": audio.sample_rate,
        "channels": audio.channels,
        "seconds": round(audio.seconds, 3),
        "notes": audio.notes,
        "decoder": name,
        "streaming": args.streaming,
        "text": best.text,
        "words": words,
        "real_time_factor": seconds / max(audio.seconds, 1e-9),
    }
    if partials is not None:
        payload["partials"] = partials
    emit(args, payload, best.text)
