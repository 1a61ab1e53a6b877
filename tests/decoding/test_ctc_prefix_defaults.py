"""CtcPrefixBeamSearch as a new user meets it: defaults only, their label conventions, their mistakes.

The anchors are greedy decoding and pyctcdecode with its own defaults, on the same held-out King
James verses (simulated posteriors) and the same ARPA 3-gram.
"""

import numpy as np
import pytest

from speechdecode.bench.asr_common import TOKENS, make_data, text_of
from speechdecode.decoding import CtcPrefixBeamSearch, ctc_greedy, word_error_rate
from speechdecode.errors import InvalidArgumentError
from speechdecode.lm import NgramModel, count_sentences, estimate, write_arpa
from speechdecode.testing import CtcPosteriorSimulator
from speechdecode.testing.corpora import kjv_sentences

pyctcdecode = pytest.importorskip("pyctcdecode")

CONFIG = {"utterances": 16, "order": 3, "train": 4000}


@pytest.fixture(scope="module")
def kjv(tmp_path_factory):
    return make_data(CONFIG, str(tmp_path_factory.mktemp("kjv")))


def _pyctcdecode_wer(labels, arpa, refs, log_probs, lengths):
    decoder = pyctcdecode.build_ctcdecoder(labels, kenlm_model_path=str(arpa))
    texts = [decoder.decode(log_probs[b, : lengths[b]]) for b in range(len(refs))]
    return word_error_rate(refs, texts)


@pytest.fixture(scope="module")
def anchors(kjv):
    """Greedy's and pyctcdecode's (every default) WER on the KJV data."""
    refs, log_probs, lengths, arpa = kjv
    greedy = word_error_rate(refs, [text_of(h.tokens.tolist()) for h in ctc_greedy(log_probs, lengths, 0)])
    return greedy, _pyctcdecode_wer(["", " ", *TOKENS[2:]], arpa, refs, log_probs, lengths)


@pytest.mark.parametrize("style", ["wav2vec2", "pyctcdecode"])
def test_defaults_beat_greedy_and_match_pyctcdecode_defaults(kjv, anchors, style):
    refs, log_probs, lengths, arpa = kjv
    labels = list(TOKENS) if style == "wav2vec2" else ["", " ", *TOKENS[2:]]
    ours = word_error_rate(refs, [n[0].text for n in CtcPrefixBeamSearch(labels, lm=arpa)(log_probs, lengths)])
    greedy, theirs = anchors
    assert ours < greedy and ours <= theirs, (ours, greedy, theirs)


def test_defaults_with_sentencepiece_pieces(tmp_path):
    sentencepiece = pytest.importorskip("sentencepiece")
    verses = kjv_sentences()
    train, test = verses[:3000], verses[3000::400][:12]
    (tmp_path / "text.txt").write_text("\n".join(train) + "\n")
    sentencepiece.SentencePieceTrainer.train(
        input=str(tmp_path / "text.txt"), model_prefix=str(tmp_path / "sp"), vocab_size=300, model_type="bpe",
        minloglevel=2, bos_id=-1, eos_id=-1, unk_id=0, character_coverage=1.0,
    )  # fmt: skip
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    pieces = ["<pad>" if i == 0 else sp.id_to_piece(i) for i in range(sp.get_piece_size())]  # id 0 (unk) as blank
    write_arpa(tmp_path / "lm.arpa", estimate(count_sentences(train, order=3), "mkn"))
    labels = [[i for i in sp.encode(s) if i != 0] for s in test]
    log_probs, lengths = CtcPosteriorSimulator(len(pieces), blank=0, seed=2).simulate(labels)
    greedy = word_error_rate(
        test, [sp.decode([int(t) for t in h.tokens]) for h in ctc_greedy(log_probs, lengths, 0)]
    )  # fmt: skip
    search = CtcPrefixBeamSearch(pieces, lm=tmp_path / "lm.arpa")
    assert search.word_boundary == "\u2581"
    ours = word_error_rate(test, [n[0].text for n in search(log_probs, lengths)])
    theirs = _pyctcdecode_wer(pieces, tmp_path / "lm.arpa", test, log_probs, lengths)
    assert ours < greedy and ours <= theirs, (ours, greedy, theirs)


def _lm(tmp_path, sentences):
    write_arpa(tmp_path / "lm.arpa", estimate(count_sentences(sentences, order=2), "witten-bell"))
    return NgramModel.from_arpa(tmp_path / "lm.arpa")


def test_labels_that_cannot_spell_the_lm_are_named(tmp_path):
    lm = _lm(tmp_path, ["the cat sat", "a cat ran", "the dog sat"])
    upper = ["-", "|", *"ACDEGHNORST"]
    with pytest.raises(InvalidArgumentError, match=r"lm: .*LM words \[.*'the'.*tokens \[.*'A'.*case mismatch"):
        CtcPrefixBeamSearch(upper, lm=lm)
    with pytest.raises(InvalidArgumentError, match=r"LM words .* are not spelled by the tokens \[.*'x'"):
        CtcPrefixBeamSearch(["-", "|", "x", "y"], lm=lm)
    with pytest.warns(UserWarning, match=r"lm: 1 of 6 LM words can be spelled; LM words \[.*\] .*tokens \["):
        CtcPrefixBeamSearch(["-", "|", "a"], lm=lm)
    CtcPrefixBeamSearch(["-", "|", *"acdeghnorst"], lm=lm)  # every word spelled: no warning (warnings are errors)


def test_boundary_and_blank_conventions(tmp_path):
    lm = _lm(tmp_path, ["ab ba", "ab ab"])
    assert CtcPrefixBeamSearch(["-", "|", "a", "b"]).word_boundary == "|"
    pyctc = CtcPrefixBeamSearch(["", " ", "a", "b"], lm=lm)
    assert pyctc.word_boundary == " " and pyctc.blank == 0
    assert CtcPrefixBeamSearch(["a", "b", " ", ""], blank="").blank == 3
    assert CtcPrefixBeamSearch(["<pad>", "\u2581a", "b"]).word_boundary == "\u2581"
    assert CtcPrefixBeamSearch(["-", "a", "b"]).word_boundary is None
    with pytest.raises(InvalidArgumentError, match=r"word_boundary: .*\[' ', 'a', 'b'\].*got '\|'"):
        CtcPrefixBeamSearch(["", " ", "a", "b"], word_boundary="|")
    with pytest.raises(InvalidArgumentError, match=r"word_boundary: expected a word boundary for an LM of words"):
        CtcPrefixBeamSearch(["-", "a", "b"], lm=lm)  # no boundary token: every token would be a word
    assert CtcPrefixBeamSearch(["-", "ab", "ba"], lm=lm).word_boundary is None  # word tokens: fine
    with pytest.raises(InvalidArgumentError, match=r"blank: expected a label id in \[0, 4\), got 4"):
        CtcPrefixBeamSearch(["", " ", "a", "b"], blank=4)
    # pyctcdecode's labels decode into words at the " " token
    x = np.log(np.full((1, 6, 4), 0.01, np.float32) + 0.96 * np.eye(4, dtype=np.float32)[[2, 3, 1, 3, 0, 2]])
    assert CtcPrefixBeamSearch(["", " ", "a", "b"], lm=lm)(x)[0][0].words == ("ab", "ba")


def test_nbest_texts_are_distinct_and_lm_paths_load(tmp_path):
    lm = _lm(tmp_path, ["ab ba", "ab ab", "ba"])
    rng = np.random.default_rng(5)
    x = np.log(rng.dirichlet(np.ones(4) * 0.3, size=(3, 11)).astype(np.float32))
    by_path = CtcPrefixBeamSearch(["-", "|", "a", "b"], lm=tmp_path / "lm.arpa", nbest=6, beam=12)(x)
    by_model = CtcPrefixBeamSearch(["-", "|", "a", "b"], lm=lm, nbest=6, beam=12)(x)
    assert [[h.score for h in n] for n in by_path] == [[h.score for h in n] for n in by_model]
    many = CtcPrefixBeamSearch(["-", "|", "a", "b"], lm=lm, nbest=12, beam=12, backend="reference")(x)
    native_lists = CtcPrefixBeamSearch(["-", "|", "a", "b"], lm=lm, nbest=12, beam=12)(x)
    for nbest, native in zip(many, native_lists, strict=True):
        texts = [h.text for h in nbest]
        assert len(texts) == len(set(texts)) > 1
        assert [h.text for h in native] == texts
        assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
