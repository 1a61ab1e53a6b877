"""ctc_greedy: every backend against the reference, the reference against a plain loop."""

import itertools
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from speechdecode import _backend
from speechdecode.decoding import ctc_greedy, ctc_greedy_packed
from speechdecode.errors import BackendUnavailableError, InvalidArgumentError, TensorError

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def loop_greedy(scores: np.ndarray, length: int, blank: int) -> tuple[list[int], list[int]]:
    """Best path by hand: first maximum per frame, merge repeats, drop blanks."""
    tokens, frames, previous = [], [], None
    for t in range(length):
        row = scores[t].tolist()
        best = row.index(max(row))
        if best != previous and best != blank:
            tokens.append(best)
            frames.append(t)
        previous = best
    return tokens, frames


def random_scores(rng, batch, frames, vocab, blank=0):
    """Peaky random log-probs: blank often wins, runs of repeated labels occur."""
    x = rng.standard_normal((batch, frames, vocab)).astype(np.float32)
    winners = rng.integers(0, vocab, size=(batch, frames))
    winners = np.where(rng.random((batch, frames)) < 0.4, blank, winners)
    winners = np.maximum.accumulate(winners * (rng.random((batch, frames)) < 0.6), axis=1) % vocab
    np.put_along_axis(x, winners[..., None], 4.0, axis=2)
    return x


def as_lists(packed):
    tokens, frames, offsets = (a.cpu().tolist() for a in packed)
    return [(tokens[a:b], frames[a:b]) for a, b in itertools.pairwise(offsets)]


def test_reference_matches_plain_loop():
    rng = np.random.default_rng(1)
    for batch, frames, vocab in [(1, 1, 1), (3, 17, 5), (2, 64, 29), (4, 33, 2)]:
        x = random_scores(rng, batch, frames, vocab)
        lengths = rng.integers(0, frames + 1, size=batch)
        blank = int(rng.integers(0, vocab))
        got = as_lists(ctc_greedy_packed(x, lengths, blank, backend="reference"))
        assert got == [loop_greedy(x[b], lengths[b], blank) for b in range(batch)]


SHAPES = [(1, 1, 1), (1, 1, 2), (3, 31, 5), (2, 255, 257), (5, 257, 256), (2, 513, 31), (7, 40, 1000)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_backends_match_reference(backend_device, shape, dtype):
    backend, device = backend_device
    rng = np.random.default_rng(sum(shape))
    x = torch.from_numpy(random_scores(rng, *shape)).to(dtype)
    lengths = torch.from_numpy(rng.integers(0, shape[1] + 1, size=shape[0]))
    lengths[0] = shape[1]
    blank = int(rng.integers(0, shape[2]))
    expected = as_lists(ctc_greedy_packed(x, lengths, blank, backend="reference"))
    got = as_lists(ctc_greedy_packed(x.to(device), lengths.to(device), blank, backend=backend))
    assert got == expected


def test_ties_go_to_the_first_maximum(backend_device):
    backend, device = backend_device
    rng = np.random.default_rng(7)
    # Small integers make most frames tie between several labels; -0.0 and +0.0 tie too.
    x = rng.integers(-2, 1, size=(3, 90, 37)).astype(np.float32)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    for dtype in DTYPES:
        t = torch.from_numpy(x).to(dtype)
        got = as_lists(ctc_greedy_packed(t.to(device), None, 3, backend=backend))
        assert got == [loop_greedy(x[b], 90, 3) for b in range(3)]


def test_minus_infinity_is_a_valid_score(backend_device):
    backend, device = backend_device
    x = np.full((2, 6, 4), -np.inf, dtype=np.float32)
    x[0, :, 2] = 0.0  # one label certain, log 1 = 0
    x[0, 3, :] = [-np.inf, -1.0, -np.inf, -np.inf]
    # utterance 1: every label impossible in every frame -> argmax is label 0 (the first)
    got = as_lists(ctc_greedy_packed(torch.from_numpy(x).to(device), None, 0, backend=backend))
    assert got == [([2, 1, 2], [0, 3, 4]), ([], [])]


def test_non_contiguous_inputs(backend_device):
    backend, device = backend_device
    rng = np.random.default_rng(3)
    base = torch.from_numpy(random_scores(rng, 40, 6, 23)).to(device)
    views = {
        "transposed": base.transpose(0, 1),  # [6, 40, 23]
        "strided-time": base.transpose(0, 1)[:, ::3],
        "strided-vocab": torch.from_numpy(random_scores(rng, 3, 20, 46)).to(device)[:, :, ::2],
    }
    for name, view in views.items():
        assert not view.is_contiguous(), name
        expected = as_lists(ctc_greedy_packed(view.contiguous(), None, 0, backend="reference"))
        assert as_lists(ctc_greedy_packed(view, None, 0, backend=backend)) == expected, name


def test_padding_past_lengths_is_ignored(backend_device):
    backend, device = backend_device
    x = random_scores(np.random.default_rng(4), 3, 12, 7)
    x[0, 5:] = np.nan
    x[1, 9, 3] = np.inf
    lengths = np.array([5, 9, 0])
    got = as_lists(ctc_greedy_packed(torch.from_numpy(x).to(device), lengths, 0, backend=backend))
    assert got == [loop_greedy(x[0], 5, 0), loop_greedy(x[1], 9, 0), ([], [])]


@pytest.mark.parametrize(
    "bad, kind", [(np.nan, "NaN"), (-np.nan, "NaN"), (np.inf, "+inf")], ids=["nan", "negative-nan", "inf"]
)
def test_invalid_scores_are_named_with_position(backend_device, bad, kind):
    backend, device = backend_device
    x = np.zeros((3, 8, 5), dtype=np.float32)
    x[2, 6, 4] = bad
    x[1, 7, 1] = bad  # first in (b, t, v) order
    for dtype in DTYPES:
        t = torch.from_numpy(x).to(dtype).to(device)
        with pytest.raises(TensorError, match=rf"log_probs: .* got {re_escape(kind)} at \[1, 7, 1\]"):
            ctc_greedy(t, backend=backend)


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


def test_output_follows_input_framework():
    x = random_scores(np.random.default_rng(5), 2, 30, 6)
    from_numpy = ctc_greedy(x)
    from_torch = ctc_greedy(torch.from_numpy(x))
    assert all(isinstance(h.tokens, np.ndarray) and h.tokens.dtype == np.int64 for h in from_numpy)
    assert all(isinstance(h.token_frames, torch.Tensor) and h.token_frames.dtype == torch.int64 for h in from_torch)
    assert [h.tokens.tolist() for h in from_numpy] == [h.tokens.tolist() for h in from_torch]
    assert len(from_numpy) == 2


def test_docstring_example():
    x = np.log(np.eye(4, dtype=np.float32)[[1, 1, 0, 1, 2, 2]] + 1e-3)[None]
    hyp = ctc_greedy(x)[0]
    assert (hyp.tokens.tolist(), hyp.token_frames.tolist()) == ([1, 1, 2], [0, 3, 4])


@pytest.mark.parametrize(
    "lengths, message",
    [
        ([3, 11], r"lengths: expected values in \[0, 10\], got 11 at \[1\]"),
        ([-1, 2], r"lengths: expected values in \[0, 10\], got -1 at \[0\]"),
        ([3], r"lengths: expected shape \[2\]"),
        (np.array([3.0, 2.0]), r"lengths: expected an integer dtype"),
    ],
)
def test_bad_lengths(backend_device, lengths, message):
    backend, device = backend_device
    x = torch.zeros((2, 10, 4), device=device)
    with pytest.raises(TensorError, match=message):
        ctc_greedy(x, lengths, backend=backend)


def test_bad_arguments():
    with pytest.raises(TensorError, match=r"log_probs: expected a 3-D array, got float32 array of shape \[10, 4\]"):
        ctc_greedy(np.zeros((10, 4), np.float32))
    with pytest.raises(TensorError, match=r"expected dtype float32, float16 or bfloat16, got float64"):
        ctc_greedy(np.zeros((1, 10, 4)))
    with pytest.raises(TensorError, match=r"expected dtype float32, float16 or bfloat16, got int64"):
        ctc_greedy(torch.zeros((1, 10, 4), dtype=torch.int64))
    with pytest.raises(TensorError, match=r"a numpy array or a torch tensor, got list"):
        ctc_greedy([[[0.0]]])
    with pytest.raises(InvalidArgumentError, match=r"blank: expected a label id in \[0, 4\), got 4"):
        ctc_greedy(np.zeros((1, 10, 4), np.float32), blank=4)
    with pytest.raises(InvalidArgumentError, match=r"blank: expected an integer label id, got True"):
        ctc_greedy(np.zeros((1, 10, 4), np.float32), blank=True)
    with pytest.raises(TensorError, match=r"at least one label"):
        ctc_greedy(np.zeros((1, 10, 0), np.float32))
    with pytest.raises(InvalidArgumentError, match=r"backend: expected one of reference, native, triton"):
        ctc_greedy(np.zeros((1, 10, 4), np.float32), backend="cuda")


def test_native_binding_checks_its_own_arguments():
    native = _backend.native()
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(TensorError, match=r"lengths: expected a contiguous int64 array, got int32"):
        native.ctc_greedy(x, np.array([1, 2], np.int32), 0)
    with pytest.raises(TensorError, match=r"log_probs: expected dtype float32, got float64"):
        native.ctc_greedy(x.astype(np.float64), None, 0)
    with pytest.raises(TensorError, match=r"contiguous last \(vocabulary\) axis"):
        native.ctc_greedy(np.zeros((2, 5, 6), np.float32)[:, :, ::2], None, 0)
    with pytest.raises(TensorError, match=r"lengths: expected values in \[0, 5\], got 9 at \[1\]"):
        native.ctc_greedy(x, np.array([1, 9]), 0)
    with pytest.raises(TensorError, match=r"blank: expected a label id in \[0, 3\), got -1"):
        native.ctc_greedy(x, None, -1)


def test_forced_backend(monkeypatch):
    calls = []
    from speechdecode.kernels.ctc_greedy import reference

    original = reference.ctc_greedy
    monkeypatch.setattr(reference, "ctc_greedy", lambda *a: calls.append(1) or original(*a))
    x = np.zeros((1, 4, 3), np.float32)
    ctc_greedy(x)
    assert calls == []  # native is the default on CPU
    monkeypatch.setenv("SPEECHDECODE_BACKEND", "reference")
    ctc_greedy(x)
    assert calls == [1]
    monkeypatch.setenv("SPEECHDECODE_BACKEND", "gpu")
    with pytest.raises(InvalidArgumentError, match="SPEECHDECODE_BACKEND: expected one of"):
        ctc_greedy(x)
    monkeypatch.setenv("SPEECHDECODE_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="Triton needs CUDA inputs, or TRITON_INTERPRET=1"):
        ctc_greedy(x)


def test_native_releases_the_gil_and_runs_concurrently():
    rng = np.random.default_rng(11)
    inputs = [random_scores(rng, 16, 1500, 512) for _ in range(2)]
    expected = [as_lists(ctc_greedy_packed(x, backend="reference")) for x in inputs]
    results = [[], []]
    done = threading.Event()

    def work(i):
        for _ in range(200):  # at most: ends the test if this thread never got to run
            results[i].append(as_lists(ctc_greedy_packed(inputs[i], backend="native", num_threads=1)))
            if done.is_set():
                return

    # With a 60 s switch interval a thread that holds the GIL keeps it: while the workers are
    # alive this thread can count only while a worker's native call has released the GIL (a
    # loaded machine may delay it, but not for the 200 calls).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        ticks = 0
        while ticks < 1000 and any(t.is_alive() for t in threads):
            ticks += 1
        done.set()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert ticks == 1000
    for i in range(2):
        assert results[i] and all(r == expected[i] for r in results[i])


def test_imports_and_works_without_the_extension():
    code = (
        "import sys, numpy as np\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'speechdecode._native': raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from speechdecode import _backend\n"
        "from speechdecode.decoding import ctc_greedy\n"
        "assert not _backend.HAS_NATIVE and 'blocked' in _backend.NATIVE_IMPORT_ERROR\n"
        "assert _backend.select('cpu') == 'reference'\n"
        "x = np.log(np.eye(3, dtype=np.float32)[[1, 0, 2, 2]] + 1e-4)[None]\n"
        "print(ctc_greedy(x)[0].tokens.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1, 2]"
