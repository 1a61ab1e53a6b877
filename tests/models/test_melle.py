"""melle_generate: the cached loop equals a loop that recomputes everything; stop head and sampling."""

import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.models import GaussianSampler, TinyMelleLM, melle_generate

D = 3


def _oracle(model, prompt, r, max_steps, threshold, generator=None):
    """One row at a time, whole sequence recomputed each step, frames reshaped by hand."""
    prompt = prompt[prompt.shape[0] % r :]
    steps = [prompt[i : i + r].reshape(-1) for i in range(0, prompt.shape[0], r)]
    frames, stopped = [], False
    for _ in range(max_steps):
        mu, logvar, stop = model(torch.stack(steps)[None], None)
        new = mu[0, -1]
        if generator is not None:
            new = new + torch.exp(0.5 * logvar[0, -1]) * torch.randn(new.shape, generator=generator)
        frames += [new[i * D : (i + 1) * D] for i in range(r)]
        if torch.sigmoid(stop[0, -1]) >= threshold:
            stopped = True
            break
        steps.append(new)
    return torch.stack(frames), stopped


@pytest.mark.parametrize("r", [1, 2, 3])
def test_cached_loop_equals_recomputing_oracle(r):
    model = TinyMelleLM(D, r, dim=32, stop_bias=0.0, seed=r)
    prompt = torch.randn(4, 7, D, generator=torch.Generator().manual_seed(r))
    out = melle_generate(model, prompt, r=r, max_steps=9, stop_threshold=0.5)
    lengths = []
    for b in range(4):
        want, stopped = _oracle(model, prompt[b], r, 9, 0.5)
        n = int(out.lengths[b])
        lengths.append(n)
        assert n == want.shape[0] and bool(out.finished[b]) == stopped
        torch.testing.assert_close(out.mel[b, :n], want, rtol=1e-4, atol=1e-5)
        assert (out.mel[b, n:] == 0).all()
    assert len(set(lengths)) > 1  # rows stop at different steps


def test_latent_sampling_is_reproducible_and_matches_the_oracle():
    model = TinyMelleLM(D, 2, dim=32, stop_bias=0.0, seed=7)
    prompt = torch.randn(1, 6, D, generator=torch.Generator().manual_seed(8))

    def sampled(seed):
        generator = torch.Generator().manual_seed(seed)
        return melle_generate(
            model, prompt, r=2, max_steps=6, stop_threshold=1.0, sample_latent=True, generator=generator
        )

    a, b = sampled(9), sampled(9)
    mean = melle_generate(model, prompt, r=2, max_steps=6, stop_threshold=1.0)
    assert torch.equal(a.mel, b.mel) and not torch.allclose(a.mel, mean.mel)
    want, _ = _oracle(model, prompt[0], 2, 6, 1.0, torch.Generator().manual_seed(9))
    torch.testing.assert_close(a.mel[0], want, rtol=1e-4, atol=1e-5)


def test_stop_threshold_extremes():
    model = TinyMelleLM(D, 2, dim=16)
    prompt = torch.randn(3, 4, D)
    now = melle_generate(model, prompt, r=2, max_steps=5, stop_threshold=0.0)
    assert now.lengths.tolist() == [2, 2, 2] and now.finished.all() and now.steps == 1
    never = melle_generate(model, prompt, r=2, max_steps=5, stop_threshold=1.0)
    assert never.lengths.tolist() == [10, 10, 10] and not never.finished.any() and never.mel.shape == (3, 10, D)


def test_bad_inputs():
    model = TinyMelleLM(D, 2, dim=16, max_context=4)
    with pytest.raises(TensorError, match=r"prompt_mel: expected a float \[B, T0 >= r=2, D\]"):
        melle_generate(model, torch.randn(1, 1, D), r=2, max_steps=2)
    with pytest.raises(InvalidArgumentError, match=r"prompt_mel: expected at most max_context - 1 = 3 steps"):
        melle_generate(model, torch.randn(1, 8, D), r=2, max_steps=2)
    out = melle_generate(model, torch.randn(1, 6, D), r=2, max_steps=9, stop_threshold=1.0)
    assert int(out.lengths[0]) == 2 * 2  # the context holds 3 prompt steps + 1 fed back

    class NoLogvar(torch.nn.Module):
        max_context = 8

        def __init__(self, width):
            super().__init__()
            self.width = width

        def new_cache(self, batch):
            return None

        def forward(self, steps, cache):
            return steps[..., : self.width], None, steps[..., 0]

    with pytest.raises(TensorError, match=r"model output: expected \(mu \[B=1, S=1, 6\]"):
        melle_generate(NoLogvar(4), torch.randn(1, 2, D), r=2, max_steps=2)
    with pytest.raises(InvalidArgumentError, match="sample_latent"):
        melle_generate(NoLogvar(D), torch.randn(1, 2, D), r=1, max_steps=2, sample_latent=True)
    assert melle_generate(NoLogvar(D), torch.ones(1, 2, D), r=1, max_steps=3, stop_threshold=1.0).mel.tolist() == [
        [[1.0] * D] * 3
    ]


class HistoryEcho:
    """A user's frame sampler: the mean, plus the mean of the row's earlier frames; keeps what it saw."""

    def __init__(self):
        self.seen, self.resets = [], 0

    def __call__(self, mu, logvar, history):
        self.seen.append(history.clone())
        return mu + (history.mean(dim=1) if history.shape[1] else 0.0)

    def reset(self, rows=None):
        self.resets += 1


def test_a_frame_sampler_draws_and_sees_the_row_s_frames():
    model = TinyMelleLM(D, 2, dim=32, stop_bias=0.0, seed=3)
    prompt = torch.randn(2, 4, D, generator=torch.Generator().manual_seed(4))
    sampler = HistoryEcho()
    out = melle_generate(model, prompt, r=2, max_steps=5, stop_threshold=1.0, sampler=sampler)
    assert sampler.resets == 1 and len(sampler.seen) == 5
    steps = out.mel.reshape(2, 5, 2 * D)  # r = 2 frames per step
    for step, history in enumerate(sampler.seen):
        assert torch.equal(history, steps[:, :step])  # the frames drawn before, oldest first
    plain = melle_generate(model, prompt, r=2, max_steps=5, stop_threshold=1.0)
    assert torch.equal(out.mel[:, :2], plain.mel[:, :2])  # the first step has no history: the mean
    assert not torch.allclose(out.mel, plain.mel)


def test_gaussian_sampler_is_sample_latent():
    model = TinyMelleLM(D, 2, dim=32, stop_bias=0.0, seed=7)
    prompt = torch.randn(1, 6, D, generator=torch.Generator().manual_seed(8))
    options = {"r": 2, "max_steps": 6, "stop_threshold": 1.0}
    old = melle_generate(model, prompt, sample_latent=True, generator=torch.Generator().manual_seed(9), **options)
    new = melle_generate(model, prompt, sampler=GaussianSampler(generator=torch.Generator().manual_seed(9)), **options)
    assert torch.equal(old.mel, new.mel)
    mean = melle_generate(model, prompt, sampler=GaussianSampler(0.0), **options)
    assert torch.equal(mean.mel, melle_generate(model, prompt, **options).mel)
    cooler = melle_generate(model, prompt, sampler=GaussianSampler(0.5, torch.Generator().manual_seed(9)), **options)
    # the first step's draw: mu + sigma * 0.5 * eps, halfway between the mean and the full draw
    torch.testing.assert_close(cooler.mel[0, :2], (mean.mel[0, :2] + old.mel[0, :2]) / 2, rtol=1e-5, atol=1e-6)


def test_bad_frame_samplers_are_named():
    model = TinyMelleLM(D, 1, dim=16, seed=1)
    prompt = torch.randn(1, 2, D)
    with pytest.raises(TensorError, match=r"sampler output: expected float frames of shape \[1, 3\]"):
        melle_generate(model, prompt, max_steps=2, sampler=Wrong())
    with pytest.raises(InvalidArgumentError, match="sampler"):
        melle_generate(model, prompt, max_steps=2, sampler=GaussianSampler(), sample_latent=True)
    with pytest.raises(InvalidArgumentError, match="sampler: expected a frame sampler"):
        melle_generate(model, prompt, max_steps=2, sampler=lambda mu, logvar, history: mu)
    with pytest.raises(InvalidArgumentError, match="scale"):
        GaussianSampler(-1.0)


class Wrong:
    def __call__(self, mu, logvar, history):
        return mu[:, :-1]

    def reset(self, rows=None):
        pass
