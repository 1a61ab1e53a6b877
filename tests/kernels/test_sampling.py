"""Sampling: every backend against the reference, the reference against exact probabilities."""

import math

import numpy as np
import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.sampling import keep_mask, sample


def _params(gen, B, V):
    """Per-row parameters, with some filters switched off on some rows."""
    temperature = torch.rand(B, generator=gen) * 1.5 + 0.3
    top_k = torch.randint(1, V + 3, (B,), generator=gen)
    top_p = torch.rand(B, generator=gen) * 0.9 + 0.1
    top_p[torch.rand(B, generator=gen) < 0.3] = 1.0
    min_p = torch.rand(B, generator=gen) * 0.2
    min_p[torch.rand(B, generator=gen) < 0.3] = 0.0
    return dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)


@pytest.mark.parametrize("V", [1, 2, 31, 257, 1000])
def test_backends_match_reference(backend_device, V):
    name, device = backend_device
    gen = torch.Generator().manual_seed(1000 + V)
    for B in range(1, 6):
        logits = torch.randn(B, V, generator=gen) * 3
        if V > 2:
            logits[0, :: max(2, V // 5)] = float("-inf")  # masked vocabulary entries
        params = _params(gen, B, V)
        params["temperature"][B // 2] = 0.0  # one greedy row per batch
        u = torch.rand(B, generator=gen)
        want = sample(logits, uniforms=u, backend="reference", **params)
        got = sample(
            logits.to(device),
            uniforms=u.to(device),
            backend=name,
            **{k: v.to(device) for k, v in params.items()},
        )
        assert got.dtype == torch.int64 and got.device.type == device
        assert got.cpu().tolist() == want.tolist(), (B, V)


def test_backends_match_reference_noncontiguous_scalars_half(backend_device):
    name, device = backend_device
    gen = torch.Generator().manual_seed(7)
    base = (torch.randn(33, 4, generator=gen) * 2).to(torch.float16)
    logits = base.t()  # [4, 33], column-major strides
    u = torch.rand(4, generator=gen)
    kw = dict(temperature=0.8, top_k=9, top_p=0.85, min_p=0.05)
    want = sample(logits, uniforms=u, backend="reference", **kw)
    got = sample(logits.to(device), uniforms=u.to(device), backend=name, **kw)
    assert got.cpu().tolist() == want.tolist()


def _exact(logits, temperature, top_k, top_p, min_p):
    """The filtered distribution of one row in float64, by the definition (no sort shortcuts)."""
    x = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    kth = np.sort(p)[::-1][min(top_k, len(p)) - 1]
    p = np.where(p >= kth, p, 0.0)
    p /= p.sum()
    if top_p < 1:
        keep = np.array([p[p > q].sum() < top_p for q in p])
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    p = np.where(p >= min_p * p.max(), p, 0.0)
    return p / p.sum()


@pytest.mark.parametrize(
    "kw",
    [
        dict(temperature=1.0),
        dict(temperature=0.7, top_k=4),
        dict(temperature=1.3, top_p=0.6),
        dict(temperature=1.0, min_p=0.2),
        dict(temperature=0.9, top_k=6, top_p=0.8, min_p=0.1),
    ],
)
def test_reference_distribution(kw):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 12, generator=gen) * 1.5
    n = 10000
    rows = logits.expand(n, 12)
    tokens = sample(rows, generator=torch.Generator().manual_seed(4), backend="reference", **kw)
    full = dict(temperature=1.0, top_k=12, top_p=1.0, min_p=0.0) | {k: v for k, v in kw.items()}
    p = _exact(logits[0].tolist(), full["temperature"], full["top_k"], full["top_p"], full["min_p"])
    counts = np.bincount(tokens.numpy(), minlength=12)
    assert counts[p == 0].sum() == 0  # filtered tokens are never drawn
    live = p > 0
    expected = n * p[live]
    chi2 = float(((counts[live] - expected) ** 2 / expected).sum())
    dof = max(1, int(live.sum()) - 1)
    # mean dof, sd sqrt(2 dof): 6 sd is a generous bound that a wrong distribution would break
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, dof)


def test_inverse_cdf_by_hand():
    logits = torch.zeros(1, 4)
    for u, want in [(0.0, 0), (0.2, 0), (0.3, 1), (0.6, 2), (0.99, 3)]:
        assert sample(logits, uniforms=torch.tensor([u]), backend="reference").tolist() == [want]
    # top_k=2 on [3, 1, 2, 0]: tokens 0 and 2, probabilities e^3 : e^2
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    p0 = math.e / (math.e + 1)
    assert sample(logits, top_k=2, uniforms=torch.tensor([p0 - 0.01]), backend="reference").tolist() == [0]
    assert sample(logits, top_k=2, uniforms=torch.tensor([p0 + 0.01]), backend="reference").tolist() == [2]


def test_greedy(backend_device):
    name, device = backend_device
    logits = torch.tensor([[1.0, 5.0, 5.0, 2.0], [float("-inf"), -3.0, -1.0, -2.0]], device=device)
    got = sample(logits, temperature=0.0, uniforms=torch.tensor([0.99, 0.0], device=device), backend=name)
    assert got.cpu().tolist() == [1, 2]  # first index of the max on ties
    gen = torch.Generator().manual_seed(5)
    big = torch.randn(3, 50, generator=gen)
    got = sample(big.to(device), temperature=torch.tensor([0.0, 0.0, 0.0], device=device), backend=name)
    assert got.cpu().tolist() == big.argmax(dim=1).tolist()


def test_numpy_and_generator():
    logits = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
    a = sample(logits, generator=torch.Generator().manual_seed(1))
    b = sample(logits, generator=torch.Generator().manual_seed(1))
    assert isinstance(a, np.ndarray) and a.dtype == np.int64 and a.tolist() == b.tolist()
    assert sample(np.zeros((0, 5), np.float32), uniforms=torch.zeros(0)).shape == (0,)


@pytest.mark.parametrize(
    "logits, kw, cls, words",
    [
        (torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), {}, TensorError, ["logits", "NaN", "row 1"]),
        (torch.tensor([[0.0, 1.0], [float("-inf")] * 2]), {}, TensorError, ["logits", "row 1", "-inf"]),
        (torch.tensor([[float("inf"), 1.0]]), {}, TensorError, ["logits", "+inf", "row 0"]),
        (torch.zeros(2, 3), dict(top_p=torch.tensor([0.5, 1.5])), InvalidArgumentError, ["top_p", "row 1"]),
        (torch.zeros(2, 3), dict(top_p=0.0), InvalidArgumentError, ["top_p", "(0, 1]"]),
        (torch.zeros(2, 3), dict(top_k=torch.tensor([3, 0])), InvalidArgumentError, ["top_k", "row 1"]),
        (torch.zeros(2, 3), dict(top_k=2.5), InvalidArgumentError, ["top_k", "integer"]),
        (torch.zeros(2, 3), dict(temperature=-0.1), InvalidArgumentError, ["temperature", "row 0"]),
        (torch.zeros(2, 3), dict(min_p=torch.tensor([0.1, -0.1])), InvalidArgumentError, ["min_p", "row 1"]),
        (torch.zeros(2, 3), dict(min_p=1.5), InvalidArgumentError, ["min_p", "[0, 1]"]),
        (torch.zeros(2, 3), dict(uniforms=torch.tensor([0.1, 1.0])), InvalidArgumentError, ["uniforms", "row 1"]),
        (torch.zeros(2, 3), dict(uniforms=torch.zeros(3)), TensorError, ["uniforms", "[2]"]),
        (torch.zeros(2, 3), dict(temperature=torch.ones(2, 1)), TensorError, ["temperature", "[2]"]),
        (torch.zeros(3), {}, TensorError, ["logits", "2-D"]),
        (torch.zeros(2, 0), {}, TensorError, ["logits", "V >= 1"]),
        (torch.zeros(2, 3, dtype=torch.int64), {}, TensorError, ["logits", "dtype"]),
    ],
)
def test_errors(logits, kw, cls, words):
    with pytest.raises(cls) as info:
        sample(logits, **kw)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("kind", ["peaked", "flat"])
def test_native_prefix_and_full_sort_paths_match_reference(kind):
    """Large V: thresholds from the sorted prefix (peaked rows) and the whole-row fallback (flat
    rows, whose nucleus reaches past the prefix), with and without top-k / top-p per row."""
    from speechdecode.kernels.sampling import sample

    g = torch.Generator().manual_seed(11)
    b, v = 8, 3000
    logits = torch.randn(b, v, generator=g) * (4.0 if kind == "peaked" else 0.01)
    uniforms = torch.rand(b, generator=g)
    top_k = torch.tensor([25, 3000, 600, 1, 512, 513, 2999, 40])
    top_p = torch.tensor([0.9, 0.5, 1.0, 0.3, 0.99, 0.7, 1.0, 0.2])
    for k, p in ((top_k, top_p), (None, top_p), (top_k, None), (None, None)):
        expected = sample(logits, top_k=k, top_p=p, uniforms=uniforms, backend="reference")
        assert torch.equal(sample(logits, top_k=k, top_p=p, uniforms=uniforms, backend="native"), expected)


# --- the C++ kernel, the batched torch path and the scalar fast path ---------------------------


def _edge_rows(kind, gen, B, V):
    if kind == "ties":  # integer logits: many equal values at the top-k / top-p boundaries
        return torch.randint(-3, 4, (B, V), generator=gen).float()
    if kind == "underflow":  # exp(x - max) below float32's normal range for most tokens
        x = torch.rand(B, V, generator=gen) * -400
        x[:, ::7] = float("-inf")
        return x
    if kind == "flat":  # nuclei of thousands of tokens (past any small prefix)
        return torch.randn(B, V, generator=gen) * 0.01
    if kind == "spread":  # a random-weight LM's logits: probabilities over a few octaves
        return torch.randn(B, V, generator=gen) * 0.3
    if kind == "masked":  # a few finite logits per row, as after Dia's guidance top-k
        x = torch.full((B, V), float("-inf"))
        keep = torch.rand(B, V, generator=gen) < 0.05
        return torch.where(keep, torch.randn(B, V, generator=gen), x)
    return torch.randn(B, V, generator=gen) * 4  # peaked


@pytest.mark.parametrize("kind", ["ties", "underflow", "flat", "peaked", "spread", "masked"])
@pytest.mark.parametrize("V", [1, 3, 17, 1000, 4099])
def test_native_and_torch_paths_match_reference_on_edges(kind, V):
    from speechdecode.kernels.sampling import native

    gen = torch.Generator().manual_seed(V + len(kind))
    B = 7
    logits = _edge_rows(kind, gen, B, V)
    logits[:, 0] = torch.where(torch.isinf(logits).all(1), torch.zeros(B), logits[:, 0])
    params = _params(gen, B, V)
    params["top_k"][0] = 1
    params["top_p"][1] = 1e-6  # only the most likely token (and its ties)
    params["temperature"][2] = 1e-3  # huge logit range after scaling
    u = torch.rand(B, generator=gen)
    want = sample(logits, uniforms=u, backend="reference", **params)
    args = (logits, params["temperature"], params["top_k"].clamp(max=V), params["top_p"], params["min_p"], u)
    assert native.sample_cpp(*args).tolist() == want.tolist()
    assert native.sample_torch(*args).tolist() == want.tolist()
    kept = keep_mask(logits, backend="reference", **params)
    assert torch.equal(keep_mask(logits, backend="native", **params), kept)
    assert bool(kept.gather(1, want[:, None]).all())


@pytest.mark.parametrize("kind", ["spread", "masked", "ties", "flat"])
@pytest.mark.parametrize("V", [1027, 2048, 2049])
def test_native_top_k_cut_matches_reference(kind, V):
    """The C++ top-k cut (a fine histogram, then the values of one bucket ordered) at the
    k of MusicGen (250) and Dia (45), at k around the count of finite logits, and at 1 / V - 1."""
    from speechdecode.kernels.sampling import native

    gen = torch.Generator().manual_seed(V * 7 + len(kind))
    B = 9
    logits = _edge_rows(kind, gen, B, V)
    logits[:, 3] = torch.where(torch.isinf(logits).all(1), torch.zeros(B), logits[:, 3])
    finite = int(torch.isfinite(logits[4]).sum())
    top_k = torch.tensor([250, 45, 1, V - 1, finite - 1, finite, finite + 1, 2, 1000]).clamp(1, V)
    u = torch.rand(B, generator=gen)
    ones, zeros = torch.ones(B), torch.zeros(B)
    want = sample(logits, top_k=top_k, uniforms=u, backend="reference")
    assert native.sample_cpp(logits, ones, top_k, ones, zeros, u).tolist() == want.tolist()
    for k in (250, 45):  # the scalar fast path, every row at one k
        assert (
            sample(logits, top_k=k, uniforms=u).tolist()
            == sample(logits, top_k=k, uniforms=u, backend="reference").tolist()
        )


def test_native_many_rows_on_threads_match_reference():
    """A batch large enough to be split over threads (the GIL is released)."""
    gen = torch.Generator().manual_seed(21)
    B, V = 40, 4000
    logits = torch.randn(B, V, generator=gen) * 3
    params = _params(gen, B, V)
    u = torch.rand(B, generator=gen)
    want = sample(logits, uniforms=u, backend="reference", **params)
    assert sample(logits, uniforms=u, backend="native", **params).tolist() == want.tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scalar_fast_path_matches_reference(dtype):
    gen = torch.Generator().manual_seed(8)
    base = (torch.randn(301, 5, generator=gen) * 2).to(dtype)
    logits = base.t()  # [5, 301], non-contiguous
    for kw in (dict(temperature=0.8, top_k=9, top_p=0.85, min_p=0.05), dict(top_p=0.5), dict(temperature=0)):
        got = sample(logits, generator=torch.Generator().manual_seed(3), **kw)
        u = torch.rand(5, generator=torch.Generator().manual_seed(3))
        assert got.tolist() == sample(logits, uniforms=u, backend="reference", **kw).tolist()


def test_fast_path_errors_name_argument_and_row():
    x = torch.zeros(3, 5)
    x[2, 1] = float("nan")
    with pytest.raises(TensorError, match=r"^logits: .*NaN in row 2"):
        sample(x, top_k=2)
    with pytest.raises(InvalidArgumentError, match=r"^uniforms: .*row 1"):
        sample(torch.zeros(3, 5), uniforms=torch.tensor([0.5, 1.0, 0.2]))
    with pytest.raises(InvalidArgumentError, match=r"^top_k: .*row 0"):
        sample(torch.zeros(3, 5), top_k=0)
    with pytest.raises(InvalidArgumentError, match=r"^temperature: .*stay finite.*row 1"):
        sample(torch.tensor([[0.0, 1.0], [1e3, 2.0]]), temperature=torch.tensor([1.0, 1e-37]), backend="native")


def test_keep_mask_by_hand():
    logits = torch.log(torch.tensor([[0.125, 0.5, 0.25, 0.125]]))
    for backend in ("reference", "native"):
        # mass before token 2 is 0.5 < 0.6: kept; before the 0.125s it is 0.75: dropped
        assert keep_mask(logits, top_p=0.6, backend=backend).tolist() == [[False, True, True, False]]
        # ties at the top-k boundary are kept
        assert keep_mask(logits, top_k=3, backend=backend).tolist() == [[True, True, True, True]]
        assert keep_mask(logits, min_p=0.5, backend=backend).tolist() == [[False, True, True, False]]
        assert keep_mask(logits, temperature=0, backend=backend).tolist() == [[False, True, False, False]]
