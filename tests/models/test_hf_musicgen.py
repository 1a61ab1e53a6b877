"""RepetitionAwareProcessor inside MusicGen's own generate (tiny random configs, nothing
downloaded): unconditional MusicgenForCausalLM and text-conditioned
MusicgenForConditionalGeneration with classifier-free guidance. Every drawn token is what
``ras`` draws from the same (guided) scores, history and uniforms, and MusicGen's output codes
are exactly those draws read back through its delay pattern."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    EncodecConfig,
    GenerationConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForCausalLM,
    MusicgenForConditionalGeneration,
    T5Config,
)

from speechdecode.decoding import FilterSampler, guided_sample, ras  # noqa: E402
from speechdecode.errors import InvalidArgumentError, TensorError  # noqa: E402
from speechdecode.models.hf import RepetitionAwareProcessor, SamplerProcessor, ras_generate  # noqa: E402

CARD, K = 32, 4
PAD = CARD  # MusicGen's pad / start token sits right after the codebook


def decoder_config() -> MusicgenDecoderConfig:
    return MusicgenDecoderConfig(
        vocab_size=CARD,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        num_codebooks=K,
        max_position_embeddings=256,
    )


def generation_config(**extra) -> GenerationConfig:
    return GenerationConfig(
        pad_token_id=PAD,
        decoder_start_token_id=PAD,
        bos_token_id=PAD,
        do_sample=True,
        max_length=64,
        num_return_sequences=1,
        **extra,
    )


class Recording(RepetitionAwareProcessor):
    """Keeps what each call saw and drew."""

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = []

    def __call__(self, input_ids, scores):
        out = super().__call__(input_ids, scores)
        drawn = out[: input_ids.shape[0]].argmax(dim=-1)
        self.calls.append((input_ids.clone(), scores.clone(), drawn))
        return out


def replay(calls, options, seed, guidance_scale=None):
    """The tokens ras (reference backend) draws from each call's inputs, uniforms in the same order."""
    g = torch.Generator().manual_seed(seed)
    prompt = calls[0][0].shape[1]
    for input_ids, scores, drawn in calls:
        rows = input_ids.shape[0]
        logits = scores.float()
        if guidance_scale is not None:
            cond, uncond = logits.split(rows)
            logits = uncond + guidance_scale * (cond - uncond)
        generated = input_ids[:, prompt:][:, -options.get("window", 10) :]
        history = torch.where(generated < CARD, generated, -1)
        uniforms = torch.rand((rows, 2), generator=g)
        want = ras(logits, history, uniforms=uniforms, backend="reference", **options)
        assert torch.equal(drawn, want)


def assert_output_is_the_draws(calls, codes, batch):
    draws = torch.stack([drawn for _, _, drawn in calls], dim=1).reshape(batch, K, -1)  # [B, K, steps]
    frames = codes.shape[-1]
    for k in range(K):  # MusicGen's delays 0..K-1: frame t of codebook k is drawn at step t + k
        assert torch.equal(codes[:, k], draws[:, k, k : k + frames])


@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
def test_unconditional_musicgen_samples_with_ras(preset):
    torch.manual_seed(0)
    model = MusicgenForCausalLM(decoder_config()).eval()
    model.generation_config = generation_config()
    options = {"preset": preset, "window": 6, "threshold": 0.2, "top_p": 0.9}
    processor = Recording(**options, generator=torch.Generator().manual_seed(3))
    batch = 2
    codes = model.generate(input_ids=torch.full((batch * K, 1), PAD), max_new_tokens=14, logits_processor=[processor])
    assert codes.shape == (batch, K, 14 - K + 1)
    replay(processor.calls, options, seed=3)
    assert_output_is_the_draws(processor.calls, codes, batch)
    # a second generate starts a new history (its prompt is the first call's input_ids)
    processor.calls.clear()
    model.generate(input_ids=torch.full((batch * K, 1), PAD), max_new_tokens=5, logits_processor=[processor])
    assert processor.calls[0][0].shape[1] == 1


def conditional_musicgen() -> MusicgenForConditionalGeneration:
    torch.manual_seed(0)
    config = MusicgenConfig(
        text_encoder=T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2).to_dict(),
        audio_encoder=EncodecConfig(
            codebook_size=CARD, hidden_size=8, num_filters=4, upsampling_ratios=[2, 2], target_bandwidths=[4.0],
            sampling_rate=400, codebook_dim=8, num_lstm_layers=1,  # 100 frames/s: 4 codebooks at 4 kbit/s
        ).to_dict(),
        decoder=decoder_config().to_dict(),
    )  # fmt: skip
    model = MusicgenForConditionalGeneration(config).eval()
    model.generation_config = generation_config(guidance_scale=3.0)
    return model


def test_text_conditioned_musicgen_with_guidance():
    model = conditional_musicgen()
    text = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(1))
    options = {"preset": "cosyvoice"}
    processor = Recording(**options, guidance_scale=3.0, generator=torch.Generator().manual_seed(4))
    decoded = []  # generate returns audio: the codes it decodes are caught on the way to the codec
    decode = model.audio_encoder.decode
    model.audio_encoder.decode = lambda codes, **kw: decoded.append(codes) or decode(codes, **kw)
    audio = model.generate(input_ids=text, attention_mask=torch.ones_like(text), max_new_tokens=10,
                           logits_processor=[processor])  # fmt: skip
    assert audio.ndim == 3 and audio.shape[0] == 2
    assert processor.calls[0][1].shape[0] == 2 * processor.calls[0][0].shape[0]  # cond and uncond halves
    replay(processor.calls, options, seed=4, guidance_scale=3.0)
    assert_output_is_the_draws(processor.calls, decoded[0][0], 2)
    unguided = Recording(**options)
    with pytest.raises(InvalidArgumentError, match="guidance_scale"):
        model.generate(input_ids=text, attention_mask=torch.ones_like(text), max_new_tokens=3,
                       logits_processor=[unguided])  # fmt: skip


def test_bad_scores_and_options_are_named():
    processor = RepetitionAwareProcessor()
    with pytest.raises(TensorError, match=r"scores: expected \[3, V\] or \[6, V\]"):
        processor(torch.zeros((3, 1), dtype=torch.long), torch.zeros((4, 8)))
    for bad in ({"temperature": 0.0}, {"guidance_scale": float("nan")}, {"top_p": 1.5}, {"window": 0}):
        with pytest.raises(InvalidArgumentError):
            RepetitionAwareProcessor(**bad)


def test_ras_generate_refuses_beam_search_instead_of_ignoring_it():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(3, 40, (2, 4), generator=torch.Generator().manual_seed(0))
    with pytest.raises(InvalidArgumentError, match="num_beams"):
        model.generate(ids, custom_generate=ras_generate, num_beams=2, max_new_tokens=3)
    out = model.generate(ids, custom_generate=ras_generate, max_new_tokens=3, ras_generator=torch.Generator())
    assert out.shape == (2, 7)


def test_guidance_fused_into_our_filters_inside_musicgen():
    model = conditional_musicgen()
    text = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(2))
    seen = []

    class Recording(SamplerProcessor):
        def __call__(self, input_ids, scores):
            out = super().__call__(input_ids, scores)
            seen.append((scores.clone(), out[: input_ids.shape[0]].argmax(dim=-1)))
            return out

    sampler = FilterSampler(top_k=7, top_p=0.9, generator=torch.Generator().manual_seed(5))
    decoded = []
    decode = model.audio_encoder.decode
    model.audio_encoder.decode = lambda codes, **kw: decoded.append(codes) or decode(codes, **kw)
    model.generate(input_ids=text, attention_mask=torch.ones_like(text), max_new_tokens=8, do_sample=False,
                   logits_processor=[Recording(sampler, guidance_scale=3.0)])  # fmt: skip
    g = torch.Generator().manual_seed(5)
    for scores, drawn in seen:  # the fused kernel's draws, replayed with the reference backend
        cond, uncond = scores.split(scores.shape[0] // 2)
        uniforms = torch.rand(cond.shape[0], generator=g)
        want = guided_sample(cond, uncond, 3.0, top_k=7, top_p=0.9, uniforms=uniforms, backend="reference")
        assert torch.equal(drawn, want)
    draws = torch.stack([d for _, d in seen], dim=1).reshape(2, K, -1)
    codes = decoded[0][0]
    for k in range(K):
        assert torch.equal(codes[:, k], draws[:, k, k : k + codes.shape[-1]])
