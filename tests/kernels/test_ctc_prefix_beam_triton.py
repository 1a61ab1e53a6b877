"""The Triton CTC prefix beam search against the plain-Python reference search.

Runs on CUDA when there is one, else in Triton's CPU interpreter (tests/conftest.py sets
TRITON_INTERPRET=1), so the shapes stay tiny. n-best token sequences and token frames must be
equal; scores agree within float32 rounding (the kernel adds in float32, the reference in float64).
"""

from __future__ import annotations

import doctest
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from speechdecode.bench import bench_ctc_gpu
from speechdecode.bench.harness import Suite
from speechdecode.decoding import CtcPrefixBeamSearch
from speechdecode.decoding.text import token_pieces
from speechdecode.errors import BackendUnavailableError, InvalidArgumentError, TensorError
from speechdecode.kernels.ctc_prefix_beam import options as search_options
from speechdecode.kernels.ctc_prefix_beam.reference import ctc_prefix_beam_search
from speechdecode.kernels.ctc_prefix_beam.triton import prefix_beam_search

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SCORE_TOLERANCE = 1e-4


def reference(x: torch.Tensor, lengths, **options):
    """The reference's n-best lists as (tokens, score, token_frames), with single-character tokens."""
    vocab = x.shape[2]
    blank = options.pop("blank")
    nbest = options.pop("nbest")
    pieces = token_pieces([chr(ord("a") + v) for v in range(vocab)], blank, None)
    results = ctc_prefix_beam_search(
        x.float().numpy(), list(lengths), pieces, nbest, search_options(blank=blank, **options)
    )
    return [[(h.tokens, h.score, h.token_frames) for h in hyps] for hyps in results]


def assert_same(got, want):
    assert len(got) == len(want)
    for b, (g, w) in enumerate(zip(got, want, strict=True)):
        assert [h[0] for h in g] == [h[0] for h in w], f"utterance {b}: n-best token sequences differ"
        assert [h[2] for h in g] == [h[2] for h in w], f"utterance {b}: token frames differ"
        for (_, gs, _), (_, ws, _) in zip(g, w, strict=True):
            assert gs == pytest.approx(ws, abs=SCORE_TOLERANCE), f"utterance {b}: score {gs} vs {ws}"


def run_both(x: torch.Tensor, lengths, **options):
    got = prefix_beam_search(x.to(DEVICE), torch.tensor(lengths).to(DEVICE), **options)
    want = reference(x, lengths, **options)
    assert_same(got, want)
    return want


@pytest.mark.parametrize(
    ("batch", "frames", "vocab", "beam", "topk", "lengths"),
    [
        (1, 1, 5, 2, 2, [1]),
        (3, 7, 13, 4, 5, [7, 0, 4]),
        (3, 7, 40, 1, 3, [2, 7, 5]),
        (1, 33, 5, 10, 4, [33]),
        (3, 33, 40, 10, 8, [33, 0, 17]),
        (3, 33, 13, 4, 12, [9, 21, 1]),
    ],
)
def test_matches_reference_on_random_posteriors(batch, frames, vocab, beam, topk, lengths):
    gen = torch.Generator().manual_seed(batch * 1000 + frames * 10 + vocab)
    x = torch.log_softmax(2.0 * torch.randn(batch, frames, vocab, generator=gen), dim=-1)
    want = run_both(
        x, lengths, blank=vocab // 2, beam=beam, token_topk=topk, token_min_logp=-8.0, beam_threshold=12.0, nbest=beam
    )
    assert any(len(tokens) >= min(frames, 2) for hyps in want for tokens, _, _ in hyps)  # work to do
    assert all(hyps == [((), 0.0, ())] for hyps, n in zip(want, lengths, strict=True) if n == 0)


@pytest.mark.parametrize("seed", range(6))
def test_exact_ties_break_by_prefix_order(seed):
    # scores from a few integer log-probabilities: many candidates tie exactly, in float32 and
    # float64 alike, so the order of equal scores (by token tuple) decides what survives
    gen = torch.Generator().manual_seed(seed)
    x = -torch.randint(0, 3, (2, 9, 5), generator=gen).float()
    beam, topk, threshold = [(1, 2, 2.0), (4, 4, 20.0), (10, 3, math.inf)][seed % 3]
    run_both(
        x, [9, 7], blank=seed % 5, beam=beam, token_topk=topk, token_min_logp=-2.5, beam_threshold=threshold, nbest=4
    )


def test_equal_scores_keep_the_smaller_token_tuple():
    # frame 0: tokens 1..4 tie at -1 below the blank at 0; frame 1: all blank. Beam 3 keeps (),
    # then (1,) and (2,), the smallest tuples among the tied ones: (1,) and (2,) both score
    # -1 + 0 = -1 after the blank frame, () scores 0
    x = torch.tensor([[[0.0, -1.0, -1.0, -1.0, -1.0], [0.0, -5.0, -5.0, -5.0, -5.0]]])
    got = prefix_beam_search(
        x.to(DEVICE), [2], blank=0, beam=3, token_topk=4, token_min_logp=-2.0, beam_threshold=10.0, nbest=3
    )
    assert [(tokens, frames) for tokens, _, frames in got[0]] == [((), ()), ((1,), (0,)), ((2,), (0,))]
    assert [score for _, score, _ in got[0]] == pytest.approx([0.0, -1.0, -1.0], abs=1e-6)


def test_minus_infinity_scores_and_unbounded_options():
    gen = torch.Generator().manual_seed(5)
    x = torch.log_softmax(torch.randn(2, 6, 7, generator=gen), dim=-1)
    x[0, 2, 3] = -math.inf
    x[1, :, 0] = -math.inf  # the blank is impossible in utterance 1
    run_both(x, [6, 6], blank=0, beam=4, token_topk=6, token_min_logp=-math.inf, beam_threshold=math.inf, nbest=3)


def test_strided_and_half_precision_inputs():
    gen = torch.Generator().manual_seed(11)
    wide = torch.log_softmax(torch.randn(2, 8, 12, generator=gen), dim=-1).half()
    x = wide[:, ::2, :]  # non-contiguous frames; float16 is read as float32
    got = prefix_beam_search(
        x.to(DEVICE), [4, 3], blank=1, beam=4, token_topk=5, token_min_logp=-9.0, beam_threshold=15.0, nbest=2
    )
    want = reference(
        x.float(), [4, 3], blank=1, beam=4, token_topk=5, token_min_logp=-9.0, beam_threshold=15.0, nbest=2
    )
    assert_same(got, want)


def test_docstring_example():
    from speechdecode.kernels.ctc_prefix_beam import triton as module

    assert doctest.testmod(module).failed == 0


OPTIONS = {"blank": 0, "beam": 2, "token_topk": 2, "token_min_logp": -10.0, "beam_threshold": 10.0, "nbest": 1}


def test_bad_input_names_the_argument(monkeypatch):
    x = torch.zeros(2, 3, 4, device=DEVICE)
    x[1, 2, 3] = math.nan
    with pytest.raises(TensorError, match=r"NaN at \[1, 2, 3\]"):
        prefix_beam_search(x, [3, 3], **OPTIONS)
    # past utterance 1's end, the NaN is not read
    assert_same(prefix_beam_search(x, [3, 2], **OPTIONS), reference(x.cpu(), [3, 2], **OPTIONS))
    with pytest.raises(TensorError, match=r"lengths: expected values in \[0, 3\], got 4 at \[0\]"):
        prefix_beam_search(x, [4, 0], **OPTIONS)
    with pytest.raises(TensorError, match="log_probs: expected a 3-D array"):
        prefix_beam_search(x[0], [3], **OPTIONS)
    with pytest.raises(TensorError, match="dtype float32, float16 or bfloat16"):
        prefix_beam_search(x.long(), [3, 3], **OPTIONS)
    with pytest.raises(InvalidArgumentError, match=r"blank: expected a label id in \[0, 4\), got 4"):
        prefix_beam_search(x, [1, 1], **{**OPTIONS, "blank": 4})
    for name, value in (("beam", 0), ("token_topk", 1.5), ("nbest", True), ("beam_threshold", -1.0)):
        with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
            prefix_beam_search(x, [1, 1], **{**OPTIONS, name: value})
    if DEVICE == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(TensorError, match="log_probs: expected a CUDA tensor"):
            prefix_beam_search(x, [3, 3], **OPTIONS)
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert prefix_beam_search(torch.zeros(0, 3, 4, device=DEVICE), torch.zeros(0, dtype=torch.int64), **OPTIONS) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_benchmark_suite_needs_cuda(tmp_path):
    from speechdecode.bench import run

    with pytest.raises(BackendUnavailableError, match="needs a CUDA GPU"):
        run("ctc_gpu", out_dir=tmp_path, quick=True)


def test_benchmark_cases_on_a_tiny_input(tmp_path):
    # the suite's own case logic (inputs, the output check against the C++ search, rows) on a tiny size
    with Suite("ctc_gpu", tmp_path, warmup=0, repeats=1, min_seconds=0.0) as suite:
        bench_ctc_gpu.add_cases(suite, [(2, 6, 7, 3)], DEVICE, token_topk=3)
        doc = suite.finish()
    rows = {r["impl"]: r for r in doc["rows"]}
    assert set(rows) == {"C++ CPU search (1 thread)", "C++ CPU search (all cores)", "Triton GPU search"}
    assert [r["impl"] for r in doc["rows"] if r["anchor"]] == ["C++ CPU search (all cores)"]
    assert all(r["case"] == "B=2 T=6 V=7 beam=3" and r["items"] == 12 for r in doc["rows"])
    assert np.isclose(
        rows["Triton GPU search"]["ratio"],
        rows["C++ CPU search (all cores)"]["median_ms"] / rows["Triton GPU search"]["median_ms"],
    )
    assert (tmp_path / "ctc_gpu.md").read_text().count("| B=2 T=6 V=7 beam=3 |") == 3


def test_kernel_module_imports_first():
    """The kernel's package imports on its own (no import cycle through speechdecode.decoding)."""
    code = "import speechdecode.kernels.ctc_prefix_beam.triton as t; print(t.prefix_beam_search.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "prefix_beam_search", out.stderr


def test_decoder_dispatches_to_triton_with_words_and_frames():
    """CtcPrefixBeamSearch(backend="triton") gives the native search's hypotheses, words included."""
    gen = torch.Generator().manual_seed(11)
    tokens = ["-", "|", "a", "b", "c"]
    x = torch.log_softmax(3 * torch.randn(3, 9, len(tokens), generator=gen), dim=-1)
    lengths = [9, 0, 6]
    options = {"blank": 0, "beam": 4, "token_topk": 3, "nbest": 3}
    got = CtcPrefixBeamSearch(tokens, backend="triton", **options)(x.to(DEVICE), lengths)
    want = CtcPrefixBeamSearch(tokens, backend="native", **options)(x, lengths)
    assert [len(n) for n in got] == [len(n) for n in want]
    for g_list, w_list in zip(got, want, strict=True):
        for g, w in zip(g_list, w_list, strict=True):
            assert (g.tokens, g.words, g.token_frames, g.word_frames) == (
                w.tokens,
                w.words,
                w.token_frames,
                w.word_frames,
            )
            assert g.score == pytest.approx(w.score, abs=SCORE_TOLERANCE) and g.lm_score == w.lm_score == 0.0
    assert any(len(n[0].words) > 1 for n in got)  # the word grouping was exercised


def test_decoder_refuses_triton_for_what_it_lacks():
    with pytest.raises(InvalidArgumentError, match="backend: expected native or reference"):
        CtcPrefixBeamSearch(["-", "a"], word_boundary=None, backend="triton", hotwords=[([1], 1.0)])
    with pytest.raises(InvalidArgumentError, match="backend: expected native or reference"):
        CtcPrefixBeamSearch(["-", "a"], backend="triton", viterbi=True)
