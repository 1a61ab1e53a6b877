"""The sampler protocol: our samplers equal the ops they wrap, user samplers (plain torch and
numba-compiled) drive the generation loops and Hugging Face generate, the history a loop hands
over is exactly the tokens drawn since the reset, and bad samplers are named."""

import numpy as np
import pytest
import torch

from speechdecode.decoding import FilterSampler, RasSampler, Sampler, ras, sample
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.models import CodecLM, DelayPatternLM, TinyTransformerLM

CARD, PHONEMES, K = 24, 9, 3


def delay_lm(seed=2) -> DelayPatternLM:
    vocab = DelayPatternLM.input_vocab(CARD, PHONEMES)
    return DelayPatternLM(TinyTransformerLM(vocab, K, CARD + 2, K, dim=32, max_context=96, seed=seed), card=CARD,
                          num_codebooks=K)  # fmt: skip


def codec_lm() -> CodecLM:
    vocab = CodecLM.input_vocab(CARD, PHONEMES)
    return CodecLM(TinyTransformerLM(vocab, 1, CARD + 1, 1, dim=32, max_context=96, seed=0), card=CARD)


class NoRepeat:
    """A user's sampler in plain torch: the best token other than the row's previous one."""

    def __init__(self):
        self.calls = []  # (history, tokens) per call
        self.resets = 0

    def __call__(self, logits, history):
        x = logits.clone()
        if history.shape[1]:
            last = history[:, -1]
            seen = last >= 0
            x[seen, last[seen]] = float("-inf")
        tokens = x.argmax(dim=-1)
        self.calls.append((history.clone(), tokens.clone()))
        return tokens

    def reset(self, rows=None):
        self.resets += 1


def assert_history_is_the_draws(calls):
    for n, (history, _) in enumerate(calls):
        assert history.shape[1] == n
        if n:
            assert torch.equal(history, torch.stack([t for _, t in calls[:n]], dim=1))


def test_filter_and_ras_samplers_equal_the_ops_they_wrap():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 50, generator=g) * 3
    history = torch.randint(-1, 50, (7, 13), generator=g)
    filtered = FilterSampler(temperature=0.7, top_k=20, top_p=0.9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(
        filtered(logits, history),
        sample(logits, temperature=0.7, top_k=20, top_p=0.9, generator=torch.Generator().manual_seed(1)),
    )
    for preset in ("paper", "cosyvoice", "flashcosyvoice"):
        sampler = RasSampler(window=5, threshold=0.2, preset=preset, temperature=0.5,
                             generator=torch.Generator().manual_seed(2))  # fmt: skip
        want = ras(logits / 0.5, history[:, -5:], window=5, threshold=0.2, preset=preset,
                   generator=torch.Generator().manual_seed(2))  # fmt: skip
        assert torch.equal(sampler(logits, history), want)
    assert isinstance(filtered, Sampler) and isinstance(NoRepeat(), Sampler)


def test_a_user_sampler_drives_the_delay_pattern_loop():
    sampler = NoRepeat()
    phonemes = torch.randint(0, PHONEMES, (2, 5), generator=torch.Generator().manual_seed(3))
    out = delay_lm().generate(phonemes, max_frames=8, sampler=sampler)
    assert sampler.resets == 1
    assert_history_is_the_draws(sampler.calls)
    draws = torch.stack([t for _, t in sampler.calls], dim=1).view(2, K, -1)  # row b * K + k
    for b in range(2):
        frames = int(out.lengths[b])
        for k in range(K):  # delays 0..K-1: frame t of codebook k is drawn at step t + k
            assert torch.equal(out.codes[b, k, :frames], draws[b, k, k : k + frames])
        assert bool((draws[b, :, 1:] != draws[b, :, :-1]).all())  # the sampler's own rule held


def test_a_user_sampler_drives_the_ar_loop_and_is_reset_for_each_generate():
    sampler = NoRepeat()
    lm = codec_lm()
    phonemes = torch.randint(0, PHONEMES, (3, 4), generator=torch.Generator().manual_seed(4))
    prompt = torch.randint(0, CARD, (3, 1, 2), generator=torch.Generator().manual_seed(5))
    out = lm.generate(phonemes, prompt, max_frames=6, sampler=sampler)
    assert_history_is_the_draws(sampler.calls)
    draws = torch.stack([t for _, t in sampler.calls], dim=1)
    for b in range(3):
        frames = int(out.lengths[b])
        assert torch.equal(out.codes[b, 0, :frames], draws[b, :frames])
    sampler.calls.clear()
    lm.generate(phonemes, prompt, max_frames=3, sampler=sampler)
    assert sampler.resets == 2 and sampler.calls[0][0].shape[1] == 0


def test_a_numba_sampler_plugs_in():
    numba = pytest.importorskip("numba")

    @numba.njit(cache=False)
    def penalized_argmax(logits, history, penalty):  # repetition penalty over the row's history
        out = np.empty(logits.shape[0], dtype=np.int64)
        for r in range(logits.shape[0]):
            x = logits[r].copy()
            for token in history[r]:
                if token >= 0:
                    x[token] -= penalty
            out[r] = np.argmax(x)
        return out

    class Penalized:
        def __call__(self, logits, history):
            return penalized_argmax(logits.numpy(), history.numpy(), 2.0)  # numpy out: the loop converts it

        def reset(self, rows=None):
            pass

    class TorchPenalized(Penalized):  # the same rule in torch, the oracle
        def __call__(self, logits, history):
            x = logits.clone()
            for r in range(x.shape[0]):
                for token in history[r].tolist():
                    if token >= 0:
                        x[r, token] -= 2.0
            return x.argmax(dim=-1)

    phonemes = torch.randint(0, PHONEMES, (2, 5), generator=torch.Generator().manual_seed(6))
    lm = delay_lm()
    got = lm.generate(phonemes, max_frames=6, sampler=Penalized())
    want = lm.generate(phonemes, max_frames=6, sampler=TorchPenalized())
    assert torch.equal(got.codes, want.codes) and torch.equal(got.lengths, want.lengths)


class Returns:
    def __init__(self, make):
        self.make = make

    def __call__(self, logits, history):
        return self.make(logits)

    def reset(self, rows=None):
        pass


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda x: x.argmax(dim=-1)[:-1], r"sampler output: expected \[6\] integer tokens in \[0, 26\)"),
        (lambda x: x.argmax(dim=-1).float(), "float32"),
        (lambda x: torch.full((x.shape[0],), 26), "26 at row 0"),
        (lambda x: x.argmax(dim=-1).numpy().astype(np.float64), "numpy float64"),
        (lambda x: x.argmax(dim=-1).tolist(), "list"),
    ],
)
def test_bad_sampler_outputs_are_named(make, message):
    phonemes = torch.zeros((2, 3), dtype=torch.long)
    with pytest.raises(TensorError, match=message):
        delay_lm().generate(phonemes, max_frames=2, sampler=Returns(make))


def test_a_subclass_of_our_sampler_is_checked():
    """draw trusts FilterSampler's and RasSampler's own kernels, not a subclass's override."""
    from speechdecode.decoding.samplers import FilterSampler, RasSampler, draw, draw_guided

    class Off(FilterSampler):
        def __call__(self, logits, history):
            return torch.full((logits.shape[0],), logits.shape[1])

        def guided(self, cond, uncond, scale, history):
            return self(cond, history)

    logits, history = torch.randn(3, 7), torch.zeros(3, 0, dtype=torch.long)
    with pytest.raises(TensorError, match=r"sampler output: expected \[3\] integer tokens in \[0, 7\), got 7 at row 0"):
        draw(Off(), logits, history)
    with pytest.raises(TensorError, match=r"got 7 at row 0"):
        draw_guided(Off(), logits, logits, 2.0, history)
    for ours in (FilterSampler(top_k=3), RasSampler(preset="cosyvoice")):  # trusted: still tokens in [0, V)
        tokens = draw(ours, logits, history)
        assert tokens.dtype == torch.int64 and tokens.shape == (3,) and bool(((tokens >= 0) & (tokens < 7)).all())


def test_samplers_are_checked_and_never_mixed_with_sampling_options():
    phonemes = torch.zeros((1, 3), dtype=torch.long)
    lm = delay_lm()
    with pytest.raises(InvalidArgumentError, match="sampler: expected a sampler"):
        lm.generate(phonemes, max_frames=2, sampler=lambda logits, history: logits.argmax(-1))  # no reset
    with pytest.raises(InvalidArgumentError, match=r"not both .*temperature, ras"):
        lm.generate(phonemes, max_frames=2, sampler=NoRepeat(), temperature=0.5, ras={})
