"""Every public decoding and LM object used from 8 threads at once gives the single-threaded results.

Objects shared by all threads (an NgramModel, a decoder), objects made per thread (streams,
streamers), and one stream shared by all threads (the prefix and WFST streams take a lock:
accepting the same chunk from 8 threads must equal one thread accepting it 8 times, and a torn
accept would interleave frames). The threads start together (a barrier); a thread still running
after the timeout is a hang. The shared-stream cases run in a child process, so that a crash (a
double free) fails the test instead of ending the run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from probing import DATA, ROOT

from speechdecode import _backend
from speechdecode.decoding import CtcPrefixBeamSearch, CtcUnitStreamer, WfstDecoder, ctc_greedy, ras, sample
from speechdecode.lm import NgramModel

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")

THREADS = 8
TIMEOUT = 120.0
HERE = Path(__file__).parent


def run_threads(work, n: int = THREADS) -> list:
    """``work(i)`` on n threads started together; their results in thread order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            results[i] = work(i)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), f"hang: a thread still runs after {TIMEOUT:.0f} s"
    if errors:
        raise errors[0]
    return results


def log_probs(seed: int, batch: int, frames: int, vocab: int, sharp: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return torch.log_softmax(torch.from_numpy(rng.standard_normal((batch, frames, vocab)) * sharp), -1).float().numpy()


# --- n-gram models ------------------------------------------------------------------------------

SENTENCES = [*(DATA / "lmplz" / "kjv400.txt").read_text().splitlines()[:40], "zebra <unk> the", ""]


@pytest.fixture(scope="module", params=["kjv400.o3.arpa.gz", "kjv400.o3.prune11.trie-q8b8a22.bin"])
def model(request) -> NgramModel:
    folder = "lmplz" if request.param.endswith(".gz") else "kenlm"
    return NgramModel.load(DATA / folder / request.param)


def test_ngram_model_shared(model):
    want_scores = [model.score(s) for s in SENTENCES]
    want_batch = model.score_batch(SENTENCES, num_threads=1)
    ids = [np.array([model.word_id(w) for w in s.split()], dtype=np.int64) for s in SENTENCES]
    want_ids = model.score_batch(ids, eos=False, num_threads=1)

    def walk(sentence: str) -> tuple:
        state, total = model.begin_state(), 0.0
        for word in sentence.split():
            p, state = model.score_word(state, word)
            total += p
        return total, state

    want_walks = [walk(s) for s in SENTENCES]
    states = np.full((len(SENTENCES), model.order - 1), -1, dtype=np.int64)
    for r, (_, state) in enumerate(want_walks):
        states[r, : len(state)] = state
    words = np.array([model.word_id("the")] * len(SENTENCES), dtype=np.int64)
    want_step = model.score_words(states, words, num_threads=1)

    def work(i: int) -> bool:
        for _ in range(3):
            order = list(range(i, len(SENTENCES))) + list(range(i))  # each thread starts elsewhere
            assert [model.score(SENTENCES[k]) for k in order] == [want_scores[k] for k in order]
            np.testing.assert_array_equal(model.score_batch(SENTENCES, num_threads=2), want_batch)
            np.testing.assert_array_equal(model.score_batch(ids, eos=False), want_ids)
            assert [walk(SENTENCES[k]) for k in order] == [want_walks[k] for k in order]
            got = model.score_words(states, words, num_threads=1 + i % 2)
            np.testing.assert_array_equal(got[0], want_step[0])
            np.testing.assert_array_equal(got[1], want_step[1])
        return True

    assert run_threads(work) == [True] * THREADS


# --- the prefix beam search ---------------------------------------------------------------------

TOKENS = ["-", "|", *"abcdefghijklmnopqrstuvwxyz'"]


@pytest.fixture(scope="module")
def prefix_search() -> CtcPrefixBeamSearch:
    lm = NgramModel.load(DATA / "lmplz" / "kjv400.o3.arpa.gz")
    return CtcPrefixBeamSearch(TOKENS, blank=0, lm=lm, beam=8, nbest=3, hotwords=[("the", 1.5)], num_threads=1)


def test_prefix_search_shared_decoder_and_per_thread_streams(prefix_search):
    batches = [log_probs(100 + i, 3, 30, len(TOKENS)) for i in range(THREADS)]
    want = [prefix_search(x, [30, 17, 0]) for x in batches]
    want_stream = [prefix_search(x[:1])[0] for x in batches]

    def work(i: int) -> bool:
        for _ in range(2):
            assert prefix_search(batches[i], [30, 17, 0]) == want[i]
            stream = prefix_search.stream()
            for start in range(0, 30, 7):
                stream.accept(batches[i][0, start : start + 7])
            assert stream.finish() == want_stream[i]
        return True

    assert run_threads(work) == [True] * THREADS


def run_isolated(case: str) -> None:
    """Runs ``_thread_cases.<case>()`` in a child process: a crash fails this test only."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import _thread_cases
        _thread_cases.{case}()
    """)
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=TIMEOUT * 2)  # fmt: skip
    assert out.returncode == 0, f"{case}: exit status {out.returncode}\n{out.stderr[-3000:]}"


def test_prefix_search_one_stream_shared_by_all_threads():
    run_isolated("shared_prefix_stream")


# --- the WFST decoder ---------------------------------------------------------------------------


def word_loop_graph(vocab: int = 5, seed: int = 3) -> dict:
    """Any sequence of words 1..vocab-1 (word k spelled by token k, repeated, with blanks between):
    state 0 and one state per word; every state is final."""
    rng = np.random.default_rng(seed)
    arcs = []
    for s in range(vocab):
        for token in range(vocab):  # ilabel token + 1
            if token == 0:
                arcs.append((s, 1, 0, 0.0, 0))
            elif s == token:
                arcs.append((s, token + 1, 0, 0.0, s))
            else:
                arcs.append((s, token + 1, token, float(rng.uniform(0.1, 2.0)), token))
    counts = np.bincount([a[0] for a in arcs], minlength=vocab)
    return {
        "start": 0,
        "final_weights": np.zeros(vocab, np.float32),
        "arc_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "ilabels": np.array([a[1] for a in arcs], np.int32),
        "olabels": np.array([a[2] for a in arcs], np.int32),
        "weights": np.array([a[3] for a in arcs], np.float32),
        "nextstates": np.array([a[4] for a in arcs], np.int32),
        "num_tokens": vocab,
        "blank": 0,
    }


WORDS = ["<eps>", "w1", "w2", "w3", "w4"]


def test_wfst_shared_decoder_and_per_thread_streams():
    decoder = WfstDecoder(word_loop_graph(), words=WORDS, beam=12.0, nbest=3, num_threads=1)
    batches = [log_probs(200 + i, 3, 40, 5) for i in range(THREADS)]
    want = [decoder(x, [40, 23, 0]) for x in batches]
    assert all(len(w[0]) > 0 and w[0][0].words for w in want)  # the searches find words

    def work(i: int) -> bool:
        for _ in range(2):
            assert decoder(batches[i], [40, 23, 0]) == want[i]
            stream = decoder.stream()
            for start in range(0, 40, 9):
                stream.accept(batches[i][0, start : start + 9])
            assert stream.finish() == want[i][0]
        return True

    assert run_threads(work) == [True] * THREADS


def test_wfst_one_stream_shared_by_all_threads():
    """Issue 13: two threads accepting on one WFST stream crashed (double free) before its lock."""
    run_isolated("shared_wfst_stream")


# --- greedy CTC, sampling, RAS, unit streaming ------------------------------------------------------


def test_ctc_greedy_shared():
    batches = [log_probs(300 + i, 4, 50, 9) for i in range(THREADS)]
    lengths = np.array([50, 31, 1, 0])
    want = [
        [(h.tokens.tolist(), h.token_frames.tolist()) for h in ctc_greedy(x, lengths, num_threads=1)] for x in batches
    ]

    def work(i: int) -> list:
        for _ in range(5):
            got = [(h.tokens.tolist(), h.token_frames.tolist()) for h in ctc_greedy(batches[i], lengths, num_threads=2)]
            assert got == want[i]
        return got

    assert run_threads(work) == want


def test_sample_and_ras_shared():
    rng = np.random.default_rng(5)
    logits = [torch.from_numpy(rng.standard_normal((16, 300)).astype(np.float32)) for _ in range(THREADS)]
    uniforms = [torch.from_numpy(rng.random((16, 2)).astype(np.float32)) for _ in range(THREADS)]  # ras: 2 per row
    history = torch.from_numpy(rng.integers(0, 300, (16, 12)))
    options = {"temperature": 0.8, "top_k": 50, "top_p": 0.9, "min_p": 0.01}
    want = [
        (sample(x, uniforms=u[:, 0], **options).tolist(), ras(x, history, uniforms=u, top_k=20).tolist())
        for x, u in zip(logits, uniforms, strict=True)
    ]

    def work(i: int) -> tuple:
        for _ in range(10):
            got = (sample(logits[i], uniforms=uniforms[i][:, 0], **options).tolist(),
                   ras(logits[i], history, uniforms=uniforms[i], top_k=20).tolist())  # fmt: skip
            assert got == want[i]
        return got

    assert run_threads(work) == want


def test_unit_streamers_per_thread():
    batches = [log_probs(400 + i, 2, 60, 7) for i in range(THREADS)]
    want = [[h.tokens.tolist() for h in ctc_greedy(x, blank=0)] for x in batches]

    def work(i: int) -> list:
        streamer = CtcUnitStreamer(blank=0, chunk_size=4)
        units: list[list[int]] = [[], []]
        for start in range(0, 60, 11):
            for chunk in streamer.accept(batches[i][:, start : start + 11]):
                units[chunk.row] += chunk.units.tolist()
        for chunk in streamer.finish():
            units[chunk.row] += chunk.units.tolist()
        return units

    assert run_threads(work) == want


def test_one_unit_streamer_shared_by_all_threads():
    """Pushes of the same chunk from 8 threads: the units are those of the chunk repeated 8 times
    (whatever the order, as the chunks are equal), if each push is atomic."""
    chunk = log_probs(500, 1, 9, 6)
    chunk[0, 0] = chunk[0, -1] = np.log(np.eye(6)[2] * 0.9 + 0.02)  # starts and ends on unit 2: runs join
    whole = np.concatenate([chunk] * (THREADS * 4), axis=1)
    want = ctc_greedy(whole, blank=0)[0].tokens.tolist()
    streamer = CtcUnitStreamer(blank=0, chunk_size=3)
    got: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for _ in range(4):
            made = streamer.accept(chunk)
            with lock:
                got.extend(u for c in made for u in c.units.tolist())

    run_threads(work)
    got += [u for c in streamer.finish() for u in c.units.tolist()]
    assert sorted(got) == sorted(want) and len(got) == len(want)
