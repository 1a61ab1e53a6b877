"""Our samplers inside CSM's generate (tiny random CsmForConditionalGeneration, nothing
downloaded): the backbone draws codebook 0 through ``logits_processor=``, the depth decoder the
other codebooks through ``added_logits_processors`` (its generate takes no processors). Every
code CSM returns is one of our draws, and RAS on the backbone sees codebook 0's past frames."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import CsmConfig, CsmForConditionalGeneration  # noqa: E402
from transformers.models.csm.configuration_csm import CsmDepthDecoderConfig  # noqa: E402

from speechdecode.decoding import FilterSampler, ras  # noqa: E402
from speechdecode.models.hf import RepetitionAwareProcessor, SamplerProcessor, added_logits_processors  # noqa: E402

V, K = 24, 4


def csm() -> CsmForConditionalGeneration:
    torch.manual_seed(0)
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip
    depth = CsmDepthDecoderConfig(num_codebooks=K, backbone_hidden_size=32, vocab_size=V, **layers)
    config = CsmConfig(
        num_codebooks=K, vocab_size=V, text_vocab_size=50, depth_decoder_config=depth.to_dict(),
        codebook_pad_token_id=V, codebook_eos_token_id=0, audio_token_id=49, audio_eos_token_id=48,
        pad_token_id=47, bos_token_id=46, **layers,
    )  # fmt: skip
    return CsmForConditionalGeneration(config).eval()


def recording(cls, *args, **kwargs):
    class Recording(cls):
        def __call__(self, input_ids, scores):
            out = super().__call__(input_ids, scores)
            self.calls.append((input_ids.clone(), scores.clone(), out.argmax(dim=-1)))
            return out

    processor = Recording(*args, **kwargs)
    processor.calls = []
    return processor


def test_backbone_and_depth_decoder_draw_with_our_samplers():
    model = csm()
    text = torch.randint(1, 40, (2, 6), generator=torch.Generator().manual_seed(1))
    options = {"window": 3, "threshold": 0.3, "preset": "paper", "top_p": 0.9}
    backbone = recording(RepetitionAwareProcessor, **options, generator=torch.Generator().manual_seed(2))
    depth = recording(SamplerProcessor, FilterSampler(top_k=5, generator=torch.Generator().manual_seed(3)))
    with added_logits_processors(model.depth_decoder, [depth]):
        codes = model.generate(input_ids=text, attention_mask=torch.ones_like(text), max_new_tokens=5,
                               do_sample=False, depth_decoder_do_sample=False, logits_processor=[backbone])  # fmt: skip
    frames = codes.shape[1]
    assert codes.shape == (2, frames, K) and frames >= 2
    first = torch.stack([d for _, _, d in backbone.calls], dim=1)  # [B, frames]
    assert torch.equal(codes[:, :, 0], first[:, :frames])
    rest = torch.stack([d for _, _, d in depth.calls], dim=1).view(2, -1, K - 1)  # per frame: codebooks 1..K-1
    assert torch.equal(codes[:, :, 1:], rest[:, :frames])
    g = torch.Generator().manual_seed(2)
    for n, (_, scores, drawn) in enumerate(backbone.calls):  # RAS's history: codebook 0 of the earlier frames
        history = first[:, :n][:, -3:]
        uniforms = torch.rand((2, 2), generator=g)
        assert torch.equal(drawn, ras(scores, history, uniforms=uniforms, backend="reference", **options))
