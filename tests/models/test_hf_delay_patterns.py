"""kernels.delay_pattern against the delay patterns of the models people run: transformers'
MusicgenForCausalLM.build_delay_pattern_mask (mono and stereo) and the pad-filter revert of its
generate, and Dia's DiaProcessor.apply_audio_delay / build_indices, bit for bit on random codes."""

import pytest
import torch

from speechdecode.kernels import delay_pattern

transformers = pytest.importorskip("transformers")
from transformers import MusicgenDecoderConfig, MusicgenForCausalLM  # noqa: E402
from transformers.models.dia.processing_dia import DiaProcessor  # noqa: E402

PAD = 64  # MusicGen's pad / decoder start token: one past the codebook
BACKENDS = ["reference", "native", "triton"]


def musicgen(num_codebooks: int, channels: int) -> MusicgenForCausalLM:
    config = MusicgenDecoderConfig(
        vocab_size=PAD,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=16,
        num_codebooks=num_codebooks,
        audio_channels=channels,
        pad_token_id=PAD,
        bos_token_id=PAD,
    )
    return MusicgenForCausalLM(config).eval()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("num_codebooks", "channels"), [(4, 1), (2, 1), (8, 2), (4, 2)])
@pytest.mark.parametrize("steps", [1, 5, 23])
def test_musicgen_build_delay_pattern_mask(backend, num_codebooks, channels, steps):
    model = musicgen(num_codebooks, channels)
    g = torch.Generator().manual_seed(num_codebooks * 100 + channels * 10 + steps)
    batch = 3
    codes = torch.randint(0, PAD, (batch, num_codebooks, steps), generator=g)
    delays = [k // channels for k in range(num_codebooks)]
    ours, valid = delay_pattern.build(codes, delays, special=PAD, backend=backend)
    # MusicGen's prompt: the decoder start token, then the codes; [B * K, T + 1]
    prompt = torch.cat([torch.full((batch, num_codebooks, 1), PAD), codes], dim=-1).reshape(batch * num_codebooks, -1)
    theirs, mask = model.build_delay_pattern_mask(prompt, PAD, max_length=ours.shape[-1])
    if ours.shape[-1] < 2 * (num_codebooks // channels) - 1:
        # MusicGen applies no pattern at all below this length (it returns the prompt as given);
        # ours lays out any length the same way.
        assert torch.equal(theirs, prompt)
        return
    # the pattern mask holds the whole layout; the ids it returns stop where generation would start
    # (the prompt's length, here: every code is given)
    assert torch.equal(ours, mask.reshape(batch, num_codebooks, -1))
    assert torch.equal(ours[..., : steps + 1], theirs.reshape(batch, num_codebooks, -1))
    assert torch.equal(valid, mask.reshape(batch, num_codebooks, -1)[0] != PAD)
    # its generate reverts by dropping every pad token; ours reads the codes back by position
    kept = mask[mask != PAD].reshape(batch, num_codebooks, -1)
    assert torch.equal(delay_pattern.revert(ours, delays, backend=backend), kept)
    assert torch.equal(kept, codes)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("delays", [[0, 8, 9, 10, 11, 12, 13, 14, 15], [0, 1, 2], [0, 0, 3, 3], [2, 5]])
@pytest.mark.parametrize("steps", [1, 4, 17])
def test_dia_apply_audio_delay_and_its_revert(backend, delays, steps):
    bos, pad = 1026, 1025
    g = torch.Generator().manual_seed(len(delays) * 100 + steps)
    batch, channels = 2, len(delays)
    codes = torch.randint(0, 1024, (batch, steps, channels), generator=g)  # Dia's [B, T, K]
    length = steps + max(delays)
    prefill = torch.full((batch, length, channels), pad)
    prefill[:, :steps] = codes
    indices = DiaProcessor.build_indices(batch, length, channels, delays, revert=False)
    theirs = DiaProcessor.apply_audio_delay(prefill, pad, bos, indices)
    ours, valid = delay_pattern.build(
        codes.transpose(1, 2), delays, special=pad, bos=bos, start_step=False, backend=backend
    )
    assert torch.equal(ours.transpose(1, 2), theirs)
    assert torch.equal(valid, (theirs[0] != pad).T & (theirs[0] != bos).T)
    back = DiaProcessor.apply_audio_delay(
        theirs, -1, -1, DiaProcessor.build_indices(batch, length, channels, delays, revert=True)
    )
    reverted = delay_pattern.revert(ours, delays, start_step=False, backend=backend)
    assert torch.equal(reverted.transpose(1, 2), back[:, :steps]) and torch.equal(reverted.transpose(1, 2), codes)


def test_bos_and_start_step_are_checked():
    codes = torch.tensor([[[1, 2], [3, 4]]])
    with pytest.raises(ValueError, match="bos=3"):
        delay_pattern.build(codes, special=9, bos=3)
    with pytest.raises(ValueError, match="start_step"):
        delay_pattern.build(codes, special=9, start_step=0)
    with pytest.raises(ValueError, match="at least max\\(delays\\) = 1 steps"):
        delay_pattern.revert(torch.zeros((1, 2, 0), dtype=torch.int64), start_step=False)


@pytest.mark.parametrize(("num_codebooks", "channels"), [(4, 1), (8, 2)])
@pytest.mark.parametrize("prompt_steps", [0, 1, 3, 9])
def test_musicgen_prompts_leave_the_rest_to_generate(num_codebooks, channels, prompt_steps):
    # Generation starts from a prompt: MusicGen marks the steps left to generate with -1; every
    # other position holds what our full layout holds, and the -1 are exactly its later codes.
    model = musicgen(num_codebooks, channels)
    g = torch.Generator().manual_seed(prompt_steps)
    batch, steps = 2, 12
    codes = torch.randint(0, PAD, (batch, num_codebooks, steps), generator=g)
    delays = [k // channels for k in range(num_codebooks)]
    ours, valid = delay_pattern.build(codes, delays, special=PAD)
    prompt = torch.cat([torch.full((batch, num_codebooks, 1), PAD), codes[..., :prompt_steps]], dim=-1)
    _, mask = model.build_delay_pattern_mask(prompt.reshape(batch * num_codebooks, -1), PAD, max_length=ours.shape[-1])
    mask = mask.reshape(batch, num_codebooks, -1)
    position = torch.arange(ours.shape[-1])[None, :] - 1 - torch.tensor(delays)[:, None]  # frame index
    later = valid & (position >= prompt_steps)
    assert torch.equal(mask == -1, later.expand_as(mask))
    assert torch.equal(mask[mask != -1], ours[mask != -1])
