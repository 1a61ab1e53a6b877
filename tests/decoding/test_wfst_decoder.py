"""WfstDecoder (C++ token passing over a flat-array graph) against the exhaustive Python Viterbi."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from speechdecode import _backend
from speechdecode.decoding import WfstDecoder, WfstHypothesis
from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError
from speechdecode.graphs.export import DecodingGraph
from speechdecode.kernels.wfst_decode import options as wfst_options
from speechdecode.kernels.wfst_decode import reference

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="speechdecode._native is not built")

WORDS = ["<eps>", "w1", "w2", "w3"]


def random_graph(
    rng: np.random.Generator,
    num_states: int,
    num_tokens: int,
    *,
    blank: int = 0,
    arcs_per_state: int = 3,
    epsilon: float = 0.25,
    word: float = 0.3,
    final: float = 0.4,
) -> dict:
    """A random graph in the export format: epsilon arcs only go forward in a random order of
    the states (no epsilon cycles), weights may be negative, words on some arcs."""
    order = rng.permutation(num_states)
    position = np.argsort(order)
    arcs = []
    for s in range(num_states):
        for _ in range(rng.integers(0, arcs_per_state + 1)):
            later = order[position[s] + 1 :]
            if rng.random() < epsilon and len(later):
                ilabel, nextstate = 0, int(rng.choice(later))
            else:
                ilabel, nextstate = int(rng.integers(1, num_tokens + 1)), int(rng.integers(0, num_states))
            olabel = int(rng.integers(1, len(WORDS))) if rng.random() < word else 0
            arcs.append((s, ilabel, olabel, float(rng.uniform(-0.5, 3.0)), nextstate))
    arcs.sort(key=lambda a: (a[0], a[1]))  # stable: equal ilabels keep their random order
    counts = np.bincount([a[0] for a in arcs], minlength=num_states)
    finals = np.where(rng.random(num_states) < final, rng.uniform(0.0, 2.0, num_states), np.inf)
    return {
        "start": np.int64(rng.integers(0, num_states)),
        "final_weights": finals.astype(np.float32),
        "arc_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "ilabels": np.array([a[1] for a in arcs], np.int32),
        "olabels": np.array([a[2] for a in arcs], np.int32),
        "weights": np.array([a[3] for a in arcs], np.float32),
        "nextstates": np.array([a[4] for a in arcs], np.int32),
        "num_tokens": np.int64(num_tokens),
        "blank": np.int64(blank),
        "topology": "standard",
    }


def random_log_probs(rng: np.random.Generator, batch: int, frames: int, vocab: int, sharp: float = 2.0) -> np.ndarray:
    logits = torch.from_numpy(rng.standard_normal((batch, frames, vocab)) * sharp)
    return torch.log_softmax(logits, dim=-1).float().numpy()


def decoders(graph, **options):
    native = WfstDecoder(graph, words=WORDS, backend="native", **options)
    ref = WfstDecoder(graph, words=WORDS, backend="reference", **options)
    return native, ref


def assert_same_hypothesis(got: WfstHypothesis, want: WfstHypothesis, tol: float = 1e-4) -> None:
    assert got.words == want.words
    assert got.tokens == want.tokens
    assert got.token_frames == want.token_frames
    assert got.word_frames == want.word_frames
    assert got.reached_final == want.reached_final
    assert got.score == pytest.approx(want.score, abs=tol)
    assert got.am_score == pytest.approx(want.am_score, abs=tol)
    assert got.lm_score == pytest.approx(want.lm_score, abs=tol)


# Awkward sizes: one state, one token, no frames, primes.
CASES = [(1, 1, 3, 0), (2, 2, 1, 1), (5, 3, 7, 0), (7, 4, 11, 2), (13, 5, 6, 4), (17, 2, 13, 1)]


@pytest.mark.parametrize(("states", "vocab", "frames", "blank"), CASES)
def test_best_path_equals_exhaustive_viterbi(states, vocab, frames, blank):
    rng = np.random.default_rng(states * 1000 + vocab * 10 + frames)
    for trial in range(6):
        graph = random_graph(rng, states, vocab, blank=min(blank, vocab - 1))
        x = random_log_probs(rng, 4, frames, vocab)
        lengths = np.array([frames, 0, frames // 2, max(frames - 1, 0)])
        native, ref = decoders(graph, beam=math.inf, max_active=10**6)
        got, want = native(x, lengths), ref(x, lengths)
        for b in range(4):
            assert len(got[b]) == len(want[b]), (trial, b)
            for g, w in zip(got[b], want[b], strict=True):
                assert_same_hypothesis(g, w)
                assert g.score == pytest.approx(native.acoustic_scale * g.am_score + g.lm_score, abs=1e-9)


def test_hypotheses_tell_whether_a_final_state_was_reached():
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(30):
        graph = random_graph(rng, 6, 3, final=0.15)
        x = random_log_probs(rng, 1, 5, 3)
        native, ref = decoders(graph, beam=math.inf, max_active=10**6)
        got, want = native(x), ref(x)
        if got[0]:
            assert_same_hypothesis(got[0][0], want[0][0])
            seen.add(got[0][0].reached_final)
    assert seen == {True, False}


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_acoustic_scale_weights_the_log_probs(scale):
    rng = np.random.default_rng(int(scale * 10))
    for _ in range(8):
        graph = random_graph(rng, 8, 4)
        x = random_log_probs(rng, 2, 9, 4)
        native, ref = decoders(graph, beam=math.inf, max_active=10**6, acoustic_scale=scale)
        for g, w in zip(native(x), ref(x), strict=True):
            assert len(g) == len(w)
            for a, b in zip(g, w, strict=True):
                assert_same_hypothesis(a, b)
                assert a.score == pytest.approx(scale * a.am_score + a.lm_score, abs=1e-9)


@pytest.mark.parametrize(("states", "frames"), [(4, 3), (6, 5), (9, 6)])
def test_nbest_equals_exhaustive_distinct_word_sequences(states, frames):
    rng = np.random.default_rng(states + frames)
    compared = 0
    for _ in range(8):
        graph = random_graph(rng, states, 3, word=0.5)
        x = random_log_probs(rng, 2, frames, 3, sharp=0.7)
        native, ref = decoders(graph, beam=math.inf, max_active=10**6, lattice_beam=math.inf, nbest=5)
        single = WfstDecoder(graph, words=WORDS, beam=math.inf, max_active=10**6)(x)
        for got, want, one in zip(native(x), ref(x), single, strict=True):
            assert [h.words for h in got] == [h.words for h in want]
            assert len({h.words for h in got}) == len(got)
            for g, w in zip(got, want, strict=True):
                assert_same_hypothesis(g, w)
            if got:
                assert_same_hypothesis(got[0], one[0], tol=1e-9)
                assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
            compared += len(got) > 1
    assert compared > 0


def test_narrow_lattice_beam_keeps_a_best_first_subset():
    rng = np.random.default_rng(11)
    for _ in range(10):
        graph = random_graph(rng, 8, 3, word=0.5)
        x = random_log_probs(rng, 1, 6, 3, sharp=0.7)
        full = WfstDecoder(graph, words=WORDS, beam=math.inf, max_active=10**6, lattice_beam=math.inf, nbest=50)(x)[0]
        narrow = WfstDecoder(graph, words=WORDS, beam=math.inf, max_active=10**6, lattice_beam=1.0, nbest=50)(x)[0]
        exact = {h.words: h.score for h in full}
        assert narrow[:1] == full[:1]
        for h in narrow:  # each is a real path of its words, never better than their optimum
            assert h.score <= exact[h.words] + 1e-6


def test_narrow_beam_never_beats_the_optimum():
    rng = np.random.default_rng(3)
    worse = 0
    for _ in range(25):
        graph = random_graph(rng, 12, 4, arcs_per_state=4)
        x = random_log_probs(rng, 1, 10, 4)
        exact = WfstDecoder(graph, words=WORDS, backend="reference", nbest=10**6)(x)[0]
        optimum = {h.words: h.score for h in exact}
        for beam, max_active in [(1.0, 1000), (math.inf, 2), (0.5, 1)]:
            got = WfstDecoder(graph, words=WORDS, beam=beam, max_active=max_active)(x)[0]
            for h in got:
                if not h.reached_final:  # pruning lost every final state: no final weights, no bound
                    continue
                assert h.words in optimum  # a word sequence the graph accepts
                assert h.score <= optimum[h.words] + 1e-4
                assert h.score <= exact[0].score + 1e-4
                worse += h.score < exact[0].score - 1e-4
    assert worse > 0  # the narrow beams did prune the optimum somewhere


def test_blank_skip_searches_only_the_other_frames():
    rng = np.random.default_rng(17)
    threshold = math.log(0.6)
    skipped_any = False
    for _ in range(10):
        graph = random_graph(rng, 7, 3, blank=0)
        x = random_log_probs(rng, 1, 12, 3, sharp=1.5)
        x[0, rng.random(12) < 0.4, 0] += 3.0
        x = torch.log_softmax(torch.from_numpy(x), -1).numpy()
        keep = ~(x[0, :, 0] > threshold)
        skipped_any |= not keep.all()
        native, ref = decoders(graph, beam=math.inf, max_active=10**6, blank_skip_threshold=threshold)
        got, want = native(x)[0], ref(x)[0]
        kept_only = WfstDecoder(graph, words=WORDS, beam=math.inf, max_active=10**6)(x[:, keep])[0]
        assert len(got) == len(want) == len(kept_only)
        for g, w, k in zip(got, want, kept_only, strict=True):
            assert_same_hypothesis(g, w)
            assert (g.words, g.score) == (k.words, pytest.approx(k.score, abs=1e-4))
            assert set(g.token_frames) <= set(np.flatnonzero(keep).tolist())
    assert skipped_any


def test_streaming_equals_offline_in_any_chunking():
    rng = np.random.default_rng(23)
    for trial in range(8):
        graph = random_graph(rng, 10, 4, word=0.4)
        x = random_log_probs(rng, 1, 17, 4)
        options = {"beam": 3.0, "max_active": 4, "lattice_beam": 2.0, "nbest": 3, "words": WORDS}
        decoder = WfstDecoder(graph, **options)
        offline = decoder(x)[0]
        cuts = np.sort(rng.integers(0, 18, size=4))
        stream = decoder.stream()
        for a, b in zip([0, *cuts], [*cuts, 17], strict=True):
            stream.accept(x[0, a:b])  # empty chunks included
        assert stream.frames_accepted == 17
        assert stream.finish() == offline, trial
        with pytest.raises(InvalidArgumentError, match="finished"):
            stream.accept(x[0, :1])


def test_partial_is_the_best_path_so_far_without_final_weights():
    rng = np.random.default_rng(29)
    for _ in range(6):
        graph = random_graph(rng, 8, 3)
        x = random_log_probs(rng, 1, 9, 3)
        native = WfstDecoder(graph, words=WORDS, beam=math.inf, max_active=10**6).stream()
        ref = WfstDecoder(graph, words=WORDS, backend="reference").stream()
        for t in range(9):
            native.accept(x[0, t : t + 1])
            ref.accept(x[0, t : t + 1])
            got, want = native.partial(), ref.partial()
            assert (got is None) == (want is None)
            if got is not None:
                assert not got.reached_final
                assert_same_hypothesis(got, want)


def test_dtypes_strides_and_frameworks_give_the_same_result():
    rng = np.random.default_rng(31)
    graph = random_graph(rng, 9, 5)
    decoder = WfstDecoder(graph, words=WORDS, beam=8.0)
    x = random_log_probs(rng, 3, 14, 5)
    lengths = np.array([14, 9, 1])
    want = decoder(x, lengths)
    assert decoder(torch.from_numpy(x), torch.from_numpy(lengths)) == want
    wide = np.zeros((3, 14, 2, 5), np.float32)
    wide[:, :, 1] = x
    assert decoder(wide[:, :, 1], lengths) == want  # strided frames
    assert decoder(np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2), lengths) == want
    assert decoder(np.asfortranarray(x), lengths) == want  # the vocabulary axis is copied
    for dtype in (torch.float16, torch.bfloat16):
        low = torch.from_numpy(x).to(dtype)
        assert decoder(low, lengths) == decoder(low.float(), lengths)
    assert decoder(x, lengths.tolist()) == want


def test_threads_do_not_change_results():
    rng = np.random.default_rng(37)
    graph = random_graph(rng, 11, 4)
    x = random_log_probs(rng, 9, 20, 4)
    lengths = rng.integers(0, 21, size=9)
    one = WfstDecoder(graph, words=WORDS, beam=5.0, nbest=2, num_threads=1)(x, lengths)
    two = WfstDecoder(graph, words=WORDS, beam=5.0, nbest=2, num_threads=2)(x, lengths)
    assert one == two


def test_graph_directory_and_npz_path(tmp_path):
    rng = np.random.default_rng(41)
    graph = random_graph(rng, 6, 3)
    np.savez(tmp_path / "TLG.npz", **graph)
    (tmp_path / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(WORDS)))
    (tmp_path / "tokens.txt").write_text("<eps> 0\n<blk> 1\na 2\nb 3\n")
    x = random_log_probs(rng, 2, 8, 3)
    want = WfstDecoder(graph, words=WORDS)(x)
    assert WfstDecoder(tmp_path)(x) == want
    assert WfstDecoder(str(tmp_path / "TLG.npz"))(x) == want
    unnamed = WfstDecoder({k: v for k, v in graph.items()})(x)
    assert [[h.words for h in n] for n in unnamed] == [
        [tuple(str(WORDS.index(w)) for w in h.words) for h in n] for n in want
    ]
    assert WfstDecoder(tmp_path, word_boundary="a").word_boundary == 1  # tokens.txt id 2 = output 1
    (tmp_path / "words.txt").unlink()
    with pytest.raises(InputFileError, match=r"words\.txt"):
        WfstDecoder(tmp_path)
    (tmp_path / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(WORDS)))
    (tmp_path / "TLG.npz").rename(tmp_path / "other.npz")
    with pytest.raises(InputFileError, match=r"TLG\.npz"):
        WfstDecoder(tmp_path)
    with pytest.raises(InputFileError, match="no such"):
        WfstDecoder(tmp_path / "missing")
    np.savez(tmp_path / "bad.npz", **{k: v for k, v in graph.items() if k != "weights"})
    with pytest.raises(InputFileError, match="weights"):
        WfstDecoder(tmp_path / "bad.npz")


def test_bad_log_probs_are_named():
    rng = np.random.default_rng(43)
    graph = random_graph(rng, 5, 3)
    decoder = WfstDecoder(graph, words=WORDS)
    x = random_log_probs(rng, 3, 6, 3)
    x[1, 4, 2] = np.nan
    with pytest.raises(TensorError, match="NaN in utterance 1 at frame 4, token 2"):
        decoder(x)
    assert len(decoder(x, [6, 4, 6])) == 3  # the NaN lies past utterance 1's length
    x[1, 4, 2] = np.inf
    with pytest.raises(TensorError, match=r"\+inf in utterance 1"):
        decoder(x)
    with pytest.raises(TensorError, match="V = 3"):
        decoder(np.zeros((1, 2, 4), np.float32))
    with pytest.raises(TensorError, match="lengths"):
        decoder(x, [7, 1, 1])
    with pytest.raises(TensorError, match="lengths"):
        decoder(x, [-1, 1, 1])
    with pytest.raises(TensorError, match="dtype"):
        decoder(np.zeros((1, 2, 3), np.int64))
    with pytest.raises(TensorError, match="3-D"):
        decoder(np.zeros((2, 3), np.float32))
    stream = decoder.stream()
    stream.accept(np.zeros((2, 3), np.float32))
    with pytest.raises(TensorError, match="NaN in utterance 0 at frame 3"):
        stream.accept(np.array([[0, 0, 0], [0, np.nan, 0]], np.float32))


def test_bad_graphs_are_named():
    rng = np.random.default_rng(47)
    good = random_graph(rng, 4, 3, epsilon=0.0, arcs_per_state=3)
    while len(good["ilabels"]) < 2:
        good = random_graph(rng, 4, 3, epsilon=0.0, arcs_per_state=3)

    def broken(**changes):
        return {**good, **changes}

    cycle = broken(
        arc_offsets=np.array([0, 1, 2, 2, 2]),
        ilabels=np.array([0, 0], np.int32),
        olabels=np.zeros(2, np.int32),
        weights=np.zeros(2, np.float32),
        nextstates=np.array([1, 0], np.int32),
    )
    with pytest.raises(TensorError, match="epsilon cycle"):
        WfstDecoder(cycle)
    unsorted = broken(arc_offsets=np.array([0, len(good["ilabels"]), *[len(good["ilabels"])] * 3]))
    unsorted["ilabels"] = np.array([2, 1, *good["ilabels"][2:]], np.int32)
    with pytest.raises(TensorError, match="sorted by ilabel"):
        WfstDecoder(unsorted)
    with pytest.raises(TensorError, match="nextstates"):
        WfstDecoder(broken(nextstates=np.full_like(good["nextstates"], 4)))
    with pytest.raises(TensorError, match="ilabels"):
        WfstDecoder(broken(ilabels=np.full_like(good["ilabels"], 4)))
    with pytest.raises(TensorError, match="weights"):
        WfstDecoder(broken(weights=np.full_like(good["weights"], np.nan)))
    with pytest.raises(TensorError, match="arc_offsets"):
        WfstDecoder(broken(arc_offsets=good["arc_offsets"][:-1]))
    with pytest.raises(TensorError, match="start"):
        WfstDecoder(broken(start=np.int64(4)))
    with pytest.raises(TensorError, match="blank"):
        WfstDecoder(broken(blank=np.int64(3)))
    with pytest.raises(InputFileError, match="num_tokens"):
        WfstDecoder({k: v for k, v in good.items() if k != "num_tokens"})
    with pytest.raises(InvalidArgumentError, match="words"):
        WfstDecoder(broken(olabels=np.full_like(good["olabels"], 9)), words=WORDS)


@pytest.mark.parametrize(
    ("option", "value"),
    [("beam", 0.0), ("beam", math.nan), ("max_active", 0), ("acoustic_scale", 0.0), ("lattice_beam", -1.0),
     ("nbest", 0), ("num_threads", 0), ("blank_skip_threshold", math.nan), ("backend", "triton"),
     ("word_boundary", "|"), ("word_boundary", 3), ("word_boundary", -1)],
)  # fmt: skip
def test_bad_options_are_named(option, value):
    graph = random_graph(np.random.default_rng(53), 4, 3)
    with pytest.raises(InvalidArgumentError, match=option):
        WfstDecoder(graph, **{option: value})


def test_reference_decode_agrees_with_hand_computed_paths():
    # Two words over tokens {1: "a", 2: "b"} (blank 0): "a" costs 1.0, "b" costs 0.25.
    # State 0 loops on blank (ilabel 1) and goes to final state 1 on "a" or "b"; 1 loops on blank.
    graph = DecodingGraph(
        start=0,
        final_weights=np.array([np.inf, 0.0], np.float32),
        arc_offsets=np.array([0, 3, 4]),
        ilabels=np.array([1, 2, 3, 1], np.int32),
        olabels=np.array([0, 1, 2, 0], np.int32),
        weights=np.array([0.0, 1.0, 0.25, 0.0], np.float32),
        nextstates=np.array([0, 1, 1, 1], np.int32),
        num_tokens=3,
        blank=0,
        topology="standard",
    )
    p = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.8, 0.1, 0.1]]))
    best = reference.decode(graph, p, wfst_options(nbest=2))
    # "a": blank, a, blank = ln .7 + ln .5 + ln .8 - 1.0; "b": ln .7 + ln .4 + ln .8 - 0.25.
    cost_a = -(math.log(0.7) + math.log(0.5) + math.log(0.8)) + 1.0
    cost_b = -(math.log(0.7) + math.log(0.4) + math.log(0.8)) + 0.25
    assert [r.words for r in best] == [(2,), (1,)]
    assert [r.cost for r in best] == pytest.approx([cost_b, cost_a])
    assert best[0].tokens == (2,) and best[0].token_frames == (1,) and best[0].word_frames == ((1, 1),)
    native = WfstDecoder(dataclasses.asdict(graph), nbest=2, words=["<eps>", "a", "b"])(p[None].astype(np.float32))[0]
    assert [h.words for h in native] == [("b",), ("a",)]
    assert [-h.score for h in native] == pytest.approx([cost_b, cost_a], abs=1e-5)


@pytest.mark.parametrize("boundary", [1, 2])
def test_word_boundary_times_equal_the_reference(boundary):
    rng = np.random.default_rng(59 + boundary)
    grouped = 0
    for _ in range(20):
        graph = random_graph(rng, 8, 4, word=0.4)
        x = random_log_probs(rng, 3, 10, 4)
        native, ref = decoders(graph, beam=math.inf, max_active=10**6, word_boundary=boundary)
        for got, want in zip(native(x), ref(x), strict=True):
            for g, w in zip(got, want, strict=True):
                assert_same_hypothesis(g, w)
                groups = [t for t in " ".join(map(str, g.tokens)).split(str(boundary)) if t.strip()]
                grouped += len(groups) == len(g.words) > 0
    assert grouped > 0  # the boundary rule, not only the fallback, was compared


def _tlg(tmp_path_factory, topology: str):
    pytest.importorskip("pywrapfst")
    from speechdecode.graphs import char_lexicon, char_tokens
    from speechdecode.graphs.compile import compile_graph
    from speechdecode.lm.counts import count_sentences
    from speechdecode.lm.estimate import estimate
    from speechdecode.testing.sentences import SentenceGenerator

    sentences = SentenceGenerator(seed=7).sentences(400)
    words = sorted({w for s in sentences for w in s.split()})
    out = tmp_path_factory.mktemp(f"tlg_{topology}")
    graph = compile_graph(
        char_tokens(words), char_lexicon(words), estimate(count_sentences(sentences, 3), "mkn"),
        topology=topology, allow_oov=True,
    )  # fmt: skip
    graph.write(out)
    return out, sentences, char_tokens(words)


@pytest.fixture(scope="module", params=["compact", "standard"])
def tlg(request, tmp_path_factory):
    return _tlg(tmp_path_factory, request.param)


def test_tlg_recovers_simulated_sentences_with_their_word_times(tlg):
    from speechdecode.testing.ctc_simulator import CtcPosteriorSimulator

    graph_dir, sentences, tokens = tlg
    decoder = WfstDecoder(graph_dir, beam=30.0, max_active=10000, nbest=2, lattice_beam=30.0, word_boundary="|")
    assert decoder.num_tokens == len(tokens)
    chosen = sentences[:: len(sentences) // 12][:12]
    labels = [[tokens.id(c) for w in s.split() for c in (*w, "|")] for s in chosen]
    sim = CtcPosteriorSimulator(num_labels=len(tokens), seed=3, confusion=0.1)
    log_probs, lengths, alignments = sim.simulate(labels, return_alignment=True)
    greedy_errors = 0
    for b, nbest in enumerate(decoder(log_probs, lengths)):
        best = nbest[0]
        assert best.text == chosen[b]
        assert best.reached_final
        assert list(best.tokens) == labels[b]
        a = alignments[b]
        starts = [t for t in range(len(a)) if a[t] != tokens.id("<blk>") and (t == 0 or a[t] != a[t - 1])]
        # The best alignment may move a token's start by a frame where noise beats the peak.
        assert np.abs(np.array(best.token_frames) - starts).max() <= 1
        truth, i = [], 0
        for w in chosen[b].split():  # the frames of a word's first and last character
            truth.append((starts[i], starts[i + len(w) - 1]))
            i += len(w) + 1
        assert np.abs(np.array(best.word_frames) - truth).max() <= 1
        assert len(nbest) == 2 and nbest[1].words != best.words and nbest[1].score <= best.score
        greedy = log_probs[b, : lengths[b]].argmax(-1)
        collapsed = [int(k) for t, k in enumerate(greedy) if k != 0 and (t == 0 or k != greedy[t - 1])]
        greedy_errors += collapsed != labels[b]
    assert greedy_errors > 0  # the posteriors hold errors that the graph's LM repaired


def test_tlg_streaming_equals_offline(tlg):
    from speechdecode.testing.ctc_simulator import CtcPosteriorSimulator

    graph_dir, sentences, tokens = tlg
    decoder = WfstDecoder(graph_dir, beam=10.0, max_active=300, nbest=3, lattice_beam=4.0)
    labels = [tokens.id(c) for w in sentences[5].split() for c in (*w, "|")]
    log_probs, lengths = CtcPosteriorSimulator(num_labels=len(tokens), seed=4).simulate([labels])
    offline = decoder(log_probs, lengths)[0]
    stream = decoder.stream()
    for start in range(0, int(lengths[0]), 7):
        stream.accept(log_probs[0, start : min(start + 7, int(lengths[0]))])
        assert stream.partial() is not None
    assert stream.finish() == offline


def test_long_utterance_past_token_collection_equals_the_reference():
    # 4000 frames over the ~20 states of this graph make ~80k tokens: several collections of
    # the tokens off the best paths (1-best mode), whose back-pointers are renumbered.
    rng = np.random.default_rng(61)
    graph = random_graph(rng, 20, 3, arcs_per_state=6, epsilon=0.1)
    x = random_log_probs(rng, 1, 4000, 3)
    native, ref = decoders(graph, beam=math.inf, max_active=10**6)
    got, want = native(x)[0], ref(x)[0]
    assert len(got) == len(want) == 1
    assert_same_hypothesis(got[0], want[0], tol=1e-3)
    stream = native.stream()
    for start in range(0, 4000, 999):
        stream.accept(x[0, start : start + 999])
    assert stream.finish() == got


def test_integer_arrays_that_do_not_fit_int32_are_refused():
    graph = {
        "start": 0, "final_weights": np.array([np.inf, 0.0], np.float32), "arc_offsets": np.array([0, 2, 4]),
        "ilabels": np.array([1, 2, 1, 2]), "olabels": np.array([0, 1, 0, 0]), "weights": np.zeros(4),
        "nextstates": np.array([0, 1, 1, 1], np.int64), "num_tokens": 2, "blank": 0,
    }  # fmt: skip
    assert WfstDecoder(graph).arrays.nextstates.tolist() == [0, 1, 1, 1]  # int64 values that fit are read
    graph["nextstates"] = np.array([0, 2**32 + 1, 1, 1], np.int64)  # a cast would read it as 1
    with pytest.raises(TensorError, match=r"graph nextstates: expected values that fit int32, got 4294967297 at \[1\]"):
        WfstDecoder(graph)
    graph["nextstates"] = np.array([0, 1, 1, 1], np.int64)
    graph["ilabels"] = np.array([1, 2, -(2**31) - 5, 2])
    with pytest.raises(TensorError, match=r"graph ilabels: expected values that fit int32, got -2147483653 at \[2\]"):
        WfstDecoder(graph)
