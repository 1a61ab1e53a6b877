"""Beam-search step: every backend against the reference, the reference against the definition."""

import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.beam_search import beam_search_step


def _run(backend_device, log_probs, beam_scores, beam, **kw):
    name, device = backend_device
    if "finished" in kw and kw["finished"] is not None:
        kw["finished"] = kw["finished"].to(device)
    out = beam_search_step(log_probs.to(device), beam_scores.to(device), beam, backend=name, **kw)
    return tuple(t.cpu() for t in out)


def _check_equal(got, want):
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert torch.equal(g, w), (g, w)


def _brute(log_probs, beam_scores, beam, eos=0, finished=None, denom=1.0):
    """The definition, with Python sorting of (-key, flat index)."""
    R, V = log_probs.shape
    B = R // beam
    out = []
    for b in range(B):
        cands = []
        for j in range(beam):
            row = b * beam + j
            for v in range(V):
                if finished is not None and bool(finished[row]):
                    c = float(beam_scores[row]) if v == eos else float("-inf")
                else:
                    c = float(torch.tensor(float(beam_scores[row])) + log_probs[row, v].float())
                cands.append((-(c / denom), j * V + v, c))
        cands.sort(key=lambda t: (t[0], t[1]))
        out.append([(i % V, i // V, c) for _, i, c in cands[:beam]])
    return out


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("beam", [1, 2, 5])
@pytest.mark.parametrize("V", [1, 7, 33])
def test_backends_match_reference(backend_device, B, beam, V):
    gen = torch.Generator().manual_seed(B * 1000 + beam * 100 + V)
    lp = torch.log_softmax(torch.randn(B * beam, V, generator=gen) * 2, dim=1)
    bs = torch.randn(B * beam, generator=gen) * 3
    fin = torch.rand(B * beam, generator=gen) < 0.3
    for kw in (dict(), dict(finished=fin, eos_id=V - 1), dict(length=4, length_penalty=0.7)):
        want = beam_search_step(lp, bs, beam, backend="reference", **kw)
        got = _run(backend_device, lp, bs, beam, **kw)
        _check_equal(got, want)
        assert want[1].max() < beam and want[0].max() < V
        assert torch.all(want[2][:, :-1] >= want[2][:, 1:])  # best first


def test_reference_matches_definition():
    gen = torch.Generator().manual_seed(7)
    for B, beam, V in [(2, 3, 5), (1, 4, 2), (3, 2, 9)]:
        lp = torch.log_softmax(torch.randn(B * beam, V, generator=gen), dim=1)
        bs = torch.randn(B * beam, generator=gen)
        fin = torch.rand(B * beam, generator=gen) < 0.4
        t, p, s = beam_search_step(lp, bs, beam, finished=fin, eos_id=1 % V, backend="reference")
        want = _brute(lp, bs, beam, eos=1 % V, finished=fin)
        for b in range(B):
            assert [(int(t[b, k]), int(p[b, k])) for k in range(beam)] == [w[:2] for w in want[b]]
            assert s[b].tolist() == pytest.approx([w[2] for w in want[b]])


def test_ties_go_to_lower_flat_index(backend_device):
    beam, V = 3, 4
    lp = torch.zeros(2 * beam, V)  # every candidate ties
    bs = torch.zeros(2 * beam)
    t, p, s = _run(backend_device, lp, bs, beam)
    assert t.tolist() == [[0, 1, 2]] * 2 and p.tolist() == [[0, 0, 0]] * 2
    # equal sums from different parents: parent 0's token 3 (flat 3) beats parent 1's token 0 (flat 4)
    lp = torch.tensor([[-5.0, -5.0, -5.0, -1.0], [-1.0, -5.0, -5.0, -5.0], [-1.0, -9.0, -9.0, -9.0]])
    t, p, s = _run(backend_device, lp, torch.tensor([0.0, 0.0, 0.0]), 3)
    assert t.tolist() == [[3, 0, 0]] and p.tolist() == [[0, 1, 2]]
    want = beam_search_step(lp, torch.zeros(3), 3, backend="reference")
    _check_equal((t, p, s), want)


def test_finished_beams(backend_device):
    beam, V, eos = 2, 5, 4
    lp = torch.log_softmax(torch.randn(2 * beam, V, generator=torch.Generator().manual_seed(3)), dim=1)
    bs = torch.tensor([-0.1, -50.0, -50.0, -60.0])
    fin = torch.tensor([True, False, True, True])
    t, p, s = _run(backend_device, lp, bs, beam, eos_id=eos, finished=fin)
    # item 0: the finished beam 0 (score -0.1, token eos) beats everything from beam 1
    assert (int(t[0, 0]), int(p[0, 0]), float(s[0, 0])) == (eos, 0, pytest.approx(-0.1))
    assert int(p[0, 1]) == 1 and float(s[0, 1]) == pytest.approx(-50.0 + float(lp[1].max()))
    # item 1: both beams finished: each yields exactly one candidate, unchanged
    assert t[1].tolist() == [eos, eos] and p[1].tolist() == [0, 1] and s[1].tolist() == [-50.0, -60.0]
    # eos_id None means token 0
    t, p, s = _run(backend_device, lp, bs, beam, finished=fin)
    assert t[1].tolist() == [0, 0]
    _check_equal((t, p, s), beam_search_step(lp, bs, beam, finished=fin, backend="reference"))


def test_length_penalty_ranks_but_returns_raw_scores(backend_device):
    lp = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    bs = torch.tensor([-2.0])
    plain = _run(backend_device, lp, bs, 1)
    pen = _run(backend_device, lp, bs, 1, length=9, length_penalty=2.0)
    _check_equal(plain, pen)  # a positive scale keeps the order
    assert float(pen[2][0, 0]) == pytest.approx(-2.0 + float(torch.log(torch.tensor(0.5))))
    # keys equal after the division rank by flat index, on every backend
    lp = torch.tensor([[-1.0, -1.0000001, -3.0]])
    want = beam_search_step(lp, torch.zeros(1), 1, length=1000, length_penalty=30.0, backend="reference")
    _check_equal(_run(backend_device, lp, torch.zeros(1), 1, length=1000, length_penalty=30.0), want)
    t, _, _ = _run(backend_device, lp, torch.zeros(1), 1, length=3, length_penalty=1.0)
    assert t.tolist() == [[0]]


def test_errors():
    lp = torch.zeros(4, 3)
    bs = torch.zeros(4)
    with pytest.raises(TensorError, match="log_probs"):
        beam_search_step(lp, bs, 3)
    with pytest.raises(InvalidArgumentError, match="beam"):
        beam_search_step(lp, bs, 0)
    with pytest.raises(InvalidArgumentError, match="beam"):
        beam_search_step(torch.zeros(4, 0), bs, 2)
    with pytest.raises(TensorError, match="beam_scores"):
        beam_search_step(lp, torch.zeros(3), 2)
    bad = lp.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(TensorError, match="row 3"):
        beam_search_step(bad, bs, 2)
    with pytest.raises(InvalidArgumentError, match="eos_id"):
        beam_search_step(lp, bs, 2, eos_id=3)
    with pytest.raises(TensorError, match="finished"):
        beam_search_step(lp, bs, 2, finished=torch.zeros(4))
    with pytest.raises(InvalidArgumentError, match="length"):
        beam_search_step(lp, bs, 2, length=-1)


def test_blocks_strides_half_and_masked_tokens(backend_device):
    """beam*V over one Triton block, a transposed (strided) half-precision input, -inf entries."""
    gen = torch.Generator().manual_seed(11)
    beam, V = 4, 300
    lp = torch.log_softmax(torch.randn(V, 2 * beam, generator=gen), dim=0).half().t()  # strided
    lp[1, :] = float("-inf")
    lp[2, ::3] = float("-inf")
    bs = torch.randn(2 * beam, generator=gen)
    bs[5] = float("-inf")
    want = beam_search_step(lp, bs, beam, backend="reference")
    _check_equal(_run(backend_device, lp, bs, beam), want)
    # more beams than finite candidates: -inf candidates fill in by flat index
    lp = torch.full((2, 3), float("-inf"))
    lp[0, 2] = -1.0
    want = beam_search_step(lp, torch.zeros(2), 2, backend="reference")
    assert want[0].tolist() == [[2, 0]] and want[1].tolist() == [[0, 0]]
    _check_equal(_run(backend_device, lp, torch.zeros(2), 2), want)
