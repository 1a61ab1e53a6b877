"""speechdecode.compat.torchaudio against flashlight-text's decoders, built as torchaudio's ctc_decoder builds them.

torchaudio cannot be installed beside this torch, so the anchor is flashlight-text (what torchaudio's
``ctc_decoder`` runs) with torchaudio's construction: a token Dictionary from the tokens file, the
word dictionary and trie from the lexicon file (smeared by max), KenLM on the word dictionary, and
torchaudio's conversion of flashlight's frame path to tokens and timesteps.
"""

import itertools

import numpy as np
import pytest
import torch

from speechdecode.bench.asr_common import TOKENS, make_data
from speechdecode.bench.asr_common import torchaudio_flashlight as flashlight
from speechdecode.compat.torchaudio import CTCHypothesis, ctc_decoder
from speechdecode.decoding import word_error_rate
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.lm import count_sentences, estimate, write_arpa

pytest.importorskip("flashlight.lib.text.decoder.kenlm")


@pytest.fixture(scope="module")
def kjv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kjv")
    refs, log_probs, lengths, arpa = make_data({"utterances": 12, "order": 3, "train": 4000}, str(tmp))
    (tmp / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    train_words = sorted(set((tmp / "train.txt").read_text().split()))
    (tmp / "lexicon.txt").write_text("".join(f"{w} {' '.join(w)} |\n" for w in train_words))
    return tmp, refs, log_probs, lengths, arpa


def test_lexicon_search_decodes_at_least_as_well_as_flashlight(kjv):
    tmp, refs, log_probs, lengths, arpa = kjv
    ours = ctc_decoder(tmp / "lexicon.txt", tmp / "tokens.txt", lm=arpa, lm_weight=1.15, word_score=1.0)
    theirs = flashlight(
        tmp / "lexicon.txt", tmp / "tokens.txt", arpa, lm_weight=1.15, word_score=1.0, beam_threshold=50
    )
    got = ours(torch.from_numpy(log_probs), torch.from_numpy(lengths))
    want = [theirs(log_probs[b, : lengths[b]]) for b in range(len(refs))]
    ours_wer = word_error_rate(refs, [" ".join(n[0].words) for n in got])
    assert ours_wer <= word_error_rate(refs, [" ".join(w[1]) for w in want])
    for nbest in got:
        h = nbest[0]
        assert isinstance(h, CTCHypothesis) and h.tokens.dtype == torch.long and h.timesteps.dtype == torch.int32
        assert len(h.tokens) == len(h.timesteps) and isinstance(h.score, float)
        assert h.tokens[0] == h.tokens[-1] == 1  # silence at both ends, as flashlight's path has
    assert ours.idxs_to_tokens(torch.tensor([3, 4, 1])) == ["a", "b", "|"]


def test_clear_inputs_give_flashlights_tokens_words_and_timesteps(tmp_path):
    # a phone lexicon: several pronunciations, homophones, a word outside the LM
    phones = ["-", "|", "AH", "B", "K", "D", "T"]
    (tmp_path / "tokens.txt").write_text("\n".join(phones) + "\n")
    lexicon = ["ab AH B |", "cab K AH B |", "cab K B |", "a AH |", "bad B AH D |", "bat B AH T |", "tab T AH B |"]
    (tmp_path / "lexicon.txt").write_text("\n".join(lexicon) + "\n")
    with pytest.warns(Warning):  # tiny corpus: no count-of-counts for the discounts
        model = estimate(count_sentences(["ab cab a", "cab bad ab", "a cab", "bad ab a cab"], 2), "mkn")
    write_arpa(tmp_path / "lm.arpa", model)
    path = ["K", "K", "-", "B", "|", "-", "AH", "B", "B", "|", "B", "AH", "T", "-", "-", "|", "AH", "-", "|"]
    x = np.log(np.full((len(path), 7), 0.02) + 0.86 * np.eye(7)[[phones.index(p) for p in path]]).astype(np.float32)
    for lexicon_file, lm in [(tmp_path / "lexicon.txt", tmp_path / "lm.arpa"), (None, None)]:
        got = ctc_decoder(lexicon_file, tmp_path / "tokens.txt", lm=lm)(torch.from_numpy(x[None]))[0][0]
        tokens, words, _, steps = flashlight(lexicon_file, tmp_path / "tokens.txt", lm)(x)
        assert got.tokens.tolist() == tokens and got.timesteps.tolist() == steps
        if lexicon_file is not None:
            assert got.words == words == ["cab", "ab", "bat", "a"]
    assert got.words == ["KB", "AHB", "BAHT", "AH"]  # lexicon-free: words spelled between silences


def test_online_decoding_equals_offline(kjv):
    tmp, _, log_probs, lengths, arpa = kjv
    decoder = ctc_decoder(tmp / "lexicon.txt", tmp / "tokens.txt", lm=arpa, nbest=2)
    x = torch.from_numpy(log_probs[1, : lengths[1]])
    decoder.decode_begin()
    for start in range(0, len(x), 37):
        decoder.decode_step(x[start : start + 37])
    decoder.decode_end()
    online = decoder.get_final_hypothesis()
    offline = decoder(x[None])[0]
    assert [(h.tokens.tolist(), h.words, h.timesteps.tolist()) for h in online] == [
        (h.tokens.tolist(), h.words, h.timesteps.tolist()) for h in offline
    ]
    assert [h.score for h in online] == pytest.approx([h.score for h in offline], abs=1e-6)


def test_sil_score_and_nbest(kjv):
    tmp, _, log_probs, lengths, arpa = kjv
    x = torch.from_numpy(log_probs[:2])
    plain = ctc_decoder(tmp / "lexicon.txt", tmp / "tokens.txt", lm=arpa, nbest=3)(x, torch.from_numpy(lengths[:2]))
    assert all(len(n) == 3 and len({tuple(h.words) for h in n}) == 3 for n in plain)
    decoder = ctc_decoder(tmp / "lexicon.txt", tmp / "tokens.txt", lm=arpa, sil_score=0.5)
    boosted = decoder(x, torch.from_numpy(lengths[:2]))
    searched = decoder.search(x, lengths[:2])
    compared = 0
    for p, s, raw in zip(plain, boosted, searched, strict=True):
        if s[0].words == p[0].words and raw[0].tokens == tuple(p[0].tokens[1:-1].tolist()):
            # the same path earns sil_score per silence token it emits
            assert s[0].score == pytest.approx(p[0].score + 0.5 * raw[0].tokens.count(1), abs=1e-4)
            compared += 1
    assert compared > 0


def test_bad_files_are_named(kjv, tmp_path):
    tmp, _, _, _, arpa = kjv
    (tmp_path / "lexicon.txt").write_text("ab a b |\nzoo z o o |\nbad b a d |\nq\n")
    tokens = tmp / "tokens.txt"
    with pytest.raises(InputFileError, match=r"lexicon.txt:4: word 'q' has no spelling"):
        ctc_decoder(tmp_path / "lexicon.txt", tokens)
    (tmp_path / "lexicon.txt").write_text("ab a b |\nzoo z 0 o |\n")
    with pytest.raises(InputFileError, match=r"lexicon.txt:2: word 'zoo': token '0' is not one of the 29 tokens"):
        ctc_decoder(tmp_path / "lexicon.txt", tokens)
    with pytest.raises(InvalidArgumentError, match=r"blank_token: expected one of the tokens"):
        ctc_decoder(None, tokens, blank_token="<blank>")
    (tmp_path / "lexicon.txt").write_text("AB A B |\n")
    with pytest.raises(InvalidArgumentError, match=r"lm: .*none in common"):
        ctc_decoder(tmp_path / "lexicon.txt", ["-", "|", "A", "B"], lm=arpa)


def test_best_path_is_the_best_alignment():
    from speechdecode import _backend
    from speechdecode.compat.torchaudio import best_path

    rng = np.random.default_rng(4)
    for frames, labels in [(1, [2]), (4, [1, 1]), (5, [2, 1, 2]), (6, [1]), (5, [])]:
        x = np.log(rng.dirichlet(np.ones(3), size=frames))
        paths = [p for p in itertools.product(range(3), repeat=frames)
                 if [k for k, _ in itertools.groupby(p) if k != 0] == labels]  # fmt: skip
        best = max(sum(x[t, k] for t, k in enumerate(p)) for p in paths)
        got = best_path(x, labels, 0)
        assert [k for k, _ in itertools.groupby(got) if k != 0] == labels
        assert sum(x[t, k] for t, k in enumerate(got)) == pytest.approx(best, abs=1e-12)
    if not _backend.HAS_NATIVE:
        return
    for frames, vocab, length in [(1, 2, 0), (1, 2, 1), (7, 3, 3), (31, 5, 9), (64, 29, 20), (127, 7, 60)]:
        x = np.log(rng.dirichlet(np.ones(vocab) * 0.5, size=frames)).astype(np.float32)
        labels = [int(k) for k in rng.integers(1, vocab, size=length)]
        need = len(labels) + sum(a == b for a, b in itertools.pairwise(labels))
        if need > frames:
            continue
        assert _backend.native().ctc_best_path(x, labels, 0) == best_path(x, labels, 0)
    with pytest.raises(ValueError, match=r"tokens: expected ids in \[0, 3\) other than blank, got 0 at \[1\]"):
        _backend.native().ctc_best_path(np.zeros((4, 3), np.float32), [1, 0], 0)


def test_token_aliases_and_idxs_to_tokens(tmp_path):
    # a tokens-file line may hold several spellings of one index; the lexicon may use any of them
    (tmp_path / "tokens.txt").write_text("-\n|\na A\nb B\n")
    (tmp_path / "lexicon.txt").write_text("ab A b |\nba B a |\n")
    decoder = ctc_decoder(tmp_path / "lexicon.txt", tmp_path / "tokens.txt", beam_size=8)
    path = [2, 3, 1, 3, 2, 1]  # a b | b a |
    x = np.log(np.full((len(path), 4), 0.02) + 0.92 * np.eye(4)[path]).astype(np.float32)
    best = decoder(torch.from_numpy(x[None]))[0][0]
    assert best.words == ["ab", "ba"]
    assert decoder.idxs_to_tokens(best.tokens) == ["|", "a", "b", "|", "b", "a", "|"]
    (tmp_path / "tokens.txt").write_text("-\n|\na\nb a\n")
    with pytest.raises(InputFileError, match=r"tokens.txt:4: token 'a' repeats line 3"):
        ctc_decoder(None, tmp_path / "tokens.txt")
