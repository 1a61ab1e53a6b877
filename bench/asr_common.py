"""What the ASR decoder benchmarks (``bench_ctc``, ``bench_wfst``) share: data, weights, anchors, rows.

Data: held-out King James verses (every ``HOLDOUT``-th, :func:`speechdecode.testing.corpora.kjv_sentences`)
turned into CTC log-posteriors (character ``TOKENS``, ``|`` after every word, blank 0) either by
:class:`speechdecode.testing.ctc_simulator.CtcPosteriorSimulator` (``SIMULATED``) or by the shipped
acoustic model (``REAL``: :meth:`speechdecode.models.CtcAsr.pretrained`) listening to the verses
spoken by the festival voices it never heard in training, taken in turn (these verses are test
verses of its recipe, never trained on either); the LM is a modified Kneser-Ney n-gram built by
:mod:`speechdecode.lm` from the other verses and written as ARPA. Every decoder gets the same
posteriors, the same ARPA file and the same weights ``ALPHA`` and ``BETA``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from speechdecode.bench.harness import Suite
from speechdecode.decoding import word_error_rate
from speechdecode.errors import BackendUnavailableError
from speechdecode.lm import count_files, estimate, write_arpa
from speechdecode.testing.corpora import kjv_sentences
from speechdecode.testing.ctc_simulator import CtcPosteriorSimulator

TOKENS = ("-", "|", "'", *(chr(c) for c in range(ord("a"), ord("z") + 1)))
BLANK = 0
BOUNDARY = 1
HOLDOUT = 400
ALPHA = 0.5
BETA = 1.0
TOKEN_TOPK = 16
BEAM_THRESHOLD = 20.0
SLOW_ROW = {"warmup": 0, "repeats": 1, "min_seconds": 0.0}
SIMULATED, REAL = "simulated", "real"
# Blank skipping: a frame whose blank log-probability exceeds ln 0.999 is not searched.
BLANK_SKIP = math.log(0.999)


def case_name(source: str, case: str) -> str:
    """The case of a row: real-posterior cases say so, simulated ones keep their old names."""
    return case if source == SIMULATED else f"real posteriors, {case}"


def skippable(log_probs: np.ndarray, lengths: np.ndarray) -> float:
    """The share of valid frames whose blank log-probability exceeds ``BLANK_SKIP``."""
    valid = np.arange(log_probs.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return float((log_probs[..., BLANK] > BLANK_SKIP)[valid].mean())


def real_posteriors(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The shipped model's log-probs [B, T, V] float32 and lengths [B] of ``texts`` spoken by unseen voices."""
    from speechdecode.models import CtcAsr
    from speechdecode.models.acoustic import encode_batch
    from speechdecode.testing.speech import TEST_VOICES, synthesize

    asr = CtcAsr.pretrained()
    if tuple(asr.encoder.config.tokens[1:]) != TOKENS[1:]:
        raise BackendUnavailableError(f"the shipped model's tokens {asr.encoder.config.tokens} are not {TOKENS}")
    audio = [synthesize(t, TEST_VOICES[i % len(TEST_VOICES)]) for i, t in enumerate(texts)]
    log_probs, lengths = encode_batch(asr.encoder, audio)
    return log_probs.numpy(), lengths.numpy()


def make_data(config: dict, work_dir: str, seed: int = 0):
    """(reference texts, log_probs [B, T, V] float32, lengths [B], ARPA path, LM vocabulary)."""
    sentences = kjv_sentences()
    test = sentences[::HOLDOUT][: config["utterances"]]
    train = [s for i, s in enumerate(sentences) if i % HOLDOUT]
    if config["train"] is not None:
        train = train[: config["train"]]
    corpus = os.path.join(work_dir, "train.txt")
    with open(corpus, "w", encoding="utf-8") as handle:
        handle.write("\n".join(train) + "\n")
    arpa = os.path.join(work_dir, "lm.arpa")
    write_arpa(arpa, estimate(count_files(corpus, config["order"]), "mkn"))
    if config.get("posteriors", SIMULATED) == REAL:
        return (test, *real_posteriors(test), arpa)
    ids = {t: i for i, t in enumerate(TOKENS)}
    labels = [[ids[c] for c in "|".join(s.split()) + "|"] for s in test]
    simulator = CtcPosteriorSimulator(num_labels=len(TOKENS), blank=BLANK, seed=seed)
    log_probs, lengths = simulator.simulate(labels)
    return test, log_probs, lengths, arpa


def text_of(tokens) -> str:
    return " ".join("".join(TOKENS[t] for t in tokens).replace("|", " ").split())


def flashlight_decoder(arpa: str, vocab: list[str], beam: int):
    """A function decoding one utterance [T, V] float32 (C-contiguous) to text with flashlight-text."""
    try:
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            SmearingMode,
            Trie,
        )
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import create_word_dict
    except ImportError as exc:
        raise BackendUnavailableError(
            f"flashlight-text is not installed ({exc}): pip install flashlight-text"
        ) from None
    words = [w for w in vocab if w not in ("<s>", "</s>", "<unk>")]
    word_dict = create_word_dict({w: [[*w, "|"]] for w in ["<unk>", *words]})
    lm = KenLM(arpa, word_dict)
    trie = Trie(len(TOKENS), BOUNDARY)
    start = lm.start(False)
    token_ids = {t: i for i, t in enumerate(TOKENS)}
    for w in words:
        index = word_dict.get_index(w)
        trie.insert([token_ids[c] for c in w] + [BOUNDARY], index, lm.score(start, index)[1])
    trie.smear(SmearingMode.MAX)
    options = LexiconDecoderOptions(
        beam_size=beam,
        beam_size_token=TOKEN_TOPK,
        beam_threshold=BEAM_THRESHOLD,
        lm_weight=ALPHA * math.log(10.0),
        word_score=BETA,
        unk_score=-math.inf,
        sil_score=0.0,
        log_add=False,
        criterion_type=CriterionType.CTC,
    )
    unk = word_dict.get_index("<unk>")

    def decode(x: np.ndarray) -> str:
        decoder = LexiconDecoder(options, trie, lm, BOUNDARY, BLANK, unk, [], False)
        best = decoder.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
        return " ".join(word_dict.get_entry(i) for i in best.words if i >= 0)

    return decode


def torchaudio_flashlight(lexicon, tokens, lm, *, beam_size=50, beam_size_token=None, beam_threshold=50.0,
                         lm_weight=2.0, word_score=0.0, sil_score=0.0, blank="-", sil="|"):  # fmt: skip
    """flashlight-text's decoder built as torchaudio's ``ctc_decoder`` builds it (torchaudio itself
    does not install beside this torch): a token Dictionary from the tokens file; with a lexicon
    file, the word dictionary and a trie of its spellings (unigram scores, smeared by max), KenLM
    on that dictionary and a ``LexiconDecoder`` (``unk_score=-inf``, ``log_add=False``); without,
    a ``LexiconFreeDecoder`` with no LM. Returns a function [T, V] float32 -> (tokens, words,
    score, timesteps) converted from flashlight's frame path as torchaudio converts it."""
    try:
        from flashlight.lib.text import decoder as fl
        from flashlight.lib.text import dictionary
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError as exc:
        raise BackendUnavailableError(
            f"flashlight-text is not installed ({exc}): pip install flashlight-text"
        ) from None
    tokens_dict = dictionary.Dictionary(str(tokens))
    blank_id, sil_id = tokens_dict.get_index(blank), tokens_dict.get_index(sil)
    common = {
        "beam_size": beam_size,
        "beam_size_token": beam_size_token or tokens_dict.index_size(),
        "beam_threshold": beam_threshold,
        "lm_weight": lm_weight,
        "sil_score": sil_score,
        "log_add": False,
        "criterion_type": fl.CriterionType.CTC,
    }
    word_dict = None
    if lexicon is None:
        decoder = fl.LexiconFreeDecoder(fl.LexiconFreeDecoderOptions(**common), fl.ZeroLM(), sil_id, blank_id, [])
    else:
        words = dictionary.load_words(str(lexicon))
        word_dict = dictionary.create_word_dict(words)
        model = KenLM(str(lm), word_dict)
        trie = fl.Trie(tokens_dict.index_size(), sil_id)
        start = model.start(False)
        for word, spellings in words.items():
            index = word_dict.get_index(word)
            for spelling in spellings:
                trie.insert([tokens_dict.get_index(t) for t in spelling], index, model.score(start, index)[1])
        trie.smear(fl.SmearingMode.MAX)
        options = fl.LexiconDecoderOptions(**common, word_score=word_score, unk_score=-math.inf)
        unk = word_dict.get_index("<unk>")
        decoder = fl.LexiconDecoder(options, trie, model, sil_id, blank_id, unk, [], False)

    def decode(x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        best = decoder.decode(x.ctypes.data, x.shape[0], x.shape[1])[0]
        path = list(best.tokens)
        merged = [t for i, t in enumerate(path) if t != blank_id and (i == 0 or t != path[i - 1])]
        steps = [i for i, t in enumerate(path) if t != blank_id and (i == 0 or t != path[i - 1])]
        words = [word_dict.get_entry(w) for w in best.words if w >= 0] if word_dict is not None else []
        return merged, words, best.score, steps

    return decode


class _Last:
    """Runs fn and keeps its last output, so a timed run also gives the WER."""

    def __init__(self, fn):
        self.fn = fn
        self.output = None

    def __call__(self):
        self.output = self.fn()
        return self.output


class Rows:
    """Adds timed rows to the suite and keeps each one's WER (from its last timed run)."""

    def __init__(self, suite: Suite, refs: list[str], base: dict):
        self.suite, self.refs, self.base = suite, refs, base
        self.wer: list[tuple[str, str, float, float]] = []

    def add(self, case, impl, fn, texts_of, params, *, anchor=False, slow=False) -> None:
        timed = _Last(fn)
        row = self.suite.add(
            case,
            impl,
            timed,
            anchor=anchor,
            items=self.base["frames"],
            item_unit="frames",
            params={**self.base, **params},
            settings=SLOW_ROW if slow else None,
        )
        wer = word_error_rate(self.refs, texts_of(timed.output))
        row["params"]["wer"] = wer
        self.wer.append((case, impl, wer, row["items_per_s"] / 1e3))

    def note(self) -> None:
        lines = ["WER and frames/ms per decoder:", "", "| case | impl | WER | frames/ms |", "|---|---|---:|---:|"]
        lines += [f"| {c} | {i} | {w:.4f} | {f:.2f} |" for c, i, w, f in self.wer]
        self.suite.note("\n".join(lines))


def best_texts(output) -> list[str]:
    return [hyps[0].text for hyps in output]
