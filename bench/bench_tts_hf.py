"""MusicGen's own ``generate`` (random weights, nothing downloaded) with its processors, against
the same model and the same call with our samplers drawing inside it (``SamplerProcessor``), and
our own loop around the model's forward (``models.hf_musicgen.musicgen_generate``: our delay
pattern, one fused draw per step, no ``generate``; ``models.hf_dia.dia_generate`` for Dia: its
guidance and end rules in one C++ call, one draw per step).

Cases, B rows of 4 codebooks, ``STEPS`` new steps each:

* ``small``: a small MusicGen decoder (hidden 256, 4 layers, V = 2048), unconditional, top-k 250
  sampling (MusicGen's default); B = 1, 8, 32, 64.
* ``small+cfg``: the same decoder under a tiny text encoder, classifier-free guidance 3.0 then
  top-k 250 (MusicGen's text-to-music setting); ours fuses the guidance into the draw
  (``FilterSampler.guided``); B = 1, 8, 32.
* ``dia-small``: a small Dia (hidden 256, 4 decoder layers, 9 channels with Dia's delays
  0, 8..15, V = 1028), its guidance 3.0 and top-k 45 (Dia's defaults); ours joins through
  ``added_logits_processors`` (Dia's generate drops ``logits_processor=``) after Dia's guidance;
  B = 1, 8, 32, 64.
* ``dia-1.6b``: Dia at its published size (``DiaConfig()``'s defaults, those of
  nari-labs/Dia-1.6B: 1.61B parameters, 6.4 GB in float32); B = 1, 8 with ``BIG_STEPS`` steps
  (one step at B = 8 with guidance takes seconds on one CPU core).
* ``musicgen-small``: the decoder at the published size of facebook/musicgen-small (hidden 1024,
  24 layers, 16 heads, FFN 4096, V = 2048), unconditional; B = 1, 8, 32, 64 with ``BIG_STEPS``
  steps (a 64-step call at B = 64 takes minutes on one CPU core).

HF: ``generate(do_sample=True, top_k=250)`` -- its TopK warper, softmax and multinomial. Ours:
``generate(do_sample=False, logits_processor=[SamplerProcessor(FilterSampler(top_k=250))])`` --
our kernel draws, generate's greedy step keeps the drawn token. Both run the same model forward;
the rows also report the share of a call spent outside the model's forward passes (measured once
per row, outside the timed runs, in CPU time: the forward of the model object that ``generate``
and our loops call every step, LM heads included, and the text encoder's, run once per call).
"""

from __future__ import annotations

import functools
import time

import torch

from speechdecode.bench.harness import Suite
from speechdecode.decoding import FilterSampler

CARD, K, TOP_K, STEPS, BIG_STEPS = 2048, 4, 250, 64, 16


def _decoder_config(size: str):
    from transformers import MusicgenDecoderConfig

    dims = {
        "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "ffn_dim": 1024},
        "musicgen-small": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "ffn_dim": 4096},
    }[size]
    return MusicgenDecoderConfig(vocab_size=CARD, num_codebooks=K, max_position_embeddings=512, **dims)


def _generation_config(**extra):
    from transformers import GenerationConfig

    return GenerationConfig(
        pad_token_id=CARD,
        decoder_start_token_id=CARD,
        bos_token_id=CARD,
        num_return_sequences=1,
        max_length=600,
        **extra,
    )


def _models(quick: bool):
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenForCausalLM,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    torch.manual_seed(0)
    small = MusicgenForCausalLM(_decoder_config("small")).eval()
    small.generation_config = _generation_config()
    text = T5Config(vocab_size=100, d_model=64, d_kv=16, d_ff=128, num_layers=1, num_heads=4)
    audio = EncodecConfig(codebook_size=CARD, hidden_size=8, num_filters=4, upsampling_ratios=[2, 2],
                          target_bandwidths=[4.4], sampling_rate=400, codebook_dim=8, num_lstm_layers=1)  # fmt: skip
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(),
                            decoder=_decoder_config("small").to_dict())  # fmt: skip
    guided = MusicgenForConditionalGeneration(config).eval()
    guided.generation_config = _generation_config(guidance_scale=3.0)
    models = {
        "small": (small, [1, 8] if quick else [1, 8, 32, 64]),
        "small+cfg": (guided, [1, 8] if quick else [1, 8, 32]),
        "dia-small": (_dia("small"), [1, 8] if quick else [1, 8, 32, 64]),
    }
    if not quick:
        big = MusicgenForCausalLM(_decoder_config("musicgen-small")).eval()
        big.generation_config = _generation_config()
        models["musicgen-small"] = (big, [1, 8, 32, 64])
        models["dia-1.6b"] = (_dia("published"), [1, 8])
    return models


def _dia(size: str):
    from transformers import DiaConfig, DiaForConditionalGeneration
    from transformers.models.dia.configuration_dia import DiaDecoderConfig, DiaEncoderConfig

    torch.manual_seed(0)
    if size == "published":
        return DiaForConditionalGeneration(DiaConfig()).eval()
    head = {"num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 64}
    encoder = DiaEncoderConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=2, vocab_size=256, **head)
    decoder = DiaDecoderConfig(
        hidden_size=256, intermediate_size=1024, num_hidden_layers=4, cross_num_attention_heads=4, cross_head_dim=64,
        cross_num_key_value_heads=4, cross_hidden_size=256, num_channels=9, vocab_size=1028, eos_token_id=1024,
        pad_token_id=1025, bos_token_id=1026, **head,
    )  # fmt: skip
    config = DiaConfig(encoder_config=encoder, decoder_config=decoder, delay_pattern=[0, 8, 9, 10, 11, 12, 13, 14, 15])
    return DiaForConditionalGeneration(config).eval()


def _call_dia(model, batch: int, steps: int, ours: bool, seed: int):
    from speechdecode.models.hf import SamplerProcessor, added_logits_processors

    text = torch.randint(0, 256, (batch, 16), generator=torch.Generator().manual_seed(seed))
    start = torch.full((batch, 1, 9), 1026)
    kwargs = {"input_ids": text, "attention_mask": torch.ones_like(text), "decoder_input_ids": start,
              "max_new_tokens": steps, "guidance_scale": 3.0, "top_k": 45}  # fmt: skip
    if not ours:
        return lambda: model.generate(do_sample=True, **kwargs)
    sampler = FilterSampler(top_k=45, generator=torch.Generator().manual_seed(seed))

    def run():
        with added_logits_processors(model, [SamplerProcessor(sampler)]):
            return model.generate(do_sample=False, **kwargs)

    return run


def _call(model, batch: int, steps: int, ours: bool, seed: int):
    if type(model).__name__ == "DiaForConditionalGeneration":
        return _call_dia(model, batch, steps, ours, seed)
    from speechdecode.models.hf import SamplerProcessor

    torch.manual_seed(seed)
    kwargs = {"max_new_tokens": steps}
    processors = []
    if ours:
        sampler = FilterSampler(top_k=TOP_K, generator=torch.Generator().manual_seed(seed))
        processors.append(SamplerProcessor(sampler, guidance_scale=model.generation_config.guidance_scale))
        kwargs["do_sample"] = False
    else:
        kwargs.update(do_sample=True, top_k=TOP_K)
    # a new list per call: MusicGen appends its guidance processor to the list it is given
    if hasattr(model, "text_encoder"):
        text = torch.randint(0, 100, (batch, 8), generator=torch.Generator().manual_seed(seed))
        mask = torch.ones_like(text)
        return lambda: model.generate(input_ids=text, attention_mask=mask, logits_processor=[*processors], **kwargs)
    start = torch.full((batch * K, 1), CARD)
    return lambda: model.generate(input_ids=start, logits_processor=[*processors], **kwargs)


def _call_dia_loop(model, batch: int, steps: int, seed: int):
    """Our loop around Dia (``dia_generate``): the same text, guidance 3.0 and top-k 45."""
    from speechdecode.models.hf_dia import dia_generate

    text = torch.randint(0, 256, (batch, 16), generator=torch.Generator().manual_seed(seed))

    def run():
        sampler = FilterSampler(top_k=45, generator=torch.Generator().manual_seed(seed))
        return dia_generate(model, text, max_new_tokens=steps, guidance_scale=3.0, guidance_top_k=45, sampler=sampler)

    return run


def _call_loop(model, batch: int, steps: int, seed: int):
    """Our loop around the model (``musicgen_generate``): ``steps`` forwards, as ``generate``'s."""
    if type(model).__name__ == "DiaForConditionalGeneration":
        return _call_dia_loop(model, batch, steps, seed)
    from speechdecode.models.hf_musicgen import musicgen_generate

    frames = steps - K + 1
    scale = model.generation_config.guidance_scale

    def run():
        sampler = FilterSampler(top_k=TOP_K, generator=torch.Generator().manual_seed(seed))
        if hasattr(model, "text_encoder"):
            text = torch.randint(0, 100, (batch, 8), generator=torch.Generator().manual_seed(seed))
            return musicgen_generate(model, text, max_new_frames=frames, guidance_scale=scale, sampler=sampler)
        return musicgen_generate(model, batch_size=batch, max_new_frames=frames, sampler=sampler)

    return run


def _outside_forward_share(model, fn) -> float:
    """Share of one call of ``fn`` spent outside the model's forward passes, in CPU time (one thread:
    steadier than wall time when other processes share the cores). Forward passes: ``model``'s
    forward (the call every step makes, LM heads included) and its text encoder's (run once per
    call, through ``get_encoder()``, by ``generate`` and our loops alike); a pass inside another
    counts once."""
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else None
    modules = [model] + ([encoder] if isinstance(encoder, torch.nn.Module) and encoder is not model else [])
    spent, depth = [0.0], [0]

    def timing(inner):
        @functools.wraps(inner)  # generate reads the forward's signature to check its arguments
        def timed(*args, **kwargs):
            depth[0] += 1
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[0] += time.process_time() - start

        return timed

    for module in modules:
        module.forward = timing(module.forward)
    try:
        start = time.process_time()
        with torch.no_grad():
            fn()
        total = time.process_time() - start
    finally:
        for module in modules:
            del module.forward  # back to the class's method
    return max(0.0, 1.0 - spent[0] / total)


def run(suite: Suite, quick: bool) -> None:
    default_steps = 8 if quick else STEPS
    torch.set_num_threads(1)  # one core: the comparison is per-step overhead, not threading
    for name, (model, batches) in _models(quick).items():
        big = name in ("musicgen-small", "dia-1.6b")
        steps = BIG_STEPS if big else default_steps
        if name.startswith("dia"):  # Dia's end pattern needs more steps than its largest delay (15)
            steps = max(steps, 16)
        for batch in batches:
            case = f"{name} B={batch}"
            kinds = ["hf", "processor", "loop"]
            for kind in kinds:
                ours = kind != "hf"
                fn = (
                    _call_loop(model, batch, steps, batch)
                    if kind == "loop"
                    else _call(model, batch, steps, ours, batch)
                )
                share = _outside_forward_share(model, fn)
                impl = {
                    "hf": "HF generate (its processors)",
                    "processor": "ours: SamplerProcessor(FilterSampler)",
                    "loop": f"ours: {'dia' if name.startswith('dia') else 'musicgen'}_generate loop",
                }[kind]
                if ours and name.endswith("+cfg"):
                    impl += " + fused CFG"
                settings = {
                    "warmup": 0,
                    "repeats": 1 if big else 3,
                    "min_seconds": 0,
                }
                params = {"batch": batch, "steps": steps, "top_k": TOP_K, "outside_forward_share": round(share, 4)}
                suite.add(
                    case,
                    impl,
                    fn,
                    anchor=not ours,
                    items=batch * (9 if name.startswith("dia") else K) * steps,
                    item_unit="token",
                    params=params,
                    settings=settings if not quick else None,
                )
