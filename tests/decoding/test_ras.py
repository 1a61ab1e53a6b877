"""Repetition-aware sampling: hand-worked presets, batched == per-row reference, stateful == functional."""

import math

import numpy as np
import pytest
import torch

from speechdecode.decoding.ras import RepetitionAwareSampler, ras
from speechdecode.decoding.samplers import RasSampler
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.ras import native as ras_native
from speechdecode.kernels.ras.api import RasOptions


def _ras_reference(logits, history, **options):
    """The per-row oracle (kernels/ras/reference.py) behind ras's own argument checks."""
    return ras(logits, history, backend="reference", **options)


# p = [0.5, 0.25, 0.125, 0.125]: cumulative 0.5, 0.75, 0.875, 1.0.
P = [0.5, 0.25, 0.125, 0.125]
LOGITS = torch.log(torch.tensor([P]))


def one(preset, history, u0, u1, **kw):
    h = torch.tensor([history], dtype=torch.int64).reshape(1, -1)
    return int(ras(LOGITS, h, preset=preset, uniforms=torch.tensor([[u0, u1]]), **kw)[0])


# --- paper ---------------------------------------------------------------------------------


def test_paper_nucleus_keeps_crossing_token():
    # top_p=0.6: 0 (mass before 0) and 1 (mass before 0.5 < 0.6) kept; 2 (0.75) not.
    # u=0.7 -> 0.7 * 0.75 = 0.525 lies past 0.5 -> token 1; u=0.99 stays inside {0, 1}.
    assert one("paper", [], 0.7, 0.0, top_p=0.6) == 1
    assert one("paper", [], 0.99, 0.0, top_p=0.6) == 1
    assert one("paper", [], 0.3, 0.0, top_p=0.6) == 0
    # top_p=0.8 keeps 2 as well (mass before it 0.75 < 0.8): 0.95 * 0.875 = 0.83 -> 2.
    assert one("paper", [], 0.95, 0.0, top_p=0.8) == 2


def test_paper_strict_threshold_and_full_redraw():
    # candidate 0 (u0=0.1). One 0 in the window: r = 1/10 = 0.1, not > 0.1 -> kept.
    assert one("paper", [3, 0, 3], 0.1, 0.6, top_p=0.6) == 0
    # Two 0s: r = 0.2 > 0.1 -> redraw from the full p: u1=0.6 -> 0.6 past 0.5 -> 1.
    assert one("paper", [0, 3, 0], 0.1, 0.6, top_p=0.6) == 1
    # ... and the candidate may be drawn again (u1=0.1 -> 0).
    assert one("paper", [0, 3, 0], 0.1, 0.1, top_p=0.6) == 0
    # The redraw is from the full distribution, outside the nucleus: u1=0.9 -> 3.
    assert one("paper", [0, 3, 0], 0.1, 0.9, top_p=0.6) == 3
    # threshold 0.2 with exactly 2 repeats: 0.2 > 0.2 is false -> kept.
    assert one("paper", [0, 3, 0], 0.1, 0.6, top_p=0.6, threshold=0.2) == 0


def test_paper_divides_by_window_not_by_history_length():
    # One valid entry, which is the candidate: 1/10 is not > 0.1, though it is 100% of history.
    assert one("paper", [-1, -1, 0], 0.1, 0.6, top_p=0.6) == 0
    # Only the last `window` codes count: the two old 0s are outside a window of 3.
    assert one("paper", [0, 0, 5, 6, 7], 0.1, 0.6, top_p=0.6, window=3) == 0
    assert one("paper", [0, 0, 5, 6, 7], 0.1, 0.6, top_p=0.6, window=5) == 1


# --- cosyvoice -----------------------------------------------------------------------------


def test_cosyvoice_one_repeat_triggers_and_candidate_is_zeroed():
    # count 1 >= 10 * 0.1 -> redraw. With p[0] = 0 the rest [0, .25, .125, .125] sums to 0.5;
    # u1 = 0 -> first id with positive cumulative mass is 1 (paper would give 0 back).
    assert one("cosyvoice", [0], 0.1, 0.0, top_p=0.6) == 1
    assert one("paper", [0, 0], 0.1, 0.0, top_p=0.6) == 0
    # u1=0.6 -> 0.6 * 0.5 = 0.3 past 0.25 -> 2; u1=0.8 -> 0.4 past 0.375 -> 3.
    assert one("cosyvoice", [0], 0.1, 0.6, top_p=0.6) == 2
    assert one("cosyvoice", [0], 0.1, 0.8, top_p=0.6) == 3
    # No repeat -> candidate kept.
    assert one("cosyvoice", [1, 2], 0.1, 0.8, top_p=0.6) == 0


def test_cosyvoice_threshold_is_inclusive():
    # threshold 0.2, window 10: need count >= 2.
    assert one("cosyvoice", [0, 5], 0.1, 0.6, top_p=0.6, threshold=0.2) == 0
    assert one("cosyvoice", [0, 5, 0], 0.1, 0.6, top_p=0.6, threshold=0.2) == 2
    # Only the last window tokens count.
    assert one("cosyvoice", [0, 3, 3, 3], 0.1, 0.6, top_p=0.6, window=3) == 0
    assert one("cosyvoice", [0, 3, 3, 3], 0.1, 0.6, top_p=0.6, window=4) == 2


def test_cosyvoice_zeroed_candidate_never_redrawn():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 6, generator=g).expand(400, 6)
    u = torch.rand(400, 2, generator=g)
    history = torch.arange(6).repeat(400, 1)  # every token repeated once: always fires
    cand = ras(logits, torch.empty(400, 0, dtype=torch.int64), preset="cosyvoice", uniforms=u)
    out = ras(logits, history, preset="cosyvoice", uniforms=u)
    assert bool((out != cand).all())
    paper = ras(logits, torch.cat([history, history], 1), preset="paper", uniforms=u)
    assert bool((paper == cand).any())  # the paper redraw can return the candidate


def test_cosyvoice_top_k_25_default_and_joint():
    logits = torch.zeros(1, 40)  # uniform: sorted ties keep the lowest ids
    u = torch.tensor([[0.99, 0.0]])
    assert int(ras(logits, None, preset="cosyvoice", top_p=1.0, uniforms=u)[0]) == 24
    assert int(ras(logits, None, preset="paper", top_p=1.0, uniforms=u)[0]) == 39
    assert int(ras(logits, None, preset="cosyvoice", top_k=3, top_p=1.0, uniforms=u)[0]) == 2
    # top_p binds first: 0.1 of 40 equal tokens -> mass before token j is j/40 < 0.1 -> j <= 3.
    assert int(ras(logits, None, preset="cosyvoice", top_p=0.1, uniforms=u)[0]) == 3


def test_cosyvoice_candidate_with_all_the_mass_is_kept():
    logits = torch.tensor([[0.0, -math.inf, -math.inf]])
    assert int(ras(logits, torch.tensor([[0]]), preset="cosyvoice", uniforms=torch.tensor([[0.5, 0.5]]))[0]) == 0


# --- flashcosyvoice ------------------------------------------------------------------------


def test_flashcosyvoice_drops_crossing_token_keeps_at_least_one():
    # top_p=0.8: inclusive sums 0.5, 0.75 <= 0.8 kept, 0.875 dropped. 0.95 * 0.75 = 0.71 -> 1.
    assert one("flashcosyvoice", [], 0.95, 0.0, top_p=0.8) == 1
    assert one("paper", [], 0.95, 0.0, top_p=0.8) == 2
    # top_p=0.6: only 0 (0.75 > 0.6), where paper keeps 1 too.
    assert one("flashcosyvoice", [], 0.7, 0.0, top_p=0.6) == 0
    # top_p=0.3 < p[0]: nothing fits, the top token is kept anyway.
    assert one("flashcosyvoice", [], 0.99, 0.0, top_p=0.3) == 0


def test_flashcosyvoice_rate_over_actual_window_length():
    # candidate 0. Valid entries [0, 5] (padding ignored): rate 1/2 >= 0.5 -> redraw, u1=0.6 -> 1.
    assert one("flashcosyvoice", [-1, -1, -1, 0, 5], 0.1, 0.6, top_p=0.6, threshold=0.5) == 1
    # The redraw may give the candidate back.
    assert one("flashcosyvoice", [-1, -1, -1, 0, 5], 0.1, 0.2, top_p=0.6, threshold=0.5) == 0
    # [7, 0, 5]: 1/3 < 0.5 -> kept.
    assert one("flashcosyvoice", [-1, 7, 0, 5], 0.1, 0.6, top_p=0.6, threshold=0.5) == 0
    # A single valid entry equal to the candidate: rate 1 -> redraw (paper: 1/10, kept).
    assert one("flashcosyvoice", [-1, -1, 0], 0.1, 0.6, top_p=0.6) == 1
    # Window of 3 over [0, 0, 5, 6, 7] sees 0 repeats; window 5 sees 2/5 = 0.4 >= 0.4.
    assert one("flashcosyvoice", [0, 0, 5, 6, 7], 0.1, 0.6, top_p=0.6, window=3, threshold=0.4) == 0
    assert one("flashcosyvoice", [0, 0, 5, 6, 7], 0.1, 0.6, top_p=0.6, window=5, threshold=0.4) == 1
    # No valid history at all: nothing to repeat, no redraw even at threshold 0.
    assert one("flashcosyvoice", [-1, -1], 0.1, 0.6, top_p=0.6, threshold=0.0) == 0
    assert one("flashcosyvoice", [], 0.1, 0.6, top_p=0.6, threshold=0.0) == 0
    # With history, threshold 0 always fires (0 >= 0).
    assert one("flashcosyvoice", [4], 0.1, 0.6, top_p=0.6, threshold=0.0) == 1


# --- batched == reference ------------------------------------------------------------------


def _random_case(g, b, v, length):
    logits = torch.randn(b, v, generator=g) * 3
    logits[torch.rand(b, v, generator=g) < 0.2] = -math.inf
    logits[:, 0] = torch.where(torch.isinf(logits).all(1), torch.zeros(b), logits[:, 0])
    top = min(v, 4)
    history = torch.randint(0, top, (b, length), generator=g)
    pad = torch.randint(0, length + 1, (b,), generator=g)
    history[torch.arange(length).unsqueeze(0) < pad.unsqueeze(1)] = -1
    return logits, history, torch.rand(b, 2, generator=g)


@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
@pytest.mark.parametrize(("b", "v", "length"), [(1, 1, 0), (7, 5, 3), (13, 37, 17), (3, 257, 31)])
@pytest.mark.parametrize("device", ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
def test_batched_matches_reference(preset, b, v, length, device):
    g = torch.Generator().manual_seed(b * 1000 + v)
    settings = [(10, 0.1, None, 0.8), (3, 0.34, 2, 0.5), (1, 0.0, None, 1.0), (7, 1.0, 5, 0.95)]
    for window, threshold, top_k, top_p in settings:
        logits, history, u = (t.to(device) for t in _random_case(g, b, v, length))
        kw = dict(window=window, threshold=threshold, top_k=top_k, top_p=top_p, preset=preset, uniforms=u)
        assert ras(logits, history, **kw).tolist() == _ras_reference(logits, history, **kw).tolist()


def test_noncontiguous_half_and_numpy_inputs():
    g = torch.Generator().manual_seed(5)
    base = torch.randn(11, 9, generator=g)
    logits = base.t()  # [9, 11], non-contiguous
    history = torch.randint(0, 3, (9, 6), generator=g)
    u = torch.rand(9, 2, generator=g)
    want = _ras_reference(logits.contiguous(), history, preset="cosyvoice", uniforms=u)
    assert ras(logits, history, preset="cosyvoice", uniforms=u).tolist() == want.tolist()
    half = logits.half()
    assert ras(half, history, uniforms=u).tolist() == _ras_reference(half, history, uniforms=u).tolist()
    out = ras(logits.numpy(), history.numpy(), preset="cosyvoice", uniforms=u.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.int64 and out.tolist() == want.tolist()


def test_generator_draws_two_uniforms_per_row():
    logits = torch.randn(6, 20, generator=torch.Generator().manual_seed(1))
    history = torch.randint(0, 20, (6, 5), generator=torch.Generator().manual_seed(2))
    u = torch.rand(6, 2, generator=torch.Generator().manual_seed(3))
    got = ras(logits, history, generator=torch.Generator().manual_seed(3))
    assert got.tolist() == ras(logits, history, uniforms=u).tolist()
    assert got.dtype == torch.int64 and got.shape == (6,)


# --- stateful == functional ----------------------------------------------------------------


@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
def test_sampler_matches_functional_with_reset(preset):
    g = torch.Generator().manual_seed(11)
    b, v, window = 4, 6, 4
    sampler = RepetitionAwareSampler(
        window=window, threshold=0.3, top_k=None, top_p=0.7, preset=preset, batch_size=b, device="cpu"
    )
    histories = [[] for _ in range(b)]
    fired = 0
    for step in range(14):
        if step == 6:
            sampler.reset([1, 3])
            histories[1], histories[3] = [], []
        if step == 10:
            sampler.reset(0)
            histories[0] = []
        logits = torch.randn(b, v, generator=g) * 2
        u = torch.rand(b, 2, generator=g)
        length = max(1, max(len(h) for h in histories))
        hist = torch.tensor([[-1] * (length - len(h)) + h for h in histories], dtype=torch.int64)
        want = ras(logits, hist, window=window, threshold=0.3, top_p=0.7, preset=preset, uniforms=u)
        cand = ras(logits, None, window=window, threshold=0.3, top_p=0.7, preset=preset, uniforms=u)
        fired += int((want != cand).sum())
        assert sampler.step(logits, uniforms=u).tolist() == want.tolist()
        for r in range(b):
            histories[r].append(int(want[r]))
    assert fired > 0  # the redraw path was exercised
    sampler.reset()
    assert sampler.history.tolist() == [[-1] * window] * b


def test_sampler_history_is_ring_of_last_window():
    sampler = RepetitionAwareSampler(window=3, batch_size=1, top_p=1.0, threshold=1.0)
    peaked = torch.full((1, 10), -math.inf)
    for t in [4, 5, 6, 7]:
        peaked.fill_(-math.inf)
        peaked[0, t] = 0.0
        assert sampler.step(peaked).tolist() == [t]
    assert sampler.history.tolist() == [[5, 6, 7]]


# --- errors --------------------------------------------------------------------------------


def test_errors_name_argument_and_row():
    x = torch.zeros(3, 4)
    bad = x.clone()
    bad[2, 1] = math.nan
    with pytest.raises(TensorError, match=r"logits: .*NaN in row 2"):
        ras(bad, None)
    bad = x.clone()
    bad[1] = -math.inf
    with pytest.raises(TensorError, match=r"logits: .*row 1 all -inf"):
        ras(bad, None)
    for kw, arg in [
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_k=0), "top_k"),
        (dict(window=0), "window"),
        (dict(threshold=-0.1), "threshold"),
        (dict(threshold=1.1), "threshold"),
        (dict(preset="valle"), "preset"),
    ]:
        with pytest.raises(InvalidArgumentError, match=rf"^{arg}: "):
            ras(x, None, **kw)
        with pytest.raises(InvalidArgumentError, match=rf"^{arg}: "):
            RepetitionAwareSampler(**{"window": 10, **kw})
    with pytest.raises(TensorError, match=r"^history: expected shape \[3, L\]"):
        ras(x, torch.zeros(2, 5, dtype=torch.int64))
    with pytest.raises(TensorError, match=r"^history: .*row 0, column 1"):
        ras(x, torch.tensor([[0, -2], [0, 0], [0, 0]]))
    with pytest.raises(TensorError, match=r"^uniforms: "):
        ras(x, None, uniforms=torch.full((3, 2), 1.0))
    with pytest.raises(TensorError, match=r"^logits: expected shape \[2, V\]"):
        RepetitionAwareSampler(batch_size=2).step(x)


@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
@pytest.mark.parametrize("kind", ["peaked", "flat", "ties"])
def test_partial_sort_paths_match_reference(preset, kind):
    """Large V: the nucleus from a sorted prefix (peaked rows), the full-sort fallback when the
    prefix holds too little mass (flat rows), and when equal probabilities straddle the cut (ties)."""
    g = torch.Generator().manual_seed(5)
    b, v = 6, 3000
    if kind == "peaked":
        logits = torch.randn(b, v, generator=g) * 4
    elif kind == "flat":
        logits = torch.randn(b, v, generator=g) * 0.01
    else:  # 600 tokens share the top value: any cut at 25 or 512 falls inside the tie
        logits = torch.randn(b, v, generator=g)
        logits[:, 1000:1600] = 10.0
    history = torch.randint(-1, 8, (b, 12), generator=g)
    uniforms = torch.rand(b, 2, generator=g)
    for top_k in (None, 25):
        options = {"window": 10, "threshold": 0.1, "top_k": top_k, "top_p": 0.8, "preset": preset}
        expected = _ras_reference(logits, history, uniforms=uniforms, **options)
        assert torch.equal(ras(logits, history, uniforms=uniforms, **options), torch.as_tensor(expected))


# --- the fused C++ kernel and the batched torch path ----------------------------------------


@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
@pytest.mark.parametrize(("b", "v"), [(1, 1), (5, 2), (9, 63), (4, 4097)])
def test_torch_path_matches_reference(preset, b, v):
    g = torch.Generator().manual_seed(b + v)
    for window, threshold, top_k, top_p in [(10, 0.1, None, 0.8), (3, 0.34, 2, 0.5), (1, 0.0, None, 1.0)]:
        logits, history, u = _random_case(g, b, v, 9)
        kw = dict(window=window, threshold=threshold, top_k=top_k, top_p=top_p, preset=preset)
        got = ras_native.ras_torch(logits, history, u, RasOptions(window, threshold, top_k, top_p, preset))
        assert got.tolist() == _ras_reference(logits, history, uniforms=u, **kw).tolist()


@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
def test_native_edges_and_threads_match_reference(preset):
    """Logits far below the maximum (exp underflows), nuclei of one token and of thousands, and a
    batch large enough to be split over threads."""
    g = torch.Generator().manual_seed(17)
    b, v = 48, 3001
    logits = torch.randn(b, v, generator=g) * 3
    logits[:8] = torch.rand(8, v, generator=g) * -300  # underflow
    logits[8:10] *= 0.003  # flat: the nucleus holds most of the vocabulary
    logits[16:20, 5] = 60.0  # one token holds all the mass
    history = torch.randint(-1, 6, (b, 15), generator=g)
    history[16:20, -3:] = 5  # ... and repeats
    uniforms = torch.rand(b, 2, generator=g)
    for top_k, top_p in ((None, 0.8), (25, 0.9)):
        options = {"window": 10, "threshold": 0.1, "top_k": top_k, "top_p": top_p, "preset": preset}
        expected = _ras_reference(logits, history, uniforms=uniforms, **options)
        assert ras(logits, history, uniforms=uniforms, **options).tolist() == expected.tolist()
    small = ras(logits[16:20], history[16:20], uniforms=uniforms[16:20], backend="reference", **options)
    assert small.tolist() == expected[16:20].tolist()


# --- the fused Triton kernel ------------------------------------------------------------------

# The kernel's exp and the order of its additions differ from torch's by float32 rounding, so a
# uniform (or top_p) within rounding of a cumulative probability (mass) may draw differently;
# the cases below are asserted to stay MARGIN away from every such boundary (float64 check).
MARGIN = 1e-5


def _nucleus64(p, top_k, top_p, preset):
    """Kept probabilities of one row, and the distance from top_p to the masses compared with it."""
    sp, order = torch.sort(p, descending=True, stable=True)
    inclusive = torch.cumsum(sp, 0)
    compared = inclusive if preset == "flashcosyvoice" else inclusive - sp
    keep = compared <= top_p if preset == "flashcosyvoice" else compared < top_p
    keep[0] |= preset == "flashcosyvoice"
    if top_k is not None:
        keep[top_k:] = False
    kept = torch.zeros_like(p).scatter(0, order, torch.where(keep, sp, torch.zeros_like(sp)))
    return kept, float((compared[sp > 0] - top_p).abs().min())


def _cdf_distance(q, u):
    c = torch.cumsum(q, 0) / q.sum()
    return float((c[q > 0] - u).abs().min())


def _clear_uniforms(logits, history, g, **options):
    """Uniforms [B, 2] at least MARGIN from every cumulative probability each draw compares them
    with (rows redrawn until they are), after asserting top_p is MARGIN from the sorted masses."""
    p = torch.softmax(logits.double(), dim=-1)
    kept = []
    for row in p:
        q, top_p_distance = _nucleus64(row, options["top_k"], options["top_p"], options["preset"])
        assert top_p_distance > MARGIN
        kept.append(q)
    u = torch.rand(logits.shape[0], 2, generator=g)
    for b in range(logits.shape[0]):
        while True:
            cand = int(_ras_reference(logits[b : b + 1], None, uniforms=u[b : b + 1], **options)[0])
            zeroed = p[b].clone()
            zeroed[cand] = 0.0
            redraws = [p[b]] + ([zeroed] if float(zeroed.sum()) > 0 else [])
            near = [_cdf_distance(kept[b], float(u[b, 0]))] + [_cdf_distance(q, float(u[b, 1])) for q in redraws]
            if min(near) > MARGIN:
                break
            u[b] = torch.rand(2, generator=g)
    return u


def _triton_case(g, b, v, length, kind, dtype):
    if kind == "ties":  # integer logits: many equal probabilities, cuts inside groups of ties
        logits = torch.randint(-3, 2, (b, v), generator=g).float()
    else:
        logits = torch.randn(b, v, generator=g) * 3
    logits[torch.rand(b, v, generator=g) < 0.2] = -math.inf
    logits[:, 0] = torch.where(torch.isinf(logits).all(1), torch.zeros(b), logits[:, 0])
    logits = logits.to(dtype)
    history = torch.randint(-1, v, (b, length), generator=g)
    return logits, history


TRITON = pytest.mark.skipif(
    "triton" not in __import__("speechdecode._backend", fromlist=["available"]).available("cpu"),
    reason="needs TRITON_INTERPRET=1 and triton",
)


@TRITON
@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
def test_triton_matches_reference(preset):
    """Awkward sizes, padded histories shorter and longer than the window, top_k on and off,
    ties, -inf entries and half inputs: the fused kernel gives the reference's tokens."""
    g = torch.Generator().manual_seed(23)
    cases = [
        (1, 1, 0, "random", torch.float32, 10, 0.1, None, 0.8),
        (3, 7, 5, "ties", torch.float32, 3, 0.34, 2, 0.55),
        (17, 33, 12, "random", torch.float16, 20, 0.1, None, 0.9),
        (17, 33, 9, "ties", torch.float32, 4, 0.25, 5, 0.7),
        (3, 1000, 14, "random", torch.bfloat16, 10, 0.1, 25, 0.85),
        (3, 1000, 6, "ties", torch.float32, 10, 0.0, None, 0.62),
    ]
    fired = 0
    for b, v, length, kind, dtype, window, threshold, top_k, top_p in cases:
        logits, history = _triton_case(g, b, v, length, kind, dtype)
        options = dict(window=window, threshold=threshold, top_k=top_k, top_p=top_p, preset=preset)
        u = _clear_uniforms(logits, history, g, **options)
        # plant each row's candidate in its history so that the trigger fires in some rows
        cand = _ras_reference(logits, None, uniforms=u, **options)
        planted = torch.rand(b, length, generator=g) < 0.3
        history = torch.where(planted, cand.unsqueeze(1), history)
        expected = _ras_reference(logits, history, uniforms=u, **options)
        fired += int((expected != cand).sum())
        assert ras(logits, history, uniforms=u, backend="triton", **options).tolist() == expected.tolist()
    assert fired > 0  # the redraw path was exercised


@TRITON
def test_triton_ties_at_the_cut_go_to_lower_ids():
    # 40 equal tokens: top_k 3 keeps ids 0..2, cosyvoice's default 25 keeps 0..24, top_p 0.1
    # keeps 0..3 (mass before j is j/40 < 0.1); u = 0.99 draws the last kept id.
    logits = torch.zeros(1, 40)
    u = torch.tensor([[0.99, 0.0]])
    for preset, top_k, top_p, want in [
        ("paper", 3, 1.0, 2),
        ("cosyvoice", None, 1.0, 24),
        ("paper", None, 0.1, 3),
        ("flashcosyvoice", None, 0.1, 2),  # inclusive (j + 1) / 40 <= 0.1 keeps 0..2
        ("flashcosyvoice", 2, 0.5, 1),
    ]:
        options = dict(top_k=top_k, top_p=top_p, preset=preset, uniforms=u)
        assert int(ras(logits, None, backend="triton", **options)[0]) == want
        assert int(_ras_reference(logits, None, **options)[0]) == want


@TRITON
def test_triton_flags_bad_rows_and_noncontiguous_logits():
    base = torch.randn(9, 5, generator=torch.Generator().manual_seed(2))
    logits = base.t()  # [5, 9], non-contiguous
    u = torch.full((5, 2), 0.3)
    want = _ras_reference(logits.contiguous(), None, uniforms=u)
    assert ras(logits, None, uniforms=u, backend="triton").tolist() == want.tolist()
    bad = logits.contiguous()
    bad[1, 3], bad[2, 0], bad[3] = math.nan, math.inf, -math.inf
    u[4, 1] = 1.0
    got = ras(bad, None, uniforms=u, backend="triton").tolist()
    assert got == [want[0].item(), -1, -1, -1, -1]
    with pytest.raises(InvalidArgumentError, match=r"^logits: expected at most 131072 columns"):
        ras(torch.zeros(1, (1 << 17) + 1), None, backend="triton")


@TRITON
@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
def test_triton_sampler_matches_reference(preset, monkeypatch):
    """RepetitionAwareSampler (ring buffer on the device) running the Triton kernel each step."""
    g = torch.Generator().manual_seed(31)
    b, v, window = 3, 7, 3
    options = dict(window=window, threshold=0.3, top_k=None, top_p=0.7, preset=preset)
    monkeypatch.setenv("SPEECHDECODE_BACKEND", "triton")
    sampler = RepetitionAwareSampler(batch_size=b, device="cpu", **options)
    histories = [[] for _ in range(b)]
    for step in range(6):
        if step == 4:
            sampler.reset(1)
            histories[1] = []
        logits = torch.randint(-2, 2, (b, v), generator=g).float()
        length = max(1, max(len(h) for h in histories))
        hist = torch.tensor([[-1] * (length - len(h)) + h for h in histories], dtype=torch.int64)
        u = _clear_uniforms(logits, hist, g, **options)
        want = _ras_reference(logits, hist, uniforms=u, **options)
        assert sampler.step(logits, uniforms=u).tolist() == want.tolist()
        for r in range(b):
            histories[r].append(int(want[r]))


def test_options_object_is_what_every_sampler_keeps():
    options = RasOptions(window=4, preset="cosyvoice")
    assert options.top_k == 25  # CosyVoice's default nucleus cap
    assert RepetitionAwareSampler(window=4, preset="cosyvoice").options == options
    assert RasSampler(window=4, preset="cosyvoice", temperature=0.5).options == options
    with pytest.raises(InvalidArgumentError, match=r"^top_p: expected a number in \(0, 1\], got 0"):
        RasOptions(top_p=0)


def test_positional_options_still_work_for_one_release():
    with pytest.warns(DeprecationWarning, match=r"RepetitionAwareSampler\(\) are deprecated .* by name"):
        old = RepetitionAwareSampler(4, 0.3, None, 0.7, "flashcosyvoice", 3, "cpu")
    assert old.options == RasOptions(4, 0.3, None, 0.7, "flashcosyvoice") and old.batch_size == 3
    with pytest.warns(DeprecationWarning, match=r"RasSampler\(\) are deprecated"):
        sampler = RasSampler(6, 0.2, 5, 0.9, "paper", 0.5)
    assert sampler.options == RasOptions(6, 0.2, 5, 0.9, "paper") and sampler.temperature == 0.5
    with pytest.raises(TypeError, match="multiple values for window"):
        RasSampler(6, window=6)
    with pytest.raises(TypeError, match="at most 7 positional arguments"):
        RasSampler(*range(8))
