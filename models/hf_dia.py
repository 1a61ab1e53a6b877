"""Our generation loop around a Hugging Face Dia model: the model's forward, Dia's end-of-speech
rules and guidance as a few tensor ops, any sampler, no ``generate``.

``generate`` runs Dia's rules as logits processors over ``[2 * B * C, V]`` scores each step and
keeps every channel as its own row of a 2-D sequence. This loop keeps the codes as [B, C, steps]
and per step, on the C channels' logits [B * C, V]:

1. guidance, Dia's form ``c + (c - u) * s``; with ``guidance_top_k`` (``generate`` passes its
   ``top_k``) the conditional logits restricted to the top-k tokens of the guided ones, as
   Dia's ``DiaClassifierFreeGuidanceLogitsProcessor`` returns;
2. the end-of-speech filter: only channel 0 may end (no id at or above EOS elsewhere, none above
   it in channel 0), and channel 0 ends exactly when EOS is its best logit;
3. the end pattern: once channel 0's best logit is EOS, or the sequence reaches its last frame,
   channel c is made to emit EOS ``delays[c]`` steps later;
4. one draw for all B * C rows with the sampler; a channel that has emitted EOS emits the pad
   id from then on, and the loop stops when every channel has.

On CPU with the extension, steps 1 to 3 are one C++ call per step (``dia_scores``,
csrc/decoding/dia_scores.cc: one pass per row, no [B * C, V] temporaries); elsewhere, or with
``SPEECHDECODE_BACKEND=reference``, about 20 torch ops. The two give the same scores (tested
against transformers' processors on random logits) except where guided logits tie at the k-th
place, where ``torch.topk``'s choice among them is unspecified and the C++ pass keeps the
lowest ids.

With a greedy sampler the codes are ``generate(do_sample=False)``'s, token for token (tested);
the sequence starts with the BOS column, as ``generate``'s does.
"""

from __future__ import annotations

import torch

from speechdecode import _args, _backend, _tensors
from speechdecode.decoding.samplers import FilterSampler, check_sampler, draw
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["dia_generate"]


def _guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float, top_k: int | None) -> torch.Tensor:
    """Dia's guidance: ``c + (c - u) * s``, or with ``top_k`` c on the guided logits' top k (in
    a new tensor, written in place: one [N, V] allocation)."""
    guided = torch.sub(cond, uncond).mul_(scale).add_(cond)  # (c - u) * s + c: the same floats
    if top_k is None:
        return guided
    top = guided.topk(top_k, dim=1).indices
    return guided.fill_(float("-inf")).scatter_(1, top, cond.gather(1, top))


def _end_filter(scores: torch.Tensor, blocked: torch.Tensor, eos: int, is_eos: torch.Tensor) -> torch.Tensor | None:
    """Dia's end rules on the [B * C, V] scores, in place: ``blocked`` [C, V] (True where a channel
    may never emit the token: only channel 0 may end, and no channel emits PAD or BOS) becomes
    -inf; then a row whose best logit is EOS keeps only EOS, and the others lose it. Returns the
    rows whose best logit was EOS (``is_eos``: [V], True at ``eos``), or None when there are none
    (most steps: EOS is then cleared in every row, one fill)."""
    channels, vocab = blocked.shape
    scores.view(-1, channels, vocab).masked_fill_(blocked, float("-inf"))
    ends = scores.argmax(dim=1) == eos
    if not bool(ends.any()):
        scores[:, eos] = float("-inf")
        return None
    scores.masked_fill_(ends[:, None] != is_eos, float("-inf"))
    return ends


@torch.no_grad()
def dia_generate(
    model,
    input_ids,
    *,
    attention_mask=None,
    max_new_tokens: int,
    guidance_scale: float | None = None,
    guidance_top_k: int | None = None,
    sampler=None,
) -> torch.Tensor:
    """Generate up to ``max_new_tokens`` columns of C channels with Dia's forward and our sampling.

    Args:
        model: a ``DiaForConditionalGeneration``.
        input_ids, attention_mask: the text prompt [B, L] (byte ids, as Dia's processor makes).
        max_new_tokens: new columns at most, as ``generate``'s (the end is forced ``max(delays)``
            columns before the last, so every channel can end); more than ``max(delays)``.
        guidance_scale: Dia's classifier-free guidance (> 1), the unconditional pass run on
            zeroed text ids as Dia's ``generate`` does; None or 1 for none.
        guidance_top_k: keep the conditional logits on the guided top k (Dia's processor with
            ``generate``'s ``top_k``); None for the plain guided logits.
        sampler: a :class:`~speechdecode.decoding.samplers.Sampler` over the [B * C, V] rows
            (row ``b * C + c``), history the tokens of that channel so far (default: Dia's
            ``generate`` defaults, ``FilterSampler()``: plain sampling).

    Returns:
        int64 codes [B, columns, C], the BOS column first, as ``generate`` returns them (the
        delay pattern still in; Dia's processor reverts it).

    Raises:
        InvalidArgumentError: another model class, bad sizes, scale or top k.
        TensorError: ``input_ids`` not integer [B, L]; a sampler output that is not [N] tokens in [0, V).
    """
    from transformers import DiaForConditionalGeneration

    if not isinstance(model, DiaForConditionalGeneration):
        raise InvalidArgumentError("model", "a DiaForConditionalGeneration", type(model).__name__)
    config = model.config.decoder_config
    channels, vocab = int(config.num_channels), int(config.vocab_size)
    eos, pad, bos = int(config.eos_token_id), int(config.pad_token_id), int(config.bos_token_id)
    delays = torch.tensor([int(d) for d in model.config.delay_pattern], dtype=torch.int64)
    columns = 1 + _args.integer(max_new_tokens, "max_new_tokens", int(delays.max()) + 1)
    last = columns - 1 - int(delays.max())  # the length at which the end is forced
    guided = guidance_scale is not None and _args.real(guidance_scale, "guidance_scale") != 1
    if guided and guidance_scale < 1:
        raise InvalidArgumentError("guidance_scale", "None, 1 or a number > 1", guidance_scale)
    top_k = _args.optional_integer(guidance_top_k, "guidance_top_k", 1)
    if top_k is not None:
        top_k = min(top_k, vocab)
    ids = _tensors.as_tensor(input_ids, "input_ids")
    if ids.ndim != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TensorError("input_ids", "integer [B, L]", _tensors._describe(input_ids))
    device = model.device
    ids = ids.to(device)
    mask = torch.ones_like(ids) if attention_mask is None else _tensors.as_tensor(attention_mask, "attention_mask")
    if guided:  # the unconditional pass reads zeroed text ids
        ids, mask = torch.cat([ids, torch.zeros_like(ids)]), mask.repeat(2, 1)
    mask = mask.to(device)
    encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
    batch = ids.shape[0] // (2 if guided else 1)
    rows = batch * channels
    sampler = check_sampler(FilterSampler() if sampler is None else sampler)
    sampler.reset(None)

    codes = torch.full((batch, channels, columns), pad, dtype=torch.int64, device=device)
    codes[:, :, 0] = bos
    countdown = delays.to(device).repeat(batch, 1)  # steps until a channel must end, once ending
    ending = torch.zeros(batch, dtype=torch.bool, device=device)
    running = torch.ones(rows, dtype=torch.bool, device=device)  # channels that have not emitted EOS
    # CPU with the extension: csrc/decoding/dia_scores.cc runs steps 1-3 in one call per step
    cpu = device.type == "cpu"
    native = _backend.native() if cpu and _backend.select("cpu", implemented=_backend.NO_KERNEL) == "native" else None
    if native is not None:
        states = (ending.numpy(), countdown.numpy())  # views the C++ pass updates
    else:  # the torch ops' constants
        ids_v = torch.arange(vocab, device=device)
        is_eos = ids_v == eos
        blocked = torch.stack([ids_v > eos] + [ids_v >= eos] * (channels - 1))  # see _end_filter
        only_eos = torch.full((vocab,), float("-inf"), device=device).masked_fill(is_eos, 0.0)
    scale = float(guidance_scale) if guided else 1.0
    cache = None
    length = 1
    started = False  # whether any row is ending (until then no step forces EOS)
    all_running = True
    # the decoder's input: the last column, [B, 1, C] (both passes' copies when guided)
    step = torch.full((2 * batch if guided else batch, 1, channels), bos, dtype=torch.int64, device=device)
    while length < columns:
        out = model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=step, cache=cache, use_cache=True)
        cache = out.cache
        logits = out.logits.reshape(-1, vocab).float()  # [B(*2) * C, V]: the decoder saw one column
        if native is not None:  # steps 1-3 in one call, ending and countdown updated in place
            scores = torch.empty(rows, vocab)
            native.dia_scores(logits.contiguous().numpy(), scores.numpy(), *states, guided, scale, top_k or 0, eos,
                              length == last)  # fmt: skip
        else:
            scores = _guide(*logits.split(rows), scale, top_k) if guided else logits
            ends = _end_filter(scores, blocked, eos, is_eos)
            if ends is not None:
                ending |= ends.view(batch, channels)[:, 0]
                started = True
            if length == last:
                ending.fill_(True)
                started = True
            if started:
                scores = torch.where((ending[:, None] & (countdown == 0)).reshape(rows, 1), only_eos, scores)
                countdown -= ending[:, None].long()
        tokens = draw(sampler, scores, codes.view(rows, columns)[:, 1:length])
        if not all_running:
            tokens = torch.where(running, tokens, pad)
        codes.view(rows, columns)[:, length] = tokens
        step.view(-1, rows).copy_(tokens)  # to every pass's copy
        running &= tokens != eos
        length += 1
        left = int(running.sum())
        if left == 0:
            break
        all_running = left == rows
    return codes[:, :, :length].transpose(1, 2)
