"""Our generation loop around a Hugging Face MusicGen model: the model's forward, our delay
pattern and our fused sampling, no ``generate``.

``generate`` builds MusicGen's delay pattern as a mask it applies to the whole sequence every
step, runs its logits processors (classifier-free guidance, then the warpers) as separate
passes over ``[2 * B * K, V]`` scores, and strips the pattern at the end. This loop keeps the
sequence as codes [B, K, columns]: at column c codebook k holds frame ``c - 1 - delays[k]``
(MusicGen's pad token before and after it, as :func:`speechdecode.kernels.delay_pattern.build`
lays it out with ``bos=pad``), draws all rows of a step in one call -- guidance fused into the
draw where the sampler has ``guided()`` (:func:`speechdecode.kernels.sampling.guided_sample`) --
and returns the frames as :func:`speechdecode.kernels.delay_pattern.revert` would. With a greedy
sampler its codes are ``generate(do_sample=False)``'s, token for token (tested), and so are its
quirks: ``generate`` builds the unconditional decoder's attention mask as ``input_ids != pad``,
and MusicGen's start token is the pad id, so the start column is never attended to (the first
step's logits differ from a plain forward's); the text-conditioned model gets no decoder mask.
"""

from __future__ import annotations

import torch

from speechdecode import _args, _tensors
from speechdecode.decoding.samplers import FilterSampler, check_sampler, draw, draw_guided
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["musicgen_generate"]


def _parts(model):
    """(decoder config, whether a text encoder conditions it) of a MusicGen model."""
    from transformers import MusicgenForCausalLM, MusicgenForConditionalGeneration

    if isinstance(model, MusicgenForConditionalGeneration):
        return model.decoder.config, True
    if isinstance(model, MusicgenForCausalLM):
        return model.config, False
    raise InvalidArgumentError(
        "model", "a MusicgenForCausalLM or MusicgenForConditionalGeneration (K codebooks)", type(model).__name__
    )


@torch.no_grad()
def musicgen_generate(
    model,
    input_ids=None,
    *,
    attention_mask=None,
    batch_size: int | None = None,
    max_new_frames: int,
    guidance_scale: float | None = None,
    sampler=None,
    delays=None,
) -> torch.Tensor:
    """Generate ``max_new_frames`` frames of K codebooks with MusicGen's forward and our sampling.

    Args:
        model: ``MusicgenForCausalLM`` (unconditional) or ``MusicgenForConditionalGeneration``
            (text-conditioned through its text encoder); mono (``audio_channels == 1``).
        input_ids, attention_mask: the text prompt [B, L] (conditional model only).
        batch_size: B for the unconditional model (default 1).
        max_new_frames: frames per row (the sequence has ``max_new_frames + K`` columns with
            its start column, as ``generate(max_length=max_new_frames + K)``).
        guidance_scale: classifier-free guidance ``u + (c - u) * s`` (conditional model, s > 1),
            the unconditional half run with zeroed text states as MusicGen does.
        sampler: a :class:`~speechdecode.decoding.samplers.Sampler` (default: MusicGen's
            top-k 250 sampling, ``FilterSampler(top_k=250)``); history per (row, codebook), -1
            before the codebook's first frame.
        delays: the delay per codebook; default and only accepted value: MusicGen's 0..K-1.

    Returns:
        int64 codes [B, K, max_new_frames] (what ``generate`` returns, pattern removed).

    Raises:
        InvalidArgumentError: another model class, stereo, delays that are not the model's,
            ``input_ids`` given to the unconditional model or missing for the conditional one,
            guidance on the unconditional model, bad sizes or scale.
        TensorError: a sampler output that is not [N] tokens in [0, V).
    """
    config, conditional = _parts(model)
    if getattr(config, "audio_channels", 1) != 1:
        raise InvalidArgumentError(
            "model", "a mono MusicGen (audio_channels 1)", f"audio_channels {config.audio_channels}"
        )
    k = int(config.num_codebooks)
    expected = list(range(k))
    if delays is not None and [int(d) for d in delays] != expected:
        raise InvalidArgumentError(
            "delays", f"the model's delays {expected} (MusicGen: codebook k waits k steps)", list(delays)
        )
    frames = _args.integer(max_new_frames, "max_new_frames", 1)
    limit = int(config.max_position_embeddings)
    if frames + k - 1 > limit:
        raise InvalidArgumentError("max_new_frames", f"at most {limit - k + 1} (the model's positions)", frames)
    pad = int(model.generation_config.pad_token_id)
    guided = guidance_scale is not None and _args.real(guidance_scale, "guidance_scale") > 1
    if conditional:
        if input_ids is None:
            raise InvalidArgumentError("input_ids", "the text prompt [B, L] of the conditional model", None)
        ids = _tensors.as_tensor(input_ids, "input_ids")
        if ids.ndim != 2 or ids.dtype.is_floating_point:
            raise TensorError("input_ids", "integer [B, L]", _tensors._describe(ids))
        batch = ids.shape[0]
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask
        states = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        if guided:  # the unconditional half: zeroed text states and mask, as MusicGen's generate
            states = torch.cat([states, torch.zeros_like(states)])
            mask = torch.cat([mask, torch.zeros_like(mask)])
        text = {"encoder_outputs": (states,), "attention_mask": mask}
    else:
        if input_ids is not None:
            raise InvalidArgumentError("input_ids", "None for MusicgenForCausalLM (unconditional)", "a tensor")
        if guided:
            raise InvalidArgumentError(
                "guidance_scale", "None for the unconditional MusicgenForCausalLM", guidance_scale
            )
        batch = 1 if batch_size is None else _args.integer(batch_size, "batch_size", 1)
    sampler = check_sampler(FilterSampler(top_k=250) if sampler is None else sampler)
    sampler.reset(None)
    device = model.device
    rows = batch * k
    columns = frames + k
    codes = torch.full((batch, k, columns), pad, dtype=torch.int64, device=device)
    history = torch.full((rows, columns - 1), -1, dtype=torch.int64, device=device)
    offsets = torch.arange(k, device=device)
    cache = None
    # generate's mask for the unconditional decoder: input_ids != pad, so the start column (pad)
    # is never attended to; the conditional model's generate passes no decoder mask.
    self_mask = torch.ones(rows, columns, dtype=torch.int64, device=device)
    self_mask[:, 0] = 0
    # the decoder's input: the last column, [B * K, 1] (both passes' copies when guided)
    step = torch.full((2 * rows if guided else rows, 1), pad, dtype=torch.int64, device=device)
    for c in range(1, columns):
        if conditional:
            out = model(decoder_input_ids=step, cache=cache, use_cache=True, **text)
        else:
            out = model(input_ids=step, attention_mask=self_mask[:, :c], cache=cache, use_cache=True)
        cache = out.cache
        logits = out.logits[:, -1]
        seen = history[:, : c - 1]
        if guided:
            cond, uncond = logits.split(rows)
            tokens = draw_guided(sampler, cond, uncond, float(guidance_scale), seen)
        else:
            tokens = draw(sampler, logits, seen)
        tokens = tokens.view(batch, k)
        if k <= c <= frames:  # every codebook is at a frame in [0, frames): no mask
            column, recorded = tokens, tokens
        else:
            frame = c - 1 - offsets  # the frame each codebook is at in this column
            live = (frame >= 0) & (frame < frames)
            column, recorded = torch.where(live, tokens, pad), torch.where(live, tokens, -1)
        codes[:, :, c] = column
        history[:, c - 1] = recorded.reshape(rows)
        step.view(-1, rows).copy_(column.reshape(rows))
    # codebook k's frames are columns k + 1 .. k + frames
    index = (offsets[:, None] + 1 + torch.arange(frames, device=device)).expand(batch, k, frames)
    return codes.gather(2, index)
