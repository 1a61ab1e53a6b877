"""delay_pattern: every backend against the reference, round trips, logits alignment, streaming."""

import numpy as np
import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels import delay_pattern as dp
from speechdecode.kernels.delay_pattern import reference

SPECIAL = 2048
CARD = 2048
SIZES = [(b, k, t) for b in (1, 3) for k in (1, 4, 8) for t in (1, 2, 31, 257)]


def delay_options(k: int) -> list:
    options = [None]
    if k == 4:
        options.append([0, 0, 2, 5])
    if k == 8:
        options.append([0, 1, 1, 3, 3, 3, 7, 16])
    if k == 1:
        options.append([3])
    return options


def random_codes(seed: int, b: int, k: int, t: int, device: str = "cpu") -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, CARD, (b, k, t), generator=gen).to(device)


def test_reference_by_hand():
    z = torch.tensor([[[10, 11, 12], [20, 21, 22]]])
    s, valid = reference.build(z, [0, 1], 9)
    assert s.tolist() == [[[9, 10, 11, 12, 9], [9, 9, 20, 21, 22]]]
    assert valid.tolist() == [[False, True, True, True, False], [False, False, True, True, True]]
    s, _ = reference.build(z, [0, 2], 9)
    assert s.tolist() == [[[9, 10, 11, 12, 9, 9], [9, 9, 9, 20, 21, 22]]]
    assert reference.revert(s, [0, 2]).tolist() == z.tolist()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_backends_match_reference(backend_device, size):
    backend, device = backend_device
    b, k, t = size
    for i, delays in enumerate(delay_options(k)):
        z = random_codes(100 * t + 10 * k + b + i, b, k, t, device)
        d = delays if delays is not None else list(range(k))
        want_s, want_valid = reference.build(z.cpu(), d, SPECIAL)
        s, valid = dp.build(z, delays, special=SPECIAL, card=CARD, backend=backend)
        assert s.device.type == device and s.dtype == torch.int64 and valid.dtype == torch.bool
        assert torch.equal(s.cpu(), want_s) and torch.equal(valid.cpu(), want_valid)
        assert torch.equal(dp.revert(s, delays, backend=backend).cpu(), z.cpu())  # round trip
        # revert of an arbitrary sequence (not only built ones), non-contiguous input
        noise = random_codes(7 + t, b, k, 2 * want_s.shape[2], device)[..., ::2]
        assert not noise.is_contiguous()
        assert torch.equal(dp.revert(noise, delays, backend=backend).cpu(), reference.revert(noise.cpu(), d))


def test_build_non_contiguous_and_numpy(backend_device):
    backend, device = backend_device
    z = random_codes(3, 5, 3, 4, device).transpose(1, 2)[::2]  # [3, 4, 5] with odd strides
    s, valid = dp.build(z, [0, 1, 1, 4], special=SPECIAL, backend=backend)
    want_s, want_valid = reference.build(z.cpu(), [0, 1, 1, 4], SPECIAL)
    assert torch.equal(s.cpu(), want_s) and torch.equal(valid.cpu(), want_valid)
    zn = z.cpu().numpy()
    sn, vn = dp.build(zn, special=SPECIAL, backend=backend if device == "cpu" else None)
    assert isinstance(sn, np.ndarray) and isinstance(vn, np.ndarray)
    assert (dp.revert(sn) == zn).all()


def test_zero_frames_and_rows(backend_device):
    backend, device = backend_device
    for b, t in [(2, 0), (0, 3)]:
        z = random_codes(4, b, 4, t, device)
        s, valid = dp.build(z, [0, 0, 2, 5], special=SPECIAL, backend=backend)
        want_s, want_valid = reference.build(z.cpu(), [0, 0, 2, 5], SPECIAL)
        assert torch.equal(s.cpu(), want_s) and torch.equal(valid.cpu(), want_valid)
        assert dp.revert(s, [0, 0, 2, 5], backend=backend).shape == (b, 4, t)


def test_dispatch(monkeypatch):
    from speechdecode import _backend
    from speechdecode.kernels.delay_pattern import native

    calls = []
    for module, name in [(reference, "reference"), (native, "native")]:
        original = module.revert
        monkeypatch.setattr(module, "revert", lambda s, d, _o=original, _n=name: calls.append(_n) or _o(s, d))
    s = torch.full((1, 2, 4), SPECIAL)
    dp.revert(s)
    monkeypatch.setenv(_backend.ENV_VAR, "reference")
    dp.revert(s)
    dp.revert(s, backend="native")  # the argument wins over the environment
    monkeypatch.delenv(_backend.ENV_VAR)
    monkeypatch.setattr(_backend, "HAS_NATIVE", False)  # this op's native path needs no extension
    dp.revert(s)
    assert calls == ["native", "reference", "native", "native"]


def test_valid_marks_real_codes():
    z = random_codes(5, 2, 4, 6)
    s, valid = dp.build(z, [0, 0, 2, 5], special=SPECIAL)
    assert torch.equal(valid[None].expand_as(s), s != SPECIAL)
    assert int(valid.sum()) == 4 * 6 and not bool(valid[:, 0].any())


def test_revert_logits_consistent_with_revert(backend_device):
    backend, device = backend_device
    for k, t, delays in [(4, 31, None), (4, 2, [0, 0, 2, 5]), (1, 1, None), (8, 9, None)]:
        vocab = 37
        z = torch.randint(0, vocab - 1, (3, k, t), generator=torch.Generator().manual_seed(t)).to(device)
        s, _ = dp.build(z, delays, special=vocab - 1, backend=backend)
        # an LM that predicts perfectly: logits at step n are one-hot on s[..., n + 1]
        target = torch.cat([s[..., 1:], torch.full_like(s[..., :1], vocab - 1)], dim=-1)
        logits = torch.nn.functional.one_hot(target, vocab).float()
        logits = logits + 0.01 * torch.rand(logits.shape, generator=torch.Generator().manual_seed(1)).to(device)
        out = dp.revert_logits(logits, delays, backend=backend)
        assert out.shape == (3, k, t, vocab)
        assert torch.equal(out.argmax(-1), z)
        d = delays if delays is not None else list(range(k))
        assert torch.equal(out.cpu(), reference.revert_logits(logits.cpu(), d))


@pytest.mark.parametrize("delays", [None, [0, 0, 2, 5], [0, 0, 0, 0]])
def test_incremental_revert_emits_frames_as_soon_as_complete(delays):
    k, t = 4, 11
    z = random_codes(11, 2, k, t)
    s, _ = dp.build(z, delays, special=SPECIAL)
    d = delays if delays is not None else list(range(k))
    stream = dp.IncrementalRevert(k, delays)
    emitted = []
    for n in range(s.shape[2]):
        frames = stream.accept(s[:, :, n])
        # frame f needs steps f + 1 + d_k for every k: complete exactly when step f + 1 + max(d) arrives
        expected = [f for f in range(t) if f + 1 + max(d) == n]
        assert frames.shape == (2, k, len(expected))
        for j, f in enumerate(expected):
            assert torch.equal(frames[:, :, j], z[:, :, f])
        emitted.append(frames)
    assert torch.equal(torch.cat(emitted, dim=-1), dp.revert(s, delays))
    # what is left is the delay padding after the last frame: specials, the rest never generated
    tail = stream.finish(fill=-1)
    assert tail.shape == (2, k, max(d) - d[0])
    assert bool(((tail == SPECIAL) | (tail == -1)).all())


def test_incremental_flush_returns_partial_frames():
    z = random_codes(12, 1, 4, 6)
    s, _ = dp.build(z, special=SPECIAL)  # delays 0..3
    stream = dp.IncrementalRevert(4)
    got = [stream.accept(s[:, :, n]) for n in range(6)]  # steps 0..5: frames 0, 1 complete
    assert torch.equal(torch.cat(got, -1), z[:, :, :2])
    partial = stream.finish(fill=-7)
    # frames 2, 3, 4 are started (codebook 0 at steps 3, 4, 5), none complete
    assert partial.shape == (1, 4, 3)
    want = torch.full((1, 4, 3), -7)
    for f in range(2, 5):
        for k in range(4):
            if f + 1 + k <= 5:
                want[:, k, f - 2] = z[:, k, f]
    assert torch.equal(partial, want)
    assert stream.steps == 0
    assert stream.accept(s[:, :, 0]).shape == (1, 4, 0)  # a fresh stream after flush


def test_errors():
    z = random_codes(1, 2, 4, 5)
    with pytest.raises(InvalidArgumentError, match=r"delays: .*sorted.*1 at \[2\]"):
        dp.build(z, [0, 2, 1, 3], special=SPECIAL)
    with pytest.raises(InvalidArgumentError, match=r"delays: .*non-negative.*-1 at \[0\]"):
        dp.build(z, [-1, 0, 1, 2], special=SPECIAL)
    with pytest.raises(InvalidArgumentError, match=r"delays: expected 4 delays.*got 3"):
        dp.revert(z, [0, 1, 2])
    bad = z.clone()
    bad[1, 2, 3] = CARD
    with pytest.raises(TensorError, match=r"codes: .*\[0, 2048\).*2048 at \[1, 2, 3\]"):
        dp.build(bad, special=9999, card=CARD)
    bad[1, 2, 3] = -1
    with pytest.raises(TensorError, match=r"-1 at \[1, 2, 3\]"):
        dp.build(bad, special=9999, card=CARD)
    bad[1, 2, 3] = SPECIAL
    with pytest.raises(TensorError, match=r"special=2048.*2048 at \[1, 2, 3\]"):
        dp.build(bad, special=SPECIAL)
    with pytest.raises(TensorError, match=r"codes: expected a 3-D"):
        dp.build(z[0], special=SPECIAL)
    with pytest.raises(TensorError, match=r"codes: expected dtype int64"):
        dp.build(z.float(), special=SPECIAL)
    with pytest.raises(TensorError, match=r"sequence: expected at least 1 \+ max\(delays\) = 4 steps, got 3"):
        dp.revert(z[..., :3])
    with pytest.raises(TensorError, match=r"logits: expected a floating-point"):
        dp.revert_logits(z[..., None])
    with pytest.raises(TensorError, match=r"step_codes: expected shape \[B, 4\]"):
        dp.IncrementalRevert(4).accept(z[:, :3, 0])
    with pytest.raises(InvalidArgumentError, match=r"backend"):
        dp.revert(z, backend="cuda")


def test_incremental_revert_old_verbs_warn_and_do_the_same():
    z = random_codes(5, 2, 4, 6)
    s, _ = dp.build(z, special=SPECIAL)
    new, old = dp.IncrementalRevert(4), dp.IncrementalRevert(4)
    for n in range(5):
        want = new.accept(s[:, :, n])
        with pytest.warns(DeprecationWarning, match=r"IncrementalRevert.push\(\) is deprecated .* accept\(\)"):
            assert torch.equal(old.push(s[:, :, n]), want)
    with pytest.warns(DeprecationWarning, match=r"IncrementalRevert.flush\(\) is deprecated .* finish\(\)"):
        assert torch.equal(old.flush(fill=-3), new.finish(fill=-3))
