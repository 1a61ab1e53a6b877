"""``musicgen_generate``: our loop around MusicGen's forward (tiny random configs, nothing
downloaded). Greedy, its codes are ``generate(do_sample=False)``'s token for token, for the
unconditional decoder and the text-conditioned model with and without classifier-free
guidance (padded text included); the sampler sees each (row, codebook)'s own earlier frames."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    EncodecConfig,
    GenerationConfig,
    LogitsProcessor,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForCausalLM,
    MusicgenForConditionalGeneration,
    T5Config,
)

from speechdecode.decoding import FilterSampler  # noqa: E402
from speechdecode.errors import InvalidArgumentError, TensorError  # noqa: E402
from speechdecode.models.hf_musicgen import musicgen_generate  # noqa: E402

CARD, K = 32, 4
PAD = CARD


def decoder_config() -> MusicgenDecoderConfig:
    # Large initial weights: wide logit gaps, so float rounding cannot flip a greedy choice.
    sizes = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "ffn_dim": 32}
    return MusicgenDecoderConfig(
        vocab_size=CARD, num_codebooks=K, max_position_embeddings=64, initializer_range=0.5, **sizes
    )


def generation_config(**extra) -> GenerationConfig:
    return GenerationConfig(pad_token_id=PAD, decoder_start_token_id=PAD, bos_token_id=PAD, max_length=600,
                            num_return_sequences=1, **extra)  # fmt: skip


@pytest.fixture(scope="module")
def unconditional():
    torch.manual_seed(3)
    model = MusicgenForCausalLM(decoder_config()).eval()
    model.generation_config = generation_config()
    return model


@pytest.fixture(scope="module")
def conditional():
    torch.manual_seed(4)
    text = T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    audio = EncodecConfig(codebook_size=CARD, hidden_size=8, num_filters=4, upsampling_ratios=[2, 2],
                          target_bandwidths=[4.4], sampling_rate=400, codebook_dim=8, num_lstm_layers=1)  # fmt: skip
    config = MusicgenConfig(
        text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder_config().to_dict()
    )
    model = MusicgenForConditionalGeneration(config).eval()
    model.generation_config = generation_config()
    return model


class LastStep(LogitsProcessor):
    """Keeps what generate's last step saw: the sequence so far and the scores (CFG halves)."""

    def __call__(self, input_ids, scores):
        self.ids, self.scores = input_ids.clone(), scores.clone()
        return scores


def hf_codes(model, frames: int, batch: int, guidance_scale=None, **kwargs) -> torch.Tensor:
    """The codes MusicgenForConditionalGeneration.generate draws (it returns audio only)."""
    last = LastStep()
    model.generate(do_sample=False, max_length=frames + K, logits_processor=[last], guidance_scale=guidance_scale,
                   **kwargs)  # fmt: skip
    scores = last.scores
    if guidance_scale is not None:  # its CFG processor runs after ours: combine the halves as it does
        cond, uncond = scores.split(batch * K)
        scores = uncond + (cond - uncond) * guidance_scale
    seq = torch.cat([last.ids, scores.argmax(-1, keepdim=True)], dim=1).reshape(batch, K, -1)
    return torch.stack([seq[:, k, k + 1 : k + 1 + frames] for k in range(K)], dim=1)


@pytest.mark.parametrize("batch, frames", [(1, 3), (3, 13), (2, 30)])  # under K - 1 frames generate skips its pattern
def test_greedy_equals_generate_unconditional(unconditional, batch, frames):
    ours = musicgen_generate(
        unconditional, batch_size=batch, max_new_frames=frames, sampler=FilterSampler(temperature=0)
    )
    hf = unconditional.generate(torch.full((batch * K, 1), PAD), do_sample=False, max_length=frames + K)
    assert ours.shape == (batch, K, frames) and torch.equal(ours, hf)
    assert bool((ours < CARD).all())


@pytest.mark.parametrize("scale", [None, 3.0])
def test_greedy_equals_generate_with_text_and_guidance(conditional, scale):
    ids = torch.randint(0, 50, (3, 6), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # a padded prompt
    frames = 11
    ours = musicgen_generate(conditional, ids, attention_mask=mask, max_new_frames=frames, guidance_scale=scale,
                             sampler=FilterSampler(temperature=0))  # fmt: skip
    hf = hf_codes(conditional, frames, 3, guidance_scale=scale, input_ids=ids, attention_mask=mask)
    assert torch.equal(ours, hf)
    if scale is not None:  # guidance changes the draws (else the test above proves nothing about it)
        plain = musicgen_generate(conditional, ids, attention_mask=mask, max_new_frames=frames,
                                  sampler=FilterSampler(temperature=0))  # fmt: skip
        assert not torch.equal(plain, ours)


class Recorder:
    """Greedy, keeping every history it was given."""

    def __init__(self):
        self.histories = []

    def __call__(self, logits, history):
        self.histories.append(history.clone())
        return logits.argmax(-1)

    def reset(self, rows=None):
        self.histories.clear()


def test_the_sampler_sees_each_codebook_s_own_frames(unconditional):
    sampler = Recorder()
    frames = 7
    codes = musicgen_generate(unconditional, batch_size=2, max_new_frames=frames, sampler=sampler)
    assert len(sampler.histories) == frames + K - 1
    last = sampler.histories[-1].view(2, K, -1)  # before the last column: K - 1 + frames - 1 entries
    for k in range(K):
        row = last[:, k]
        assert bool((row[:, :k] == -1).all())  # before codebook k's first frame
        seen = row[:, k : k + frames]
        assert torch.equal(seen[:, : seen.shape[1]], codes[:, k, : seen.shape[1]])


def test_sampling_is_reproducible_from_the_generator(conditional):
    ids = torch.randint(0, 50, (2, 4), generator=torch.Generator().manual_seed(1))

    def run(seed):
        sampler = FilterSampler(top_k=10, generator=torch.Generator().manual_seed(seed))
        return musicgen_generate(conditional, ids, max_new_frames=9, guidance_scale=2.5, sampler=sampler)

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


def test_bad_arguments_are_named(unconditional, conditional):
    with pytest.raises(InvalidArgumentError, match=r"delays: expected the model's delays \[0, 1, 2, 3\]"):
        musicgen_generate(unconditional, max_new_frames=3, delays=[0, 8, 9, 10])
    with pytest.raises(InvalidArgumentError, match="guidance_scale"):
        musicgen_generate(unconditional, max_new_frames=3, guidance_scale=3.0)
    with pytest.raises(InvalidArgumentError, match="input_ids"):
        musicgen_generate(conditional, max_new_frames=3)
    with pytest.raises(InvalidArgumentError, match="max_new_frames: expected at most 61"):
        musicgen_generate(unconditional, max_new_frames=62)
    with pytest.raises(InvalidArgumentError, match="model: expected a MusicgenForCausalLM"):
        musicgen_generate(torch.nn.Linear(2, 2), max_new_frames=3)
    with pytest.raises(TensorError, match="sampler output"):
        musicgen_generate(unconditional, max_new_frames=3, sampler=_WrongShape())


class _WrongShape:
    def __call__(self, logits, history):
        return logits.argmax(-1)[:-1]

    def reset(self, rows=None):
        pass
