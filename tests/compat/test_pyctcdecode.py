"""speechdecode.compat.pyctcdecode against pyctcdecode itself, on the same labels, logits and LM."""

import json
import multiprocessing
import os

import numpy as np
import pytest

from speechdecode.bench.asr_common import TOKENS, make_data
from speechdecode.compat import pyctcdecode as shim
from speechdecode.decoding import word_error_rate
from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError

pyctcdecode = pytest.importorskip("pyctcdecode")
pytest.importorskip("kenlm")

LABELS = ["", " ", *TOKENS[2:]]


@pytest.fixture(scope="module")
def kjv(tmp_path_factory):
    refs, log_probs, lengths, arpa = make_data(
        {"utterances": 12, "order": 3, "train": 4000}, str(tmp_path_factory.mktemp("kjv"))
    )  # fmt: skip
    return refs, [log_probs[b, : lengths[b]] for b in range(len(refs))], arpa


def test_decodes_at_least_as_well_as_pyctcdecode_with_its_return_shapes(kjv):
    refs, utterances, arpa = kjv
    ours = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa)
    theirs = pyctcdecode.build_ctcdecoder(LABELS, kenlm_model_path=arpa)
    our_wer = word_error_rate(refs, [ours.decode(u) for u in utterances])
    assert our_wer <= word_error_rate(refs, [theirs.decode(u) for u in utterances])
    assert ours.decode_batch(None, utterances) == [ours.decode(u) for u in utterances]
    for got, want in zip(ours.decode_beams(utterances[0]), theirs.decode_beams(utterances[0])[:1], strict=False):
        assert len(got) == len(want) == 5 and isinstance(got[0], str) and got[1] is None
        assert [w for w, _ in got[2]] == got[0].split()
        assert all(isinstance(s, int) and isinstance(e, int) and s < e for _, (s, e) in got[2])
        assert isinstance(got[3], float) and isinstance(got[4], float)
    beams = ours.decode_beams(utterances[0], beam_width=8)
    texts = [b[0] for b in beams]
    assert 1 <= len(texts) <= 8 and len(set(texts)) == len(texts)
    assert [b[4] for b in beams] == sorted((b[4] for b in beams), reverse=True)
    batch = ours.decode_beams_batch(None, utterances[:2], beam_width=8)
    assert [b[0] for b in batch[0]] == texts
    assert all(len(b) == 4 for beams in batch for b in beams)


def test_a_pool_is_accepted_with_the_same_results(kjv):
    _, utterances, arpa = kjv
    decoder = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert decoder.decode_batch(pool, utterances[:3]) == decoder.decode_batch(None, utterances[:3])


@pytest.mark.parametrize(
    "labels",
    [
        ["<pad>", "<s>", "</s>", "<unk>", "|", "e", "t", "a"],
        ["", " ", "a", "b"],
        ["_", " ", "a", "b"],
        ["a", "b", " "],
        ["|", "a", "b", "[PAD]"],
        ["<pad>", "\u2581the", "\u2581a", "t", "<unk>"],
        ["[PAD]", "the", "##s", "a", "[UNK]"],
    ],
)
def test_labels_are_normalised_as_pyctcdecode_does(labels):
    want = pyctcdecode.Alphabet.build_alphabet(labels)
    got = shim.Alphabet.build_alphabet(labels)
    assert (got.labels, got.is_bpe) == (want.labels, want.is_bpe)
    # A clear path through every label (blank between repeats): both decoders read the same text.
    blank = got.labels.index("")
    path = [i for k in range(len(got.labels)) for i in (k, blank) if k != blank] * 2
    logits = np.log(np.full((len(path), len(got.labels)), 0.01) + 0.9 * np.eye(len(got.labels))[path])
    assert shim.BeamSearchDecoderCTC(got).decode(logits) == pyctcdecode.BeamSearchDecoderCTC(want).decode(logits)


def test_logits_probabilities_and_log_probabilities_decode_alike():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((15, len(LABELS))) * 4
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    decoder = shim.build_ctcdecoder(LABELS)
    assert decoder.decode(logits) == decoder.decode(probs) == decoder.decode(np.log(probs))
    assert decoder.decode(logits) == pyctcdecode.build_ctcdecoder(LABELS).decode(logits)
    with pytest.raises(TensorError, match=r"logits: expected shape \[T, 29\] \(time, labels\), got \[15, 28\]"):
        decoder.decode(logits[:, :-1])
    with pytest.raises(InvalidArgumentError, match=r"lm_start_state: expected None \(stream with"):
        decoder.decode_beams(logits, lm_start_state=object())


def test_hotwords_boost_a_word_as_in_pyctcdecode():
    labels = ["", " ", "a", "c", "o", "t"]
    p = np.full((4, 6), 0.01)
    for t, k, q in [(0, 3, 0.95), (1, 2, 0.5), (1, 4, 0.45), (2, 5, 0.95), (3, 0, 0.95)]:
        p[t, k] = q
    p /= p.sum(1, keepdims=True)
    for build in (shim.build_ctcdecoder, pyctcdecode.build_ctcdecoder):
        decoder = build(labels)
        assert decoder.decode(p) == "cat"
        assert decoder.decode(p, hotwords=["cot"]) == "cot"
        assert decoder.decode(p, hotwords=["cot"], hotword_weight=0.01) == "cat"


def test_reset_params_and_lm_attributes_take_effect(kjv):
    _, utterances, arpa = kjv
    built = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa, alpha=2.5, beta=0.2, lm_score_boundary=False)
    reset = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa)
    assert reset.decode_beams(utterances[1]) != built.decode_beams(utterances[1])
    reset.reset_params(alpha=2.5, beta=0.2, lm_score_boundary=False)
    assert reset.decode_beams(utterances[1]) == built.decode_beams(utterances[1])
    # transformers sets attributes on the container's model, as on pyctcdecode's
    again = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa)
    for name, value in {"alpha": 2.5, "beta": 0.2, "score_boundary": False}.items():
        setattr(again.model_container[again._model_key], name, value)
    assert again.decode_beams(utterances[1]) == built.decode_beams(utterances[1])
    with pytest.raises(InvalidArgumentError, match="alpha: expected a number"):
        reset.reset_params(alpha="high")


def test_saved_folders_load_both_ways(kjv, tmp_path):
    _, utterances, arpa = kjv
    ours = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa, alpha=0.7, beta=1.1)
    ours.save_to_dir(str(tmp_path / "ours"))
    assert sorted(os.listdir(tmp_path / "ours" / "language_model")) == ["attrs.json", "lm.arpa", "unigrams.txt"]
    attrs = json.loads((tmp_path / "ours" / "language_model" / "attrs.json").read_text())
    assert attrs == {"alpha": 0.7, "beta": 1.1, "unk_score_offset": -10.0, "score_boundary": True}
    loaded = shim.BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "ours"))
    assert loaded.decode_beams(utterances[0]) == ours.decode_beams(utterances[0])
    theirs = pyctcdecode.BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "ours"))
    assert theirs._alphabet.labels == ours._alphabet.labels
    assert theirs.model_container[theirs._model_key].alpha == 0.7
    assert theirs._language_model._unigram_set == ours._language_model._unigram_set
    (tmp_path / "theirs").mkdir()
    pyctcdecode.build_ctcdecoder(LABELS, kenlm_model_path=arpa, beta=0.3).save_to_dir(str(tmp_path / "theirs"))
    from_theirs = shim.BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "theirs"))
    assert from_theirs._language_model.beta == 0.3 and from_theirs.decode(utterances[0])
    os.remove(tmp_path / "ours" / "language_model" / "unigrams.txt")
    with pytest.raises(InputFileError, match=r"language_model: expected attrs.json, unigrams.txt and an LM file"):
        shim.BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "ours"))


def test_labels_that_disagree_with_the_lm_are_an_error(kjv):
    _, _, arpa = kjv
    with pytest.raises(InvalidArgumentError, match=r"LM words \[.*\] are not spelled by the tokens \[.*'A'.*case"):
        shim.build_ctcdecoder(["", " ", *(t.upper() for t in TOKENS[2:])], kenlm_model_path=arpa)
    with pytest.raises(InvalidArgumentError, match="labels: expected distinct labels"):
        shim.build_ctcdecoder(["", "a", "a"])


def test_a_kenlm_binary_lm(kjv, tmp_path):
    from speechdecode.lm import write_binary

    _, utterances, arpa = kjv
    write_binary(arpa, tmp_path / "lm.bin")
    from_binary = shim.build_ctcdecoder(LABELS, kenlm_model_path=str(tmp_path / "lm.bin"))
    from_arpa = shim.build_ctcdecoder(LABELS, kenlm_model_path=arpa)
    assert [from_binary.decode(u) for u in utterances[:4]] == [from_arpa.decode(u) for u in utterances[:4]]
    from_binary.save_to_dir(str(tmp_path / "saved"))
    assert "lm.bin" in os.listdir(tmp_path / "saved" / "language_model")
    theirs = pyctcdecode.BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "saved"))
    assert theirs.decode(utterances[0])  # kenlm reads the saved binary


def test_a_frames_best_token_is_extended_below_token_min_logp():
    # 200 labels: a flat frame's best token sits below token_min_logp = -5 after log-softmax
    labels = ["", " ", "a", "b", *(chr(0x3B1 + i) for i in range(196))]
    logits = np.zeros((3, len(labels)))
    logits[0, 2] = 0.2  # "a" leads a flat frame, at log p -5.1 (200 labels)
    logits[1:, 0] = 12.0  # then blanks
    log_p = logits[0] - np.log(np.exp(logits[0]).sum())
    assert log_p.max() < -5 and log_p.argmax() == 2
    assert shim.build_ctcdecoder(labels).decode(logits) == pyctcdecode.build_ctcdecoder(labels).decode(logits) == "a"
    from speechdecode.decoding import CtcPrefixBeamSearch

    x = (logits - np.log(np.exp(logits).sum(1, keepdims=True)))[None].astype(np.float32)
    assert CtcPrefixBeamSearch(labels, token_min_logp=-5.0)(x)[0][0].text == ""  # without the rule
    assert CtcPrefixBeamSearch(labels, token_min_logp=-5.0, extend_best_token=True)(x)[0][0].text == "a"
