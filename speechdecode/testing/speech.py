"""Synthesized speech for the acoustic model: voices, the KJV verse split, one synthesis call.

Three Debian synthesizers speak any text: ``espeak-ng`` (accents x voice variants, rate and
pitch flags), ``flite`` (kal, kal16, awb, rms, slt) and ``festival`` (kal_diphone, ked_diphone,
cmu_us_slt_arctic_hts). ``sox`` resamples to 16 kHz and applies tempo, pitch and reverberation.
A voice is named ``"engine:name"``, e.g. ``"espeak:en-us+f3"``, ``"flite:awb"``,
``"festival:ked_diphone"``.

The split: verse ``i`` of :func:`speechdecode.testing.corpora.kjv_sentences` is a test verse when
``i % 100 == 0``, a development verse when ``i % 100 == 50``, a training verse otherwise.
Training speech uses :data:`TRAIN_VOICES` only; the festival voices (:data:`TEST_VOICES`) are
never used in training.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from speechdecode.errors import BackendUnavailableError, InvalidArgumentError
from speechdecode.testing.corpora import kjv_sentences

__all__ = [
    "ESPEAK_TRAIN_VOICES",
    "FLITE_TRAIN_VOICES",
    "TEST_VOICES",
    "TRAIN_VOICES",
    "Rendition",
    "kjv_split",
    "synthesize",
]

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_VARIANTS = (
    *(f"m{i}" for i in range(1, 8)),
    *(f"f{i}" for i in range(1, 6)),
    "klatt", "klatt2", "klatt3", "klatt4", "Alex", "Annie", "Andy", "boris", "david", "ed", "edward",
    "grandma", "grandpa", "iven", "john", "linda", "max", "michel", "norbert", "paul", "steph",
)  # fmt: skip
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
ESPEAK_TRAIN_VOICES = tuple(f"espeak:{a}+{v}" for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS)
FLITE_TRAIN_VOICES = tuple(f"flite:{v}" for v in FLITE_VOICES)
TRAIN_VOICES = ESPEAK_TRAIN_VOICES + FLITE_TRAIN_VOICES
TEST_VOICES = ("festival:kal_diphone", "festival:ked_diphone", "festival:cmu_us_slt_arctic_hts")
# The seen voices the recipe reports (each accent's default variant and every flite voice).
SEEN_VOICES = ("espeak:en-us+m1", "espeak:en-gb-scotland+f2", "espeak:en-029+m3", "flite:awb", "flite:slt")
PACKAGES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival", "sox": "sox"}


@dataclass(frozen=True)
class Rendition:
    """How one utterance is spoken: voice, the synthesizer's rate (words/min; flite stretches its
    durations by 175 / rate) and pitch (0-99, espeak only), then sox's tempo factor, pitch shift
    (cents) and reverberance (%; 0 = none)."""

    voice: str
    rate: int = 175
    pitch: int = 50
    tempo: float = 1.0
    cents: int = 0
    reverb: int = 0


def kjv_split() -> dict[str, list[str]]:
    """The KJV verses split into ``train``, ``dev`` and ``test`` (see the module docstring)."""
    split: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for i, verse in enumerate(kjv_sentences()):
        split["test" if i % 100 == 0 else "dev" if i % 100 == 50 else "train"].append(verse)
    return split


def _program(engine: str) -> str:
    name = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave", "sox": "sox"}[engine]
    path = shutil.which(name)
    if path is None:
        raise BackendUnavailableError(f"synthesis needs {name}: apt-get install -y {PACKAGES[engine]}")
    return path


def _speak(voice: str, text: str, rate: int, pitch: int) -> bytes:
    """WAV bytes of ``text`` spoken by ``voice``."""
    engine, _, name = voice.partition(":")
    if engine == "espeak":
        command = [_program(engine), "-v", name, "-s", str(rate), "-p", str(pitch), "--stdout", text]
        return subprocess.run(command, capture_output=True, check=True).stdout
    if engine == "flite":
        stretch = [] if rate == 175 else ["--setf", f"duration_stretch={175 / rate:.4f}"]
        command = [_program(engine), "-voice", name, *stretch, "-t", text, "-o", "/dev/stdout"]
        return subprocess.run(command, capture_output=True, check=True).stdout
    if engine == "festival":  # text2wave seeks in its output: a temporary file, not a pipe
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "speech.wav")
            command = [_program(engine), "-eval", f"(voice_{name})", "-o", path]
            subprocess.run(command, input=text.encode(), capture_output=True, check=True)
            with open(path, "rb") as handle:
                return handle.read()
    raise InvalidArgumentError("voice", "'espeak:NAME', 'flite:NAME' or 'festival:NAME'", repr(voice))


def synthesize(text: str, rendition: Rendition | str, sample_rate: int = 16000) -> np.ndarray:
    """float32 samples of ``text`` spoken as ``rendition`` (or a voice name), at ``sample_rate`` Hz.

    Deterministic: the synthesizers are, and sox runs with a fixed random seed and no dither.

    Raises:
        BackendUnavailableError: a needed program (espeak-ng, flite, text2wave, sox) is missing.
        InvalidArgumentError: an unknown engine in the voice name.
        subprocess.CalledProcessError: the synthesizer failed (e.g. an unknown voice).
    """
    r = Rendition(rendition) if isinstance(rendition, str) else rendition
    wav = _speak(r.voice, text, r.rate, r.pitch)
    effects = []
    if r.tempo != 1.0:
        effects += ["tempo", "-s", f"{r.tempo:.3f}"]
    if r.cents:
        effects += ["pitch", str(r.cents)]
    if r.reverb:
        effects += ["reverb", str(r.reverb)]
    command = [_program("sox"), "-R", "-D", "-t", "wav", "-", "-t", "raw", "-e", "floating-point", "-b", "32"]
    command += ["-c", "1", "-r", str(sample_rate), "-", *effects]
    raw = subprocess.run(command, input=wav, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype="<f4").copy()
