"""melle_generate: the cached loop equals a loop that recomputes everything; stop head and sampling."""

import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.models import TinyMelleLM, melle_generate

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
