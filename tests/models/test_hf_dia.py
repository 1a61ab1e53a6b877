"""Our samplers inside Dia's generate (tiny random DiaForConditionalGeneration, nothing
downloaded). Dia's generate drops ``logits_processor=``; ``added_logits_processors`` puts ours
into the list it builds, after its guidance and before its EOS delay-pattern processor. Every
token Dia keeps is our draw, the draws are RAS's on the same inputs, and the only tokens that
differ are the ends Dia forces."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import DiaConfig, DiaForConditionalGeneration  # noqa: E402
from transformers.models.dia.configuration_dia import DiaDecoderConfig, DiaEncoderConfig  # noqa: E402

from speechdecode.decoding import ras  # noqa: E402
from speechdecode.models.hf import RepetitionAwareProcessor, added_logits_processors  # noqa: E402

V, EOS, PAD, BOS, C = 40, 37, 38, 39, 3


def dia() -> DiaForConditionalGeneration:
    torch.manual_seed(0)
    head = {"num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16}
    encoder = DiaEncoderConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, vocab_size=64, **head)
    decoder = DiaDecoderConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, cross_num_attention_heads=2, cross_head_dim=16,
        cross_num_key_value_heads=2, cross_hidden_size=32, num_channels=C, vocab_size=V, eos_token_id=EOS,
        pad_token_id=PAD, bos_token_id=BOS, **head,
    )  # fmt: skip
    return DiaForConditionalGeneration(
        DiaConfig(encoder_config=encoder, decoder_config=decoder, delay_pattern=[0, 2, 3])
    )


class Recording(RepetitionAwareProcessor):
    def __init__(self, **options):
        super().__init__(**options)
        self.calls = []

    def __call__(self, input_ids, scores):
        out = super().__call__(input_ids, scores)
        self.calls.append((input_ids.clone(), scores.clone(), out.argmax(dim=-1)))
        return out


def test_dia_ignores_logits_processor_and_the_context_adds_ours():
    model = dia().eval()
    text = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(1))
    start = torch.full((2, 1, C), BOS)
    kwargs = {"input_ids": text, "attention_mask": torch.ones_like(text), "decoder_input_ids": start,
              "max_new_tokens": 10, "do_sample": False, "guidance_scale": 3.0, "top_k": 20}  # fmt: skip
    ignored = Recording()
    model.generate(logits_processor=[ignored], **kwargs)
    assert ignored.calls == []  # transformers drops it: why added_logits_processors exists
    options = {"preset": "cosyvoice", "window": 4}
    processor = Recording(**options, generator=torch.Generator().manual_seed(2))
    with added_logits_processors(model, [processor]):
        out = model.generate(**kwargs)
    assert "_get_logits_processor" not in vars(model)  # the model is as it was afterwards
    g = torch.Generator().manual_seed(2)
    prompt = processor.calls[0][0].shape[1]
    for input_ids, scores, drawn in processor.calls:  # RAS on what it saw (after Dia's guidance)
        generated = input_ids[:, prompt:][:, -4:]
        history = torch.where(generated < V, generated, -1)
        uniforms = torch.rand((input_ids.shape[0], 2), generator=g)
        assert torch.equal(drawn, ras(scores, history, uniforms=uniforms, backend="reference", **options))
    draws = torch.stack([d for _, _, d in processor.calls], dim=1).view(2, C, -1)  # row b * C + c
    kept = out[:, 1:, :].transpose(1, 2)  # [B, C, steps] after the BOS step
    forced = (kept != draws[..., : kept.shape[-1]]).nonzero().tolist()
    assert kept.shape[-1] == draws.shape[-1] and len(forced) < kept.numel() // 2
    for b, c, t in forced:  # Dia's EOS delay processor ends every channel: EOS, then PAD
        assert int(kept[b, c, t]) in (EOS, PAD)
