"""VoiceCraft rearrangement: by hand, native against the reference, round trips, inference reads; span
sampler distribution; edit-span selection."""

import itertools
import math

import numpy as np
import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels import voicecraft as vc
from speechdecode.kernels.voicecraft import reference

E, G, P, S = 0, 8, 9, 7  # empty, eog, pad, eos in the small by-hand examples
RESERVED = 2048  # every code in the random tests is below this, every special id at or above


def hand_delay(c: list[list[int]]) -> list[list[int]]:
    """audiocraft's delay pattern of one segment, written out for the by-hand test."""
    return [[E] * (1 + k) + row + [E] * (len(c) - 1 - k) for k, row in enumerate(c)]


def test_by_hand_two_spans():
    z = torch.tensor([[1, 2, 3, 4, 5, 6], [11, 12, 13, 14, 15, 16]])  # K=2, T=6
    spans = [(1, 2), (3, 5)]  # U_0=[0,1) S_0=[1,2) U_1=[2,3) S_1=[3,5) U_2=[5,6)
    s, layout = vc.causal_mask_rearrange(z, spans, empty=E, eog=G, pad=P, eos=S, mask_tokens=[20, 21])
    u0, u1, u2 = [[1], [11]], [[3], [13]], [[6, S], [16, S]]
    s0, s1 = [[2, G], [12, G]], [[4, 5, G], [14, 15, G]]
    m0, m1 = [[20], [20]], [[21], [21]]
    pieces = [hand_delay(u0), m0, hand_delay(u1), m1, hand_delay(u2), m0, hand_delay(s0), m1, hand_delay(s1)]
    want = [list(itertools.chain.from_iterable(p[k] for p in pieces)) for k in range(2)]
    assert s.tolist() == want
    n, K, T = 2, 2, 6
    assert s.shape[1] == T + (n + 1) + (2 * n + 1) * K + 2 * n  # VoiceCraft's length check (reduced_eog)
    assert layout.segment_starts.tolist() == [[0, 4, 8, 13, 18]]
    assert layout.mask_positions.tolist() == [[3, 7, 12, 17]]
    assert layout.prompt_lengths.tolist() == [14]  # up to the tail <M_0> and the empty step after it
    assert vc.causal_mask_inverse(s, layout).tolist() == z.tolist()


def test_by_hand_defaults_and_no_spans():
    z = torch.tensor([[5, 6]])  # K=1
    s, layout = vc.causal_mask_rearrange(z, [(0, 1)])
    # U_0 empty, <M_0>, U_1 = [6, eos], <M_0>, S_0 = [5, eog]
    assert s.tolist() == [[vc.EMPTY, vc.MASK_BASE, vc.EMPTY, 6, vc.EOS, vc.MASK_BASE, vc.EMPTY, 5, vc.EOG]]
    assert layout.prompt_lengths.tolist() == [7]
    s, layout = vc.causal_mask_rearrange(z, [], eos=None)
    assert s.tolist() == [[vc.EMPTY, 5, 6, vc.EOG]]
    assert layout.mask_positions.shape == (1, 0) and layout.prompt_lengths.tolist() == [4]


def random_case(gen: torch.Generator, batch: int, k: int, frames: int):
    lengths = torch.randint(1, frames + 1, (batch,), generator=gen)
    lengths[0] = frames
    spans = []
    for b in range(batch):
        length = int(lengths[b])
        kind = b % 4
        if kind == 0:
            spans.append(vc.sample_mask_spans(length, gen, poisson_lambda=2.0, max_spans=3))
        elif kind == 1:  # spans at both ends
            spans.append([(0, 1)] + ([(length - 1, length)] if length > 1 else []))
        elif kind == 2:
            spans.append([])
        else:  # one span covering the row
            spans.append([(0, length)])
    codes = torch.randint(0, RESERVED, (batch, k, frames), generator=gen)
    return codes, lengths, spans


SIZES = [(1, 1, 1), (1, 4, 2), (3, 4, 17), (5, 1, 31), (4, 7, 64), (2, 8, 9)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_native_matches_reference(size, device):
    batch, k, frames = size
    gen = torch.Generator().manual_seed(batch * 1000 + k * 100 + frames)
    for _ in range(3):
        codes, lengths, spans = random_case(gen, batch, k, frames)
        want, want_layout = vc.causal_mask_rearrange(codes, spans, lengths=lengths, backend="reference")
        got, layout = vc.causal_mask_rearrange(codes.to(device), spans, lengths=lengths, backend="native")
        assert got.device.type == device
        got = got.cpu()
        assert torch.equal(got, want)
        for field in ("sequence_lengths", "segment_starts", "mask_positions", "prompt_lengths"):
            assert torch.equal(getattr(layout, field).cpu(), getattr(want_layout, field)), field
        inside = torch.arange(frames)[None, None, :] < lengths[:, None, None]
        original = torch.where(inside, codes, vc.PAD)
        for backend in ("reference", "native"):
            assert torch.equal(vc.causal_mask_inverse(got, layout, backend=backend).cpu(), original)
        assert torch.equal(vc.causal_mask_inverse(got.to(device), layout).cpu(), original)
        # each row: the documented length, pad after it, and mask ids where the layout says
        for b in range(batch):
            n, length = len(spans[b]), int(lengths[b])
            steps = length + (n + 1) + (2 * n + 1) * k + 2 * n
            assert int(layout.sequence_lengths[b]) == steps
            assert bool((got[b, :, steps:] == vc.PAD).all())
            masks = [vc.MASK_BASE + i for i in list(range(n)) * 2]
            positions = layout.mask_positions[b, : 2 * n]
            assert got[b][:, positions].tolist() == [masks] * k


def test_inverse_ignores_special_positions():
    gen = torch.Generator().manual_seed(3)
    codes, lengths, spans = random_case(gen, 4, 4, 40)
    s, layout = vc.causal_mask_rearrange(codes, spans, lengths=lengths)
    special = s >= RESERVED
    noise = torch.randint(0, RESERVED, s.shape, generator=gen)
    scrambled = torch.where(special, noise, s)
    for backend in ("reference", "native"):
        assert torch.equal(
            vc.causal_mask_inverse(scrambled, layout, backend=backend), vc.causal_mask_inverse(s, layout)
        )
    # and codes sit only where the sequence is not special: as many code cells as input frames
    assert int((~special).sum()) == int(lengths.sum()) * 4


def test_inference_reads_a_generated_span_back():
    gen = torch.Generator().manual_seed(5)
    k = 4
    codes = torch.randint(0, RESERVED, (k, 50), generator=gen)
    spans = [(3, 11), (20, 21), (30, 49)]
    s, layout = vc.causal_mask_rearrange(codes, spans)
    n = len(spans)
    # the prompt ends with the tail <M_0> and an all-empty step; span i's generated steps follow
    prompt = int(layout.prompt_lengths[0])
    assert s[:, prompt - 2].tolist() == [vc.MASK_BASE] * k and s[:, prompt - 1].tolist() == [vc.EMPTY] * k
    for i, (a, b) in enumerate(spans):
        first = int(layout.segment_starts[0, n + 1 + i]) + 1  # skip the all-empty step
        generated = s[:, first : first + (b - a) + k]  # frames and eog through all K codebooks
        assert generated[k - 1, -1] == vc.EOG
        for backend in ("reference", "native"):
            assert torch.equal(vc.revert_segments(generated, backend=backend), codes[:, a:b])


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (4, 9), (3, 2, 7), (2, 3, 4, 5)])
def test_revert_segments_backends(shape):
    x = torch.randint(0, 100, shape, generator=torch.Generator().manual_seed(sum(shape)))
    want = vc.revert_segments(x, backend="reference")
    k = shape[-2]
    assert want.shape == (*shape[:-1], shape[-1] - k)
    for kk in range(k):  # the formula of docs/DEFINITIONS.md section 5: codebook k keeps s[k][k : len - (K - k)]
        assert torch.equal(want[..., kk, :], x[..., kk, kk : shape[-1] - (k - kk)])
    assert torch.equal(vc.revert_segments(x, backend="native"), want)
    assert np.array_equal(vc.revert_segments(x.numpy()), want.numpy())


def test_numpy_and_non_contiguous_inputs():
    gen = torch.Generator().manual_seed(9)
    wide = torch.randint(0, RESERVED, (3, 4, 60), generator=gen)
    codes = wide[:, :, ::2]
    assert not codes.is_contiguous()
    spans = [[(2, 5)], [(0, 3), (10, 30)], []]
    want, _ = vc.causal_mask_rearrange(codes.contiguous(), spans, backend="reference")
    got, _ = vc.causal_mask_rearrange(codes, spans)
    assert torch.equal(got, want)
    arr, layout_np = vc.causal_mask_rearrange(codes.numpy(), spans)
    assert isinstance(arr, np.ndarray) and np.array_equal(arr, want.numpy())
    back = vc.causal_mask_inverse(arr, layout_np)
    assert isinstance(back, np.ndarray) and np.array_equal(back, codes.numpy())


def test_rearrange_errors():
    z = torch.randint(0, 100, (4, 10))
    cases = [
        (dict(spans=[(2, 5), (4, 6)]), "spans[1]"),  # overlapping
        (dict(spans=[(5, 6), (1, 2)]), "spans[1]"),  # unsorted
        (dict(spans=[(3, 3)]), "spans[0]"),  # empty
        (dict(spans=[(8, 11)]), "spans[0]"),  # past the row
        (dict(spans=[(1, 2)], mask_tokens=[]), "mask_tokens"),
        (dict(spans=[(1, 2)], mask_tokens=[vc.EOG]), "mask_tokens[0]"),  # collides with eog
        (dict(spans=[(1, 2)], lengths=[5]), "lengths"),  # lengths with 2-D codes
        (dict(spans=[(1, 2)], backend="triton"), "backend"),
    ]
    for kwargs, name in cases:
        with pytest.raises(InvalidArgumentError, match=name.replace("[", r"\[")):
            vc.causal_mask_rearrange(z, **kwargs)
    batch = torch.randint(0, 100, (2, 4, 10))
    with pytest.raises(InvalidArgumentError, match=r"spans\[1\]\[0\]"):
        vc.causal_mask_rearrange(batch, [[(1, 2)], [(6, 9)]], lengths=[10, 7])  # past row 1's length
    with pytest.raises(InvalidArgumentError, match="spans: expected a list of 2"):
        vc.causal_mask_rearrange(batch, [[(1, 2)]])
    bad = z.clone()
    bad[2, 7] = vc.PAD
    with pytest.raises(TensorError, match=r"2050 at \[2, 7\]"):
        vc.causal_mask_rearrange(bad, [(1, 2)])
    with pytest.raises(TensorError, match=r"150 at \[0, 3\]"):
        vc.causal_mask_rearrange(torch.where(torch.arange(10) == 3, 150, z), [(1, 2)], card=120)
    with pytest.raises(TensorError, match="int64"):
        vc.causal_mask_rearrange(z.int(), [(1, 2)])
    with pytest.raises(TensorError, match="at least one row"):
        vc.causal_mask_rearrange(torch.zeros((0, 4, 10), dtype=torch.int64), [])
    with pytest.raises(TensorError, match=r"lengths: .* 0 frames in row \[1\]"):
        vc.causal_mask_rearrange(batch, [[], []], lengths=[3, 0])
    # a special id past a row's length is padding, not an error
    ragged = batch.clone()
    ragged[1, :, 8:] = vc.PAD
    s, layout = vc.causal_mask_rearrange(ragged, [[(1, 2)], [(3, 4)]], lengths=[10, 8])
    assert torch.equal(vc.causal_mask_inverse(s, layout), ragged)


def test_inverse_and_revert_errors():
    s, layout = vc.causal_mask_rearrange(torch.randint(0, 100, (2, 4, 10)), [[(1, 2)], []])
    with pytest.raises(TensorError, match="sequence"):
        vc.causal_mask_inverse(s[:, :, :-1], layout)
    with pytest.raises(TensorError, match="sequence"):
        vc.causal_mask_inverse(s[:, :3], layout)
    with pytest.raises(InvalidArgumentError, match="layout"):
        vc.causal_mask_inverse(s, None)
    with pytest.raises(TensorError, match="at least K = 4 steps"):
        vc.revert_segments(torch.zeros((4, 3), dtype=torch.int64))
    with pytest.raises(TensorError, match="segments"):
        vc.revert_segments(torch.zeros(5, dtype=torch.int64))


def draw_counts(lam: float, draws: int, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    return np.array([len(vc.sample_mask_spans(500, gen, poisson_lambda=lam, max_spans=3)) for _ in range(draws)])


def chi_square(observed: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * observed.sum()
    return float(((observed - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("lam", [1.0, 2.0])
def test_span_count_follows_the_clamped_poisson(lam):
    counts = draw_counts(lam, 3000, seed=int(lam * 10))
    assert counts.min() >= 1 and counts.max() <= 3
    pmf = [math.exp(-lam) * lam**i / math.factorial(i) for i in range(3)]
    probs = np.array([pmf[0] + pmf[1], pmf[2], 1 - sum(pmf)])
    observed = np.array([(counts == c).sum() for c in (1, 2, 3)])
    assert chi_square(observed, probs) < 13.82  # chi-square, 2 degrees of freedom, p = 0.001


def test_span_lengths_and_places_are_uniform():
    gen = torch.Generator().manual_seed(21)
    sizes = [e - s for _ in range(1500) for s, e in vc.sample_mask_spans(10_000, gen, max_spans=1, max_len=10)]
    observed = np.bincount(sizes, minlength=11)[1:]
    assert chi_square(observed, np.full(10, 0.1)) < 27.88  # 9 degrees of freedom, p = 0.001
    starts = [vc.sample_mask_spans(10, gen, max_spans=1, max_len=1)[0][0] for _ in range(1500)]
    assert chi_square(np.bincount(starts, minlength=10), np.full(10, 0.1)) < 27.88


def test_spans_never_overlap_and_fit():
    gen = torch.Generator().manual_seed(4)
    for _ in range(1500):
        length = int(torch.randint(1, 60, (1,), generator=gen))
        max_len = int(torch.randint(1, 80, (1,), generator=gen))
        spans = vc.sample_mask_spans(length, gen, poisson_lambda=3.0, max_spans=5, max_len=max_len)
        assert 1 <= len(spans) <= min(5, length)
        assert all(0 <= s < e <= length and e - s <= max_len for s, e in spans)
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
    assert vc.sample_mask_spans(1, gen, poisson_lambda=9.0, max_spans=3) == [(0, 1)]


def test_span_sampler_is_reproducible():
    def draws(seed):
        gen = torch.Generator().manual_seed(seed)
        return [vc.sample_mask_spans(300, gen, poisson_lambda=1.5, max_len=40) for _ in range(20)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    for kwargs, name in [
        (dict(length=0), "length"),
        (dict(length=10, poisson_lambda=0.0), "poisson_lambda"),
        (dict(length=10, max_spans=0), "max_spans"),
        (dict(length=10, max_len=0), "max_len"),
        (dict(length=10, generator=3), "generator"),
    ]:
        with pytest.raises(InvalidArgumentError, match=name):
            vc.sample_mask_spans(**kwargs)


WORDS = [("but", 0.10, 0.40), ("i", 0.40, 0.52), ("never", 0.60, 1.00), ("was", 1.05, 1.30)]


def test_select_edit_span_by_hand():
    # substitute "i never": 0.40 - 0.1 = 0.30 s -> frame 15; 1.00 + 0.1 = 1.10 s -> frame 55
    assert vc.select_edit_span(WORDS, (1, 3), 0.1, 50) == (15, 55)
    # no margin, at 100 Hz: the words' own times
    assert vc.select_edit_span(WORDS, (2, 3), 0.0, 100) == (60, 100)
    # insertion between "i" (ends 0.52) and "never" (starts 0.60), margin 0.02
    assert vc.select_edit_span(WORDS, (2, 2), 0.02, 50) == (25, 31)
    # clamped to the utterance at both ends; the end is the given duration
    assert vc.select_edit_span(WORDS, (0, 1), 0.5, 50) == (0, 45)
    assert vc.select_edit_span(WORDS, (3, 4), 0.25, 50, duration=1.5) == (40, 75)
    # insertion at the very start and at the very end
    assert vc.select_edit_span(WORDS, (0, 0), 0.0, 50) == (0, 5)
    assert vc.select_edit_span(WORDS, (4, 4), 0.0, 50, duration=2.0) == (65, 100)
    # a zero-length insertion point still masks one frame
    assert vc.select_edit_span(WORDS, (1, 1), 0.0, 50) == (20, 21)


def test_select_edit_span_errors():
    cases = [
        (([], (0, 1), 0.1, 50), "alignment"),
        (([("a", 0.5, 0.2)], (0, 1), 0.1, 50), r"alignment\[0\]"),
        (([("a", 0.0, 0.5), ("b", 0.3, 0.9)], (0, 1), 0.1, 50), r"alignment\[1\]"),
        (([("a", 0.0, float("nan"))], (0, 1), 0.1, 50), r"alignment\[0\]"),
        ((WORDS, (3, 2), 0.1, 50), "edit_word_range"),
        ((WORDS, (0, 5), 0.1, 50), "edit_word_range"),
        ((WORDS, (-1, 2), 0.1, 50), "edit_word_range"),
        ((WORDS, (0, 1), -0.1, 50), "epsilon"),
        ((WORDS, (0, 1), 0.1, 0), "frame_rate"),
    ]
    for args, name in cases:
        with pytest.raises(InvalidArgumentError, match=name):
            vc.select_edit_span(*args)
    with pytest.raises(InvalidArgumentError, match="duration"):
        vc.select_edit_span(WORDS, (0, 1), 0.1, 50, duration=1.0)


def test_backend_choice(monkeypatch):
    codes, lengths, spans = random_case(torch.Generator().manual_seed(13), 3, 4, 20)
    want, _ = vc.causal_mask_rearrange(codes, spans, lengths=lengths, backend="reference")

    def refuse(*args):
        raise AssertionError("the reference ran")

    monkeypatch.setattr(reference, "rearrange", refuse)
    # no Triton kernel: a forced triton backend runs the native path
    monkeypatch.setenv("SPEECHDECODE_BACKEND", "triton")
    assert torch.equal(vc.causal_mask_rearrange(codes, spans, lengths=lengths)[0], want)
    monkeypatch.setenv("SPEECHDECODE_BACKEND", "reference")
    with pytest.raises(AssertionError, match="the reference ran"):
        vc.causal_mask_rearrange(codes, spans, lengths=lengths)
