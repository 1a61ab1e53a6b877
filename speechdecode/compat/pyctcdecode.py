"""pyctcdecode's API on :class:`speechdecode.decoding.CtcPrefixBeamSearch`.

Replace ``from pyctcdecode import build_ctcdecoder`` with
``from speechdecode.compat.pyctcdecode import build_ctcdecoder``; the rest of the code stays:

    >>> decoder = build_ctcdecoder(labels, kenlm_model_path="lm.arpa")  # doctest: +SKIP
    >>> decoder.decode(logits)  # logits [T, V] numpy, as pyctcdecode takes them  # doctest: +SKIP
    >>> text, lm_state, word_frames, logit_score, lm_score = decoder.decode_beams(logits)[0]  # doctest: +SKIP

What is the same: the label conventions (``""`` or ``<pad>`` blank, ``" "`` or ``|`` word boundary,
``▁``- and ``##``-style word pieces, ``<unk>`` as ``⁇``; a blank is appended when there is none),
the parameters and their defaults, the return shapes, the logits handling (rows summing to 1 are
probabilities, anything else is log-softmaxed; then clipped at log 1e-15), and the saved folder
(``alphabet.json``, ``language_model/`` with ``attrs.json``, ``unigrams.txt`` and the LM file),
which pyctcdecode itself loads. When pyctcdecode is installed, :class:`BeamSearchDecoderCTC`
subclasses its class, so code that checks ``isinstance(decoder, pyctcdecode.BeamSearchDecoderCTC)``
(Hugging Face's ``Wav2Vec2ProcessorWithLM`` and ASR pipeline) accepts it.

What differs: the search is speechdecode's prefix beam search (C++, the GIL released): partial
words are scored by LM look-ahead (the best unigram they begin, as a lexicon decoder's smeared
trie) instead of pyctcdecode's fixed out-of-vocabulary penalty, equal LM futures are
recombined, ``unk_score_offset`` is a natural-log penalty per out-of-vocabulary word (pyctcdecode
multiplies it by ``alpha * ln 10``), and the LM's vocabulary (not ``unigrams``) decides which words
are known. ``pool`` arguments are accepted and not used: a batch is decoded in one call on all
cores, with the same results as one utterance at a time. ``prune_history`` is accepted and has no
effect (the search keeps the beam's distinct prefixes either way); beams carry ``None`` as their LM
state, and ``lm_start_state`` must be None (stream with ``CtcPrefixBeamSearch.stream()`` instead).
Hotwords are matched as token sequences (each hotword word earns ``hotword_weight`` once all its
tokens are matched, a part of it while they are). The LM may be any file
:class:`speechdecode.lm.NgramModel` loads (ARPA, plain or gzip, or a KenLM binary).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Collection, Iterable

import numpy as np

from speechdecode._io import atomic_write
from speechdecode.decoding.ctc_prefix_beam_search import CtcPrefixBeamSearch
from speechdecode.decoding.text import SPECIAL_WORDS, load_lm
from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError

try:  # subclassing pyctcdecode's class satisfies the isinstance checks of transformers
    import pyctcdecode as _pyctcdecode

    _Base = _pyctcdecode.BeamSearchDecoderCTC
except ImportError:  # pragma: no cover - pyctcdecode is in the test extra
    _pyctcdecode = None
    _Base = object

__all__ = ["Alphabet", "BeamSearchDecoderCTC", "LanguageModel", "build_ctcdecoder"]

DEFAULT_ALPHA = 0.5
DEFAULT_BETA = 1.5
DEFAULT_UNK_LOGP_OFFSET = -10.0
DEFAULT_BEAM_WIDTH = 100
DEFAULT_HOTWORD_WEIGHT = 10.0
DEFAULT_PRUNE_LOGP = -10.0
DEFAULT_PRUNE_BEAMS = False
DEFAULT_MIN_TOKEN_LOGP = -5.0
DEFAULT_SCORE_LM_BOUNDARY = True
MIN_TOKEN_CLIP_P = 1e-15

PIECE = "\u2581"
UNK = "\u2047"
UNK_PIECE = PIECE + UNK + PIECE
_BLANK_LABEL = re.compile(r"^[<\[]pad[>\]]$", re.IGNORECASE)
_UNK_LABEL = re.compile(r"^[<\[]unk[>\]]$", re.IGNORECASE)
_SPECIAL_LABEL = re.compile(r"^[<\[].+[>\]]$")


class Alphabet:
    """The decoder's labels, normalised as pyctcdecode normalises them (see :meth:`build_alphabet`)."""

    def __init__(self, labels: list[str], is_bpe: bool):
        self._labels = list(labels)
        self._is_bpe = bool(is_bpe)

    @property
    def labels(self) -> list[str]:
        """A copy of the labels."""
        return list(self._labels)

    @property
    def is_bpe(self) -> bool:
        """Word pieces (``▁`` or ``##`` style) rather than characters."""
        return self._is_bpe

    @classmethod
    def build_alphabet(cls, labels: list[str]) -> Alphabet:
        """Normalise labels: ``<pad>``/``[pad]`` (and ``_`` without ``""``) -> ``""`` (blank), ``|``
        -> ``" "`` when there is no space, ``<unk>`` -> ``⁇`` (``▁⁇▁`` for pieces), ``##x`` -> ``x``
        with other pieces as ``▁x``; a blank ``""`` is appended when none is found.

        Raises:
            InvalidArgumentError: repeated labels, or a space among word pieces.
        """
        if isinstance(labels, str) or not all(isinstance(x, str) for x in labels):
            raise InvalidArgumentError("labels", "a list of str", repr(labels)[:80])
        labels = list(labels)
        if len(set(labels)) != len(labels):
            repeated = sorted({x for x in labels if labels.count(x) > 1})
            raise InvalidArgumentError("labels", "distinct labels", f"repeated {repeated[:5]}")
        is_bpe = any(x.startswith("##") or x.startswith(PIECE) for x in labels)
        if is_bpe and any(" " in x for x in labels):
            raise InvalidArgumentError("labels", "word pieces without spaces", "a label with ' '")
        if is_bpe and any(x.startswith("##") for x in labels):
            labels = [_piece_style(x) for x in labels]
        if not is_bpe and "|" in labels and " " not in labels:
            labels[labels.index("|")] = " "
        labels = ["" if _BLANK_LABEL.match(x) else x for x in labels]
        if not is_bpe and "_" in labels and "" not in labels:
            labels[labels.index("_")] = ""
        if "" not in labels:
            labels.append("")
        unk = UNK_PIECE if is_bpe else UNK
        return cls([unk if _UNK_LABEL.match(x) else x for x in labels], is_bpe)

    def dumps(self) -> str:
        return json.dumps({"labels": self._labels, "is_bpe": self._is_bpe})

    @classmethod
    def loads(cls, text: str) -> Alphabet:
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) != {"labels", "is_bpe"}:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise InvalidArgumentError("alphabet", "a JSON object with keys 'labels' and 'is_bpe'", found)
        return cls(data["labels"], data["is_bpe"])


def _piece_style(label: str) -> str:
    if label.startswith("##"):
        return label[2:]
    if _SPECIAL_LABEL.match(label) or label in ("", PIECE, UNK_PIECE):
        return label
    return PIECE + label


class LanguageModel:
    """An n-gram LM with pyctcdecode's parameters (``alpha``, ``beta``, ``unk_score_offset``,
    ``score_boundary``), read by the decoder at each call, so setting them takes effect at once.

    Args:
        model: a :class:`speechdecode.lm.NgramModel`, or the path of an LM file.
        unigrams: the known words (saved to ``unigrams.txt``); None: the LM's words.
    """

    JSON_ATTRS = ("alpha", "beta", "unk_score_offset", "score_boundary")
    _ATTRS_SERIALIZED_FILENAME = "attrs.json"
    _UNIGRAMS_SERIALIZED_FILENAME = "unigrams.txt"

    def __init__(
        self,
        model,
        unigrams: Collection[str] | None = None,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        unk_score_offset: float = DEFAULT_UNK_LOGP_OFFSET,
        score_boundary: bool = DEFAULT_SCORE_LM_BOUNDARY,
    ):
        self.model = load_lm(model, "kenlm_model_path")
        words = [w for w in self.model.vocab if w not in SPECIAL_WORDS]
        self._unigram_set = set(words) if unigrams is None else {u for u in unigrams if u in self.model}
        self.alpha, self.beta = float(alpha), float(beta)
        self.unk_score_offset, self.score_boundary = float(unk_score_offset), bool(score_boundary)

    @property
    def order(self) -> int:
        return self.model.order

    def reset_params(self, **params) -> None:
        """Set any of ``alpha``, ``beta``, ``unk_score_offset`` (numbers) and ``score_boundary`` (bool)."""
        for name, value in params.items():
            if name not in self.JSON_ATTRS:
                raise InvalidArgumentError(name, f"one of {self.JSON_ATTRS}", repr(name))
            if value is None:
                continue
            if name == "score_boundary":
                if not isinstance(value, bool):
                    raise InvalidArgumentError(name, "a bool", repr(value))
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise InvalidArgumentError(name, "a number", repr(value))
            setattr(self, name, value if name == "score_boundary" else float(value))

    def save_to_dir(self, filepath: str) -> None:
        """Write ``attrs.json``, ``unigrams.txt`` and a copy of the LM file into ``filepath``."""
        with atomic_write(os.path.join(filepath, self._ATTRS_SERIALIZED_FILENAME)) as handle:
            json.dump({name: getattr(self, name) for name in self.JSON_ATTRS}, handle)
        with atomic_write(os.path.join(filepath, self._UNIGRAMS_SERIALIZED_FILENAME)) as handle:
            handle.writelines(u + "\n" for u in sorted(self._unigram_set))
        name = os.path.basename(self.model.path)
        if os.path.splitext(name)[1] not in (".arpa", ".bin", ".binary"):
            name += ".arpa"
        with open(self.model.path, "rb") as source, atomic_write(os.path.join(filepath, name), "wb") as target:
            shutil.copyfileobj(source, target)

    @staticmethod
    def parse_directory_contents(filepath: str) -> dict[str, str]:
        """The three files of a saved LM folder; an InputFileError naming the folder otherwise."""
        names = sorted(n for n in os.listdir(filepath) if not n.startswith((".", "__")))
        expected = f"attrs.json, unigrams.txt and an LM file (.arpa, .bin or .binary); found {names}"
        lm_files = [n for n in names if n not in ("attrs.json", "unigrams.txt")]
        missing = [n for n in ("attrs.json", "unigrams.txt") if n not in names]
        if missing or len(lm_files) != 1 or os.path.splitext(lm_files[0])[1] not in (".arpa", ".bin", ".binary"):
            raise InputFileError(filepath, None, f"expected {expected}")
        return {
            "json_attrs": os.path.join(filepath, "attrs.json"),
            "unigrams": os.path.join(filepath, "unigrams.txt"),
            "kenlm": os.path.join(filepath, lm_files[0]),
        }

    @classmethod
    def load_from_dir(cls, filepath: str, unigram_encoding: str | None = None) -> LanguageModel:
        files = cls.parse_directory_contents(filepath)
        with open(files["json_attrs"], encoding="utf-8") as handle:
            attrs = json.load(handle)
        if not isinstance(attrs, dict) or set(attrs) != set(cls.JSON_ATTRS):
            found = sorted(attrs) if isinstance(attrs, dict) else type(attrs).__name__
            raise InputFileError(files["json_attrs"], None, f"expected the keys {list(cls.JSON_ATTRS)}, got {found}")
        with open(files["unigrams"], encoding=unigram_encoding or "utf-8") as handle:
            unigrams = handle.read().splitlines()
        return cls(files["kenlm"], unigrams, **attrs)


class BeamSearchDecoderCTC(_Base):
    """pyctcdecode's decoder (see the module docstring for what is the same and what differs)."""

    if _Base is object:
        model_container: dict = {}
    _ALPHABET_SERIALIZED_FILENAME = "alphabet.json"
    _LANGUAGE_MODEL_SERIALIZED_DIRECTORY = "language_model"

    def __init__(self, alphabet: Alphabet, language_model: LanguageModel | None = None):
        self._alphabet = alphabet
        self._idx2vocab = dict(enumerate(alphabet.labels))
        self._is_bpe = alphabet.is_bpe
        self._model_key = os.urandom(16)
        BeamSearchDecoderCTC.model_container[self._model_key] = language_model
        self._searches: dict = {}
        labels = alphabet.labels
        # "▁⁇▁" ends its word too; the search reads it as the piece "▁⁇".
        self._tokens = [UNK_PIECE[:-1] if x == UNK_PIECE else x for x in labels]
        self._boundary = PIECE if alphabet.is_bpe else (" " if " " in labels else None)
        self._pieces = self._check()._pieces

    def _check(self) -> CtcPrefixBeamSearch:
        """The search of the default options (checks the labels against the LM)."""
        return self._search(DEFAULT_BEAM_WIDTH, DEFAULT_PRUNE_LOGP, DEFAULT_MIN_TOKEN_LOGP, None, 0.0, 1)

    def __getstate__(self):
        return {"alphabet": self._alphabet, "language_model": self._language_model}

    def __setstate__(self, state):
        self.__init__(state["alphabet"], state["language_model"])

    @property
    def _language_model(self) -> LanguageModel | None:
        return BeamSearchDecoderCTC.model_container[self._model_key]

    def reset_params(self, alpha=None, beta=None, unk_score_offset=None, lm_score_boundary=None) -> None:
        """Set LM parameters (None: unchanged); no effect without an LM."""
        if self._language_model is not None:
            self._language_model.reset_params(
                alpha=alpha, beta=beta, unk_score_offset=unk_score_offset, score_boundary=lm_score_boundary
            )

    def cleanup(self) -> None:
        BeamSearchDecoderCTC.model_container.pop(self._model_key, None)

    # ------------------------------------------------------------------------------------------
    # Decoding

    def _search(self, beam_width, beam_prune_logp, token_min_logp, hotwords, hotword_weight, nbest):
        lm = self._language_model
        params = None if lm is None else tuple(getattr(lm, name) for name in LanguageModel.JSON_ATTRS)
        hotwords = tuple(w for h in hotwords or () for w in h.split())
        key = (beam_width, beam_prune_logp, token_min_logp, hotwords, hotword_weight, nbest, params)
        if key not in self._searches:
            if len(self._searches) > 16:
                self._searches.clear()
            options = {
                "blank": self._tokens.index(""),
                "word_boundary": self._boundary,
                "beam": beam_width,
                "token_topk": len(self._tokens),
                "beam_threshold": -float(beam_prune_logp),
                "token_min_logp": token_min_logp,
                "nbest": nbest,
                "num_threads": None,
                "extend_best_token": True,  # "tokens below this logp are skipped unless they are argmax of frame"
            }
            if lm is not None:
                options.update(lm=lm.model, alpha=lm.alpha, beta=lm.beta, unk_score_offset=lm.unk_score_offset)
                options.update(score_boundary=lm.score_boundary)
            search = CtcPrefixBeamSearch(self._tokens, **options)
            if hotwords:
                # Each hotword word earns hotword_weight in all, spread over its tokens.
                spelled = [search._spell(w, f"hotwords[{i}]") for i, w in enumerate(hotwords)]
                phrases = [(ids, hotword_weight / len(ids)) for ids in spelled]
                search = CtcPrefixBeamSearch(self._tokens, hotwords=phrases, **options)
            self._searches[key] = search
        return self._searches[key]

    def _log_probs(self, logits, name: str = "logits") -> np.ndarray:
        """[T, V] float32 log-probabilities, as pyctcdecode prepares its input."""
        x = np.asarray(logits, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self._tokens):
            raise TensorError(name, f"shape [T, {len(self._tokens)}] (time, labels)", f"{list(x.shape)}")
        if x.shape[0] == 0:
            return x.astype(np.float32)
        if math.isclose(x.sum(axis=1).mean(), 1.0):
            x = np.log(np.clip(x, MIN_TOKEN_CLIP_P, 1.0))
        else:
            shifted = x - x.max(axis=1, keepdims=True)
            x = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            x = np.clip(x, math.log(MIN_TOKEN_CLIP_P), 0.0)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _batch(self, logits_list, options: dict, nbest: int, one: bool = False) -> list[list[tuple]]:
        """Per utterance, its beams as (text, word frames, logit score, combined score)."""
        if options.get("lm_start_state") is not None:
            raise InvalidArgumentError("lm_start_state", "None (stream with CtcPrefixBeamSearch.stream())", "a state")
        arrays = [self._log_probs(x, "logits" if one else f"logits_list[{i}]") for i, x in enumerate(logits_list)]
        if not arrays:
            return []
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        batch = np.zeros((len(arrays), max(1, int(lengths.max())), len(self._tokens)), np.float32)
        for b, a in enumerate(arrays):
            batch[b, : len(a)] = a
        search = self._search(
            options["beam_width"], options["beam_prune_logp"], options["token_min_logp"], options["hotwords"],
            options["hotword_weight"], nbest,
        )  # fmt: skip
        results = search(batch, lengths)
        # As pyctcdecode's last step: beams more than -beam_prune_logp below the best are dropped.
        floor = -float(options["beam_prune_logp"])
        results = [[h for h in hyps if h.score >= hyps[0].score - floor] for hyps in results]
        return [[self._beam(h, a) for h in hyps] for hyps, a in zip(results, arrays, strict=True)]

    def _beam(self, hypothesis, log_probs: np.ndarray) -> tuple:
        """(text, [(word, (start, end))], logit score, combined score); end is exclusive and runs
        over the frames where the word's last token stays the most likely, as pyctcdecode's does."""
        best = log_probs.argmax(axis=1)
        last: dict[int, tuple[int, int]] = {}  # word index -> (its last token with characters, frame)
        index, open_word = 0, False
        for token, frame in zip(hypothesis.tokens, hypothesis.token_frames, strict=True):
            starts, chars = self._pieces[token]
            if starts and open_word:
                index, open_word = index + 1, False
            if chars:
                last[index], open_word = (token, frame), True
        words = []
        for i, (text, (start, _)) in enumerate(zip(hypothesis.words, hypothesis.word_frames, strict=True)):
            token, frame = last[i]
            end = frame + 1
            while end < len(best) and best[end] == token:
                end += 1
            words.append((text, (start, end)))
        return " ".join(hypothesis.words), words, hypothesis.am_score, hypothesis.score

    def decode_beams(
        self,
        logits,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        prune_history: bool = DEFAULT_PRUNE_BEAMS,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        lm_start_state=None,
    ) -> list[tuple]:
        """The beams of logits [T, V], best first, with distinct texts: (text, None, [(word, (start,
        end))], logit_score, combined_score)."""
        beams = self._batch([logits], locals(), nbest=beam_width, one=True)[0]
        return [(text, None, words, logit, score) for text, words, logit, score in beams]

    def decode(
        self,
        logits,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        lm_start_state=None,
    ) -> str:
        """The best text of logits [T, V]."""
        return self._batch([logits], locals(), nbest=1, one=True)[0][0][0]

    def decode_beams_batch(
        self,
        pool,
        logits_list,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        prune_history: bool = DEFAULT_PRUNE_BEAMS,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
    ) -> list[list[tuple]]:
        """Per utterance, :meth:`decode_beams` without the LM state: (text, word frames, logit_score,
        combined_score). ``pool`` is not used: the batch is decoded at once on all cores."""
        return self._batch(logits_list, locals(), nbest=beam_width)

    def decode_batch(
        self,
        pool,
        logits_list,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
    ) -> list[str]:
        """Per utterance, :meth:`decode`. ``pool`` is not used: the batch is decoded at once on all cores."""
        return [beams[0][0] for beams in self._batch(logits_list, locals(), nbest=1)]

    # ------------------------------------------------------------------------------------------
    # Saving and loading

    def save_to_dir(self, filepath: str) -> None:
        """Write ``alphabet.json`` and, with an LM, ``language_model/`` into ``filepath`` (made if missing)."""
        os.makedirs(filepath, exist_ok=True)
        with atomic_write(os.path.join(filepath, self._ALPHABET_SERIALIZED_FILENAME)) as handle:
            handle.write(self._alphabet.dumps())
        if self._language_model is not None:
            folder = os.path.join(filepath, self._LANGUAGE_MODEL_SERIALIZED_DIRECTORY)
            os.makedirs(folder)
            self._language_model.save_to_dir(folder)

    @classmethod
    def parse_directory_contents(cls, filepath: str) -> dict[str, str | None]:
        names = [n for n in os.listdir(filepath) if not n.startswith((".", "__"))]
        if cls._ALPHABET_SERIALIZED_FILENAME not in names:
            raise InputFileError(filepath, None, f"expected alphabet.json (and language_model/), found {sorted(names)}")
        folder = os.path.join(filepath, cls._LANGUAGE_MODEL_SERIALIZED_DIRECTORY)
        return {
            "alphabet": os.path.join(filepath, cls._ALPHABET_SERIALIZED_FILENAME),
            "language_model": folder if os.path.isdir(folder) else None,
        }

    @classmethod
    def load_from_dir(cls, filepath: str, unigram_encoding: str | None = None) -> BeamSearchDecoderCTC:
        """A decoder from a folder :meth:`save_to_dir` (or pyctcdecode) wrote."""
        files = cls.parse_directory_contents(filepath)
        with open(files["alphabet"], encoding="utf-8") as handle:
            alphabet = Alphabet.loads(handle.read())
        folder = files["language_model"]
        lm = None if folder is None else LanguageModel.load_from_dir(folder, unigram_encoding)
        return cls(alphabet, lm)

    @classmethod
    def load_from_hf_hub(cls, model_id: str, cache_dir: str | None = None, **kwargs) -> BeamSearchDecoderCTC:
        """Download a model repository's decoder files with huggingface_hub and load them."""
        from huggingface_hub import snapshot_download

        return cls.load_from_dir(snapshot_download(model_id, cache_dir=cache_dir, **kwargs))


def build_ctcdecoder(
    labels: list[str],
    kenlm_model_path: str | None = None,
    unigrams: Collection[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    unk_score_offset: float = DEFAULT_UNK_LOGP_OFFSET,
    lm_score_boundary: bool = DEFAULT_SCORE_LM_BOUNDARY,
) -> BeamSearchDecoderCTC:
    """A decoder for ``labels`` (the acoustic model's outputs, by id), with an n-gram LM when
    ``kenlm_model_path`` is given (a path, or a :class:`speechdecode.lm.NgramModel`).

    Raises:
        InvalidArgumentError: repeated labels; labels that cannot spell the LM's words (naming
            examples of both).
        ArpaFormatError, OSError: the LM file cannot be read.
    """
    alphabet = Alphabet.build_alphabet(labels)
    lm = None
    if kenlm_model_path is not None:
        lm = LanguageModel(kenlm_model_path, unigrams, alpha, beta, unk_score_offset, lm_score_boundary)
    return BeamSearchDecoderCTC(alphabet, lm)
