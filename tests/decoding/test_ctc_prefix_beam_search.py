"""CtcPrefixBeamSearch: the native search against the reference, the reference against brute force."""

import doctest
import itertools
import math
import threading

import numpy as np
import pytest
import torch

from speechdecode import _backend
from speechdecode.decoding import CtcPrefixBeamSearch
from speechdecode.decoding import ctc_prefix_beam_search as prefix_module
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.lm import NgramModel, count_sentences, estimate, write_arpa

needs_native = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")
CHARS = ["-", "|", "a", "b", "c", "d"]
PIECES = ["<b>", "▁ab", "▁a", "b", "▁c", "d", "c"]
LM_SENTENCES = ["ab ba", "ab ab cd", "ba a ab", "cd ab a", "a cab d", "dc ab"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "chars.arpa"
    with pytest.warns(Warning):  # tiny corpora have no count-of-counts for the discounts
        model = estimate(count_sentences(LM_SENTENCES, 3), "mkn")
    write_arpa(path, model)
    return NgramModel.from_arpa(path)


@pytest.fixture(scope="module")
def piece_lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "pieces.arpa"
    with pytest.warns(Warning):
        model = estimate(count_sentences(["ab a", "a bc", "abd cd", "c ab"], 2), "mkn")
    write_arpa(path, model)
    return NgramModel.from_arpa(path)


def random_log_probs(rng, batch, frames, vocab, peak=2.0):
    x = rng.standard_normal((batch, frames, vocab)) * peak
    return (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(np.float32)


def assert_same(got, want, tol=1e-4):
    """n-best lists equal: tokens, words and frames exactly, scores within tol."""
    assert len(got) == len(want)
    for g_list, w_list in zip(got, want, strict=True):
        assert [h.tokens for h in g_list] == [h.tokens for h in w_list]
        for g, w in zip(g_list, w_list, strict=True):
            assert (g.words, g.token_frames, g.word_frames) == (w.words, w.token_frames, w.word_frames)
            for name in ("score", "am_score", "lm_score"):
                assert math.isclose(getattr(g, name), getattr(w, name), rel_tol=0, abs_tol=tol), name


def decode_both(log_probs, lengths, **options):
    native = CtcPrefixBeamSearch(**options, backend="native")(log_probs, lengths)
    reference = CtcPrefixBeamSearch(**options, backend="reference")(log_probs, lengths)
    return native, reference


CONFIGS = {
    "no lm": {},
    "lm": {"lm": True, "alpha": 0.8, "beta": 0.5},
    "lm partial": {"lm": True, "partial_word_lm": True, "unk_score_offset": -3.0},
    "lm lexicon only": {"lm": True, "partial_word_lm": True, "unk_score_offset": -math.inf},
    "lexicon no threshold": {
        "lm": True,
        "partial_word_lm": True,
        "unk_score_offset": -math.inf,
        "beam_threshold": math.inf,
    },
    "hotwords": {"hotwords": [("ab", 1.5), ("b a", 0.7), ("abc", 0.4), ("cd", -0.5)]},
    "lm hotwords": {"lm": True, "hotwords": [("ab|c", 2.0), ([3, 4], 1.0)], "alpha": 1.2},
    "no boundary": {"word_boundary": None, "hotwords": [(["a", "b"], 1.0)]},
    "blank skip": {"blank_skip_threshold": -0.4},
    "viterbi": {"viterbi": True, "hotwords": [("ab", 1.5), ("cd", -0.5)]},
    "recombine": {"lm": True, "recombine": True, "partial_word_lm": True, "unk_score_offset": -2.0},
    "recombine hotwords": {"lm": True, "recombine": True, "hotwords": [("ab", 1.5), ("b|a", 0.7)], "alpha": 1.2},
    "recombine viterbi lexicon": {
        "lm": True,
        "recombine": True,
        "viterbi": True,
        "partial_word_lm": True,
        "unk_score_offset": -math.inf,
    },
    "viterbi lexicon blank skip": {
        "lm": True,
        "partial_word_lm": True,
        "unk_score_offset": -math.inf,
        "viterbi": True,
        "blank_skip_threshold": -0.6,
    },
    "many overlapping hotwords": {
        "hotwords": [
            ([int(t) for t in np.random.default_rng(i).integers(1, 6, size=1 + i % 4)], 0.1 + 0.05 * (i % 7))
            for i in range(60)
        ]
    },
}


@needs_native
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_native_matches_reference_on_random_inputs(config, lm):
    rng = np.random.default_rng(len(config) * 7 + 1)
    options = dict(CONFIGS[config])
    if options.pop("lm", False):
        options["lm"] = lm
    fixed_threshold = options.pop("beam_threshold", None)
    for batch, frames, beam, topk in [(1, 1, 1, 1), (3, 7, 4, 3), (4, 23, 7, 5), (2, 31, 16, 6)]:
        x = random_log_probs(rng, batch, frames, len(CHARS))
        lengths = rng.integers(0, frames + 1, size=batch)
        lengths[0] = frames
        threshold = fixed_threshold if fixed_threshold is not None else float(rng.uniform(3.0, 15.0))
        got, want = decode_both(
            x, lengths, tokens=CHARS, beam=beam, token_topk=topk, beam_threshold=threshold, nbest=4, **options
        )
        assert_same(got, want)


@needs_native
def test_native_matches_reference_with_word_pieces(piece_lm):
    rng = np.random.default_rng(5)
    x = random_log_probs(rng, 3, 19, len(PIECES))
    for options in [{}, {"lm": piece_lm, "partial_word_lm": True, "unk_score_offset": -2.0}]:
        got, want = decode_both(
            x, [19, 11, 4], tokens=PIECES, word_boundary="▁", beam=6, token_topk=4, nbest=3, **options
        )
        assert_same(got, want)
        assert all(h.words for h in got[0])


def exact_prefix_log_probs(x: np.ndarray, blank: int) -> dict[tuple[int, ...], float]:
    """log p(labelling) by summing over every alignment (tiny inputs only)."""
    totals: dict[tuple[int, ...], float] = {}
    frames, vocab = x.shape
    for path in itertools.product(range(vocab), repeat=frames):
        labels = tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k))
        p = math.exp(sum(float(x[t, k]) for t, k in enumerate(path)))
        totals[labels] = totals.get(labels, 0.0) + p
    return {k: math.log(v) for k, v in totals.items()}


def test_reference_without_pruning_is_exact():
    rng = np.random.default_rng(2)
    for frames, vocab in [(1, 3), (4, 3), (6, 3), (5, 4)]:
        x = random_log_probs(rng, 1, frames, vocab, peak=1.0)
        exact = exact_prefix_log_probs(x[0], blank=0)
        tokens = ["-", *"abc"[: vocab - 1]]
        search = CtcPrefixBeamSearch(
            tokens, beam=10_000, token_topk=vocab, beam_threshold=math.inf, token_min_logp=-math.inf,
            nbest=5, backend="reference",
        )  # fmt: skip
        got = search(x)[0]
        want = sorted(exact.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert [h.tokens for h in got] == [k for k, _ in want]
        assert [h.am_score for h in got] == pytest.approx([v for _, v in want], abs=1e-9)


def best_alignment_log_probs(x: np.ndarray, blank: int) -> dict[tuple[int, ...], float]:
    """log p of each labelling's most likely alignment (tiny inputs only)."""
    best: dict[tuple[int, ...], float] = {}
    frames, vocab = x.shape
    for path in itertools.product(range(vocab), repeat=frames):
        labels = tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k))
        p = sum(float(x[t, k]) for t, k in enumerate(path))
        best[labels] = max(best.get(labels, -math.inf), p)
    return best


def test_viterbi_reference_without_pruning_scores_the_best_alignment():
    rng = np.random.default_rng(4)
    for frames, vocab in [(1, 3), (5, 3), (4, 4)]:
        x = random_log_probs(rng, 1, frames, vocab, peak=1.0)
        best = best_alignment_log_probs(x[0], blank=0)
        tokens = ["-", *"abc"[: vocab - 1]]
        search = CtcPrefixBeamSearch(
            tokens, beam=10_000, token_topk=vocab, beam_threshold=math.inf, token_min_logp=-math.inf,
            nbest=5, viterbi=True, backend="reference",
        )  # fmt: skip
        got = search(x)[0]
        want = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert [h.tokens for h in got] == [k for k, _ in want]
        assert [h.am_score for h in got] == pytest.approx([v for _, v in want], abs=1e-9)


@pytest.mark.parametrize("backend", _backend.available("cpu")[:2])
def test_skipped_frames_act_as_certain_blanks(backend, lm):
    rng = np.random.default_rng(6)
    x = random_log_probs(rng, 3, 40, len(CHARS))
    peaky = rng.random((3, 40)) < 0.4
    x[peaky] = np.log(np.full(len(CHARS), 0.001, np.float32) + 0.994 * np.eye(len(CHARS), dtype=np.float32)[0])
    threshold = -0.02  # above every random frame's blank, below log(0.995)
    assert (x[..., 0] > threshold).sum() == peaky.sum()
    certain = x.copy()
    certain[peaky] = -np.inf
    certain[peaky, 0] = 0.0
    lengths = [40, 27, 9]
    for options in [{}, {"lm": lm, "partial_word_lm": True, "viterbi": True, "hotwords": [("ab", 1.0)]}]:
        options = {"tokens": CHARS, "beam": 6, "token_topk": 4, "nbest": 3, "backend": backend, **options}
        skipping = CtcPrefixBeamSearch(**options, blank_skip_threshold=threshold)
        assert_same(skipping(x, lengths), CtcPrefixBeamSearch(**options)(certain, lengths), tol=0)
        stream = skipping.stream()
        stream.accept(x[0, :25])
        assert (stream.frames, stream.searched_frames) == (25, 25 - peaky[0, :25].sum())


@pytest.mark.parametrize("backend", _backend.available("cpu")[:2])
def test_a_skipped_blank_separates_repeated_tokens(backend):
    x = one_hot_frames([2, 0, 2], len(CHARS))
    search = CtcPrefixBeamSearch(CHARS, beam=4, beam_threshold=5.0, blank_skip_threshold=-0.1, backend=backend)
    best = search(x)[0][0]
    assert best.tokens == (2, 2)
    assert best.token_frames == (0, 2)


def test_recombined_beams_have_distinct_futures(lm):
    from speechdecode.decoding.text import token_pieces
    from speechdecode.kernels.ctc_prefix_beam import options
    from speechdecode.kernels.ctc_prefix_beam.reference import PrefixBeamSearch

    x = random_log_probs(np.random.default_rng(8), 1, 30, len(CHARS), peak=1.0)[0]
    pieces = token_pieces(CHARS, 0, "|")
    search = {"lm": lm, "hotwords": [((2, 3), 1.0)]}
    fields = {"blank": 0, "beam": 12, "token_topk": 5, "beam_threshold": math.inf, "partial_word_lm": False}
    merged = PrefixBeamSearch(pieces, options(recombine=True, **fields), **search)
    plain = PrefixBeamSearch(pieces, options(recombine=False, **fields), **search)

    def futures(search):
        infos = [(search._info(p), p) for p in search.beams]
        return {(i.lm_state, i.word, p[-1] if p else None, i.hot_state) for i, p in infos}

    shared = 0
    for row in x:
        merged.step(row)
        plain.step(row)
        assert len(futures(merged)) == len(merged.beams)
        shared += len(futures(plain)) < len(plain.beams)
    assert shared > 0  # without recombination, beams do share futures
    no_lm = {"tokens": CHARS, "beam": 6, "nbest": 3, "backend": "reference"}
    x3 = x[None]
    assert_same(CtcPrefixBeamSearch(recombine=True, **no_lm)(x3), CtcPrefixBeamSearch(**no_lm)(x3), tol=0)


def one_hot_frames(ids, vocab, floor=1e-3):
    """log-probs whose best path is ids (one frame each)."""
    x = np.full((len(ids), vocab), floor, dtype=np.float64)
    x[np.arange(len(ids)), ids] = 1.0
    return np.log(x / x.sum(-1, keepdims=True)).astype(np.float32)[None]


@pytest.mark.parametrize("backend", _backend.available("cpu")[:2])
def test_lm_scores_add_up(backend, lm):
    # "ab|cd" then a final word "a": words ab, cd, a, then </s>.
    ids = [2, 0, 3, 1, 4, 5, 0, 1, 2]
    x = one_hot_frames(ids, len(CHARS))
    alpha, beta = 0.7, 0.4
    # A token's frame is the first one its prefix survives: threshold 5 prunes the 1e-3 paths.
    search = CtcPrefixBeamSearch(CHARS, lm=lm, alpha=alpha, beta=beta, beam=8, beam_threshold=5.0, backend=backend)
    best = search(x)[0][0]
    assert best.words == ("ab", "cd", "a")
    assert best.tokens == (2, 3, 1, 4, 5, 1, 2)
    assert best.token_frames == (0, 2, 3, 4, 5, 7, 8)
    assert best.word_frames == ((0, 2), (4, 5), (8, 8))
    lm_log10 = sum(s.log10_prob for s in lm.full_scores("ab cd a"))
    assert best.lm_score == pytest.approx(alpha * math.log(10) * lm_log10, abs=1e-4)
    assert best.score == pytest.approx(best.am_score + best.lm_score + 3 * beta, abs=1e-9)


@pytest.mark.parametrize("backend", _backend.available("cpu")[:2])
def test_out_of_vocabulary_words_cost_unk_score_offset(backend, lm):
    x = one_hot_frames([4, 0, 4, 1, 2, 3], len(CHARS))  # "cc" (not in the LM) then "ab"
    options = {"lm": lm, "alpha": 0.5, "beta": 0.0, "beam": 4, "backend": backend}
    base = CtcPrefixBeamSearch(CHARS, unk_score_offset=0.0, **options)(x)[0][0]
    penalised = CtcPrefixBeamSearch(CHARS, unk_score_offset=-4.0, **options)(x)[0][0]
    assert base.words == penalised.words == ("cc", "ab")
    assert penalised.lm_score == pytest.approx(base.lm_score - 4.0, abs=1e-6)


@pytest.mark.parametrize("backend", _backend.available("cpu")[:2])
def test_hotword_bonuses_and_give_back(backend):
    # The path spells a b c d; phrases "abc" and "bcd" overlap: "abc" completes at c, then d
    # falls back to "bc" and completes "bcd".
    x = one_hot_frames([2, 0, 3, 0, 4, 0, 5], len(CHARS))

    def bonus(hotwords, ids=None):
        y = x if ids is None else one_hot_frames(ids, len(CHARS))
        h = CtcPrefixBeamSearch(CHARS, hotwords=hotwords, beam=4, backend=backend)(y)[0][0]
        return h.score - h.am_score, h.tokens

    assert bonus([("abc", 1.0), ("bcd", 0.5)]) == (pytest.approx(3 * 1.0 + 3 * 0.5), (2, 3, 4, 5))
    assert bonus([("abd", 1.0)])[0] == pytest.approx(0.0)  # "ab" then c: abandoned, given back
    assert bonus([("abcdd", 1.0)])[0] == pytest.approx(0.0)  # unfinished at the end: given back
    assert bonus([("ab", 1.0), ("abcd", 0.25)])[0] == pytest.approx(2 * 1.0 + 2 * 0.25)
    # A bonus can change the winner: "ac" beats the slightly better "ab".
    y = np.log(np.array([[0.01, 0.01, 0.9, 0.02, 0.02, 0.04], [0.05, 0.01, 0.01, 0.48, 0.44, 0.01]], np.float32))[None]
    plain = CtcPrefixBeamSearch(CHARS, beam=4, backend=backend)(y)[0][0]
    boosted = CtcPrefixBeamSearch(CHARS, beam=4, hotwords=[("ac", 0.2)], backend=backend)(y)[0][0]
    assert (plain.tokens, boosted.tokens) == ((2, 3), (2, 4))


def test_ties_break_towards_the_smaller_prefix():
    x = np.log(np.array([[[0.2, 0.1, 0.35, 0.35, 0.0, 0.0]]], np.float32) + 1e-30)
    for backend in _backend.available("cpu")[:2]:
        hyps = CtcPrefixBeamSearch(CHARS, beam=5, nbest=3, backend=backend)(x)[0]
        assert [h.tokens for h in hyps] == [(2,), (3,), ()]
        assert hyps[0].score == hyps[1].score


@needs_native
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_stream_equals_offline_for_any_chunking(backend, lm):
    rng = np.random.default_rng(9)
    x = random_log_probs(rng, 1, 29, len(CHARS))
    search = CtcPrefixBeamSearch(
        CHARS, lm=lm, beam=6, token_topk=4, nbest=3, hotwords=[("ab", 1.0)], partial_word_lm=True, backend=backend
    )
    offline = search(x)[0]
    for cuts in [[29], [1, 28], [5, 5, 5, 14], [13, 0, 16], [1] * 29]:
        stream = search.stream()
        start = 0
        for n in cuts:
            stream.accept(x[0, start : start + n])
            start += n
            assert stream.frames == start
            partial = stream.partial()
            assert partial == search(x[:, :start])[0][0]  # as if the utterance ended here
        final = stream.finish()
        assert [h.tokens for h in final] == [h.tokens for h in offline]
        assert [h.score for h in final] == [h.score for h in offline]


@needs_native
def test_dtypes_strides_frameworks_and_threads_agree(lm):
    rng = np.random.default_rng(3)
    x = random_log_probs(rng, 5, 17, len(CHARS))
    lengths = np.array([17, 3, 0, 11, 16])
    search = CtcPrefixBeamSearch(CHARS, lm=lm, beam=5, token_topk=4, nbest=2, num_threads=1)
    want = search(x, lengths)
    threaded = CtcPrefixBeamSearch(CHARS, lm=lm, beam=5, token_topk=4, nbest=2, num_threads=3)
    assert_same(threaded(x, lengths), want, tol=0)
    wide = np.zeros((5, 34, 12), np.float32)
    wide[:, ::2, 3 : 3 + len(CHARS)] = x  # frame and batch strides that are not the shape's
    assert_same(search(wide[:, ::2, 3 : 3 + len(CHARS)], lengths), want, tol=0)
    assert_same(search(torch.from_numpy(x), torch.from_numpy(lengths)), want, tol=0)
    flipped = np.ascontiguousarray(x[::-1])[::-1]  # negative batch stride
    assert_same(search(flipped, lengths), want, tol=0)
    for dtype in (torch.float16, torch.bfloat16):
        low = torch.from_numpy(x).to(dtype)
        assert_same(search(low, lengths), search(low.float().numpy(), lengths), tol=0)
    results = [None, None]

    def work(i):
        results[i] = search(x, lengths)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_same(results[0], want, tol=0)
    assert_same(results[1], want, tol=0)


@pytest.mark.parametrize("backend", _backend.available("cpu")[:2])
def test_empty_utterance_gives_one_empty_hypothesis(backend, lm):
    x = np.zeros((2, 0, len(CHARS)), np.float32)
    for model in (None, lm):
        out = CtcPrefixBeamSearch(CHARS, lm=model, nbest=3, backend=backend)(x)
        assert [[h.tokens for h in hyps] for hyps in out] == [[()], [()]]
        if model is not None:  # only </s> after <s>
            assert out[0][0].lm_score == pytest.approx(0.5 * math.log(10) * lm.score(""), abs=1e-5)


@pytest.mark.parametrize("backend", _backend.available("cpu")[:2])
def test_bad_scores_are_named_by_position(backend):
    x = random_log_probs(np.random.default_rng(0), 2, 6, len(CHARS))
    for value, kind in [(np.nan, "NaN"), (np.inf, r"\+inf")]:
        y = x.copy()
        y[1, 4, 3] = value
        with pytest.raises(TensorError, match=rf"{kind} at \[1, 4, 3\]"):
            CtcPrefixBeamSearch(CHARS, backend=backend)(y)
        y[1, 4, 3] = -np.inf  # log 0 is fine, and past the length nothing is read
        CtcPrefixBeamSearch(CHARS, backend=backend)(y)
        y[1, 5, 0] = value
        CtcPrefixBeamSearch(CHARS, backend=backend)(y, [6, 5])


def test_bad_arguments_are_named():
    x = np.zeros((2, 4, len(CHARS)), np.float32)
    search = CtcPrefixBeamSearch(CHARS)
    with pytest.raises(TensorError, match="lengths"):
        search(x, [5, 1])
    with pytest.raises(TensorError, match="lengths"):
        search(x, [-1, 1])
    with pytest.raises(TensorError, match=r"log_probs: expected shape \[B, T, 6\]"):
        search(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(TensorError, match="float32, float16 or bfloat16"):
        search(np.zeros((2, 4, 6), np.int32))
    with pytest.raises(TensorError, match="chunk"):
        search.stream().accept(np.zeros((3, 5), np.float32))
    cases = [
        ({"hotwords": [("abz", 1.0)]}, "hotwords\\[0\\]: expected a phrase the tokens can spell"),
        ({"hotwords": [([2, 9], 1.0)]}, "hotwords\\[0\\]: expected token ids in \\[0, 6\\)"),
        ({"hotwords": [([0], 1.0)]}, "other than blank"),
        ({"hotwords": [(["q"], 1.0)]}, "token symbols"),
        ({"hotwords": [("ab", math.nan)]}, "weight"),
        ({"hotwords": [("", 1.0)]}, "one or more tokens"),
        ({"beam": 0}, "beam"),
        ({"token_topk": 0}, "token_topk"),
        ({"blank": 6}, "blank"),
        ({"lm": 3.5}, "lm: expected None, a speechdecode.lm.NgramModel or the path"),
        ({"word_boundary": "@"}, "word_boundary: expected a token.*got .@., which no token starts with"),
        ({"blank": "<pad>"}, "blank: expected an id or a symbol"),
        ({"tokens": ["-", "a|b"]}, "tokens"),
        ({"unk_score_offset": math.inf}, "unk_score_offset"),
        ({"blank_skip_threshold": math.nan}, "blank_skip_threshold"),
        ({"blank_skip_threshold": "high"}, "blank_skip_threshold"),
    ]
    for options, message in cases:
        options = {"tokens": CHARS, **options}
        with pytest.raises(InvalidArgumentError, match=message):
            CtcPrefixBeamSearch(**options)


def test_docstring_examples():
    assert doctest.testmod(prefix_module).failed == 0
