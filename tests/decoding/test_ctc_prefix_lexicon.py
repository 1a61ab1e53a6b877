"""CtcPrefixBeamSearch with a lexicon (words spelled in tokens) and without LM boundaries: native vs reference."""

import math

import numpy as np
import pytest
from test_ctc_prefix_beam_search import assert_same, random_log_probs  # same folder: pytest's rootdir-less import

from speechdecode import _backend
from speechdecode.decoding import CtcPrefixBeamSearch
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.lm import NgramModel, count_sentences, estimate, write_arpa

needs_native = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")
CHARS = ["-", "|", "a", "b", "c", "d"]
# Several spellings per word, a homophone pair ("ab" / "ba2" spelled a b), words outside the LM.
CHAR_LEXICON = {
    "ab": [["a", "b", "|"]],
    "ba": [["b", "a", "|"]],
    "ba2": [["a", "b"]],
    "cd": [["c", "d"], ["c", "c", "d"]],
    "a": [["a"]],
    "dd": [["d", "d"]],
    "cab": [["c", "a", "b"]],
}
PHONES = ["<b>", "|", "AH", "B", "K", "D"]
PHONE_LEXICON = {"ab": [["AH", "B"]], "cab": [["K", "AH", "B"], ["K", "B"]], "a": [["AH"]], "bad": [["B", "AH", "D"]]}
LM_SENTENCES = ["ab ba", "ab ab cd", "ba a ab", "cd ab a", "a cab d", "cab ab a"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "words.arpa"
    with pytest.warns(Warning):  # tiny corpora have no count-of-counts for the discounts
        model = estimate(count_sentences(LM_SENTENCES, 3), "mkn")
    write_arpa(path, model)
    return NgramModel.from_arpa(path)


CONFIGS = {
    "chars lm": {"lexicon": CHAR_LEXICON, "lm": True},
    "chars lm only lexicon": {"lexicon": CHAR_LEXICON, "lm": True, "unk_score_offset": -math.inf},
    "chars lm viterbi no boundary": {
        "lexicon": CHAR_LEXICON, "lm": True, "viterbi": True, "score_boundary": False, "unk_score_offset": -4.0,
    },
    "chars no lm": {"lexicon": CHAR_LEXICON, "unk_score_offset": -3.0, "beta": 0.7},
    "chars no lm only lexicon": {"lexicon": CHAR_LEXICON, "unk_score_offset": -math.inf},
    "chars lm no partial": {"lexicon": CHAR_LEXICON, "lm": True, "partial_word_lm": False, "recombine": False},
    "phones lm": {"tokens": PHONES, "lexicon": PHONE_LEXICON, "lm": True, "unk_score_offset": -math.inf},
    "phones lm unk": {"tokens": PHONES, "lexicon": PHONE_LEXICON, "lm": True, "hotwords": [(["K", "AH"], 0.5)]},
    # the search without a lexicon, with the former defaults (partial words and recombination off)
    "no lexicon plain": {"lm": True, "partial_word_lm": False, "recombine": False},
    "no lexicon no boundary": {"lm": True, "score_boundary": False},
    "extend best token": {"lm": True, "token_min_logp": -1.2, "extend_best_token": True},
    "extend best token no lm": {"token_min_logp": -0.9, "extend_best_token": True, "viterbi": True},
}  # fmt: skip


@needs_native
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_native_matches_reference_on_random_inputs(config, lm):
    rng = np.random.default_rng(len(config) * 11 + 3)
    options = {"tokens": CHARS, **CONFIGS[config]}
    if options.pop("lm", False):
        options["lm"] = lm
    for batch, frames, beam, topk in [(1, 1, 1, 1), (3, 7, 4, 3), (4, 23, 7, 5), (2, 31, 16, 6)]:
        x = random_log_probs(rng, batch, frames, len(options["tokens"]))
        lengths = rng.integers(0, frames + 1, size=batch)
        lengths[0] = frames
        common = {"beam": beam, "token_topk": topk, "beam_threshold": float(rng.uniform(3.0, 15.0)), "nbest": 4}
        got = CtcPrefixBeamSearch(**options, **common, backend="native")(x, lengths)
        want = CtcPrefixBeamSearch(**options, **common, backend="reference")(x, lengths)
        assert_same(got, want)
        if options.get("unk_score_offset") == -math.inf:
            assert all(w in options["lexicon"] for n in got for h in n if h.score > -math.inf for w in h.words)


def _frames(tokens, path):
    ids = [tokens.index(t) for t in path]
    eye = np.eye(len(tokens), dtype=np.float32)[ids]
    return np.log(np.full((1, len(ids), len(tokens)), 0.02, np.float32) + 0.88 * eye)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_homophones_and_phone_words(lm, backend):
    # "a b" is both "ab" (an LM word, likely after <s>) and "ba2" (outside the LM): the LM picks "ab".
    x = _frames(CHARS, ["a", "-", "b", "|", "b", "a", "|", "a", "b"])
    best = CtcPrefixBeamSearch(CHARS, lm=lm, lexicon=CHAR_LEXICON, backend=backend)(x)[0][0]
    assert best.words == ("ab", "ba", "ab")
    # Without an LM the first entry of the spelling wins.
    order = {"ba2": [["a", "b"]], "ab": [["a", "b"]], "ba": [["b", "a"]]}
    assert CtcPrefixBeamSearch(CHARS, lexicon=order, backend=backend)(x)[0][0].words == ("ba2", "ba", "ba2")
    # Phone tokens spell words; "K B" is a second spelling of "cab".
    y = _frames(PHONES, ["K", "B", "|", "AH", "<b>", "B", "|", "B", "AH", "D"])
    got = CtcPrefixBeamSearch(PHONES, lm=lm, lexicon=PHONE_LEXICON, unk_score_offset=-math.inf, backend=backend)(y)
    assert got[0][0].words == ("cab", "ab", "bad")


def test_lexicon_errors_name_the_word_and_line(tmp_path, lm):
    path = tmp_path / "lexicon.txt"
    path.write_text("ab a b |\ncd c d |\nzz z z |\n")
    with pytest.raises(InputFileError, match=r"lexicon.txt:3: word 'zz': token 'z' is not one of the 6 tokens"):
        CtcPrefixBeamSearch(CHARS, lexicon=path)
    path.write_text("ab a - b |\n")
    with pytest.raises(InputFileError, match=r"lexicon.txt:1: word 'ab': token '-' has no characters"):
        CtcPrefixBeamSearch(CHARS, lexicon=path)
    with pytest.raises(InvalidArgumentError, match=r"lexicon: .*word 'x': token 'q'"):
        CtcPrefixBeamSearch(CHARS, lexicon={"x": [["q"]]})
    with pytest.raises(InvalidArgumentError, match=r"word 'ab': token '▁b' starts a word, after"):
        CtcPrefixBeamSearch(["<b>", "▁a", "▁b", "b"], lexicon={"ab": [["▁a", "▁b"]]})
    with pytest.raises(InvalidArgumentError, match=r"lm: .*lexicon words \['AB'\].*none in common \(a case mismatch\)"):
        CtcPrefixBeamSearch(CHARS, lm=lm, lexicon={"AB": [["a", "b"]]})
    path.write_text("ab a b |\nba b a |\n")
    from_file = CtcPrefixBeamSearch(CHARS, lexicon=path)
    assert from_file.lexicon == (((2, 3), "ab"), ((3, 2), "ba"))
