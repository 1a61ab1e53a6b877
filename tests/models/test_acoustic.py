"""The character CTC model: causal streaming, the safetensors loader's checks, CtcAsr.pretrained."""

import dataclasses
import json
import os

import pytest
import torch

from speechdecode.decoding import GreedyCtcDecoder
from speechdecode.errors import InputFileError, InvalidArgumentError
from speechdecode.models import CtcAsr
from speechdecode.models.acoustic import (
    TOKENS,
    WEIGHTS,
    AcousticConfig,
    CharCtcModel,
    load_acoustic_model,
    save_acoustic_model,
)

SMALL = AcousticConfig(channels=24, dilations=(1, 3, 2), subsampling=4)


def small_model(seed: int = 0, config: AcousticConfig = SMALL) -> CharCtcModel:
    torch.manual_seed(seed)
    model = CharCtcModel(config)
    with torch.no_grad():
        model.mean.uniform_(-1, 1)
        model.std.uniform_(0.5, 2)
    return model.eval()


@pytest.mark.parametrize("lookahead", [0, 4])
@pytest.mark.parametrize("subsampling", [3, 4])
@pytest.mark.parametrize("chunk", [1, 5, 17, 64])
def test_streaming_equals_offline_for_rows_of_different_lengths(chunk, subsampling, lookahead):
    config = dataclasses.replace(SMALL, subsampling=subsampling, lookahead=lookahead)
    model = small_model(chunk, config)
    x = torch.randn(3, 61, 80, generator=torch.Generator().manual_seed(chunk))
    lengths = torch.tensor([61, 37, 4])
    offline = CtcAsr(model, GreedyCtcDecoder(list(TOKENS)), subsampling=subsampling)
    reference = offline.transcribe(x, lengths)
    stream = offline.stream(batch_size=3)
    for start in range(0, 61, chunk):
        n = min(chunk, 61 - start)
        stream.accept(x[:, start : start + n], (lengths - start).clamp(0, n))
    assert [h[0].tokens for h in stream.finish()] == [h[0].tokens for h in reference]
    state, parts = model.initial_state(3), []
    for start in range(0, 61, chunk):
        n = min(chunk, 61 - start)
        out, state = model.forward_chunk(x[:, start : start + n], state, (lengths - start).clamp(0, n))
        parts.append(out)
    held_back = sum(part.shape[1] for part in parts)
    assert held_back == max(0, 61 // subsampling - config.delay)
    out, state = model.flush(state)
    parts.append(out)
    streamed, batched = torch.cat(parts, dim=1), model(x, lengths)[0]
    assert streamed.shape == batched.shape
    for row, length in enumerate(lengths.tolist()):
        # each row alone: the frames past a row's end in the batch do not reach its valid frames
        alone = model(x[row : row + 1, :length])[0][0]
        frames = length // subsampling
        torch.testing.assert_close(batched[row, :frames], alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(streamed[row, :frames], alone, rtol=1e-5, atol=1e-5)


def test_a_lookahead_outside_the_kernel_is_refused():
    with pytest.raises(ValueError, match=r"lookahead must be in \[0, 4\].*got 5"):
        dataclasses.replace(SMALL, lookahead=5)


@pytest.mark.parametrize(("lookahead", "delay"), [(0, 0), (1, 6), (3, 18)])
def test_output_frame_sees_exactly_its_receptive_field(lookahead, delay):
    config = dataclasses.replace(SMALL, lookahead=lookahead)
    model = small_model(config=config)
    x = torch.randn(1, 200, 80)
    base = model(x)[0]
    i, field = 30, config.receptive_field  # 3 + 4 * (1 + 3 + 2) = 27 stacked frames
    assert (field, config.delay) == (27, delay)  # delay: lookahead * (1 + 3 + 2)
    last = i + delay  # the last stacked frame output i sees
    later = x.clone()
    later[:, 4 * (last + 1) :] += 5.0  # after it: outputs up to i unchanged
    torch.testing.assert_close(model(later)[0][:, : i + 1], base[:, : i + 1], rtol=0, atol=0)
    edge = x.clone()
    edge[:, 4 * last] += 5.0  # it: output i changes
    assert not torch.allclose(model(edge)[0][:, i], base[:, i])
    earlier = x.clone()
    earlier[:, : 4 * (last - field + 1)] += 5.0  # before the receptive field: output i unchanged
    torch.testing.assert_close(model(earlier)[0][:, i], base[:, i], rtol=0, atol=0)
    edge = x.clone()
    edge[:, 4 * (last - field + 1)] += 5.0  # its first frame: output i changes
    assert not torch.allclose(model(edge)[0][:, i], base[:, i])


def test_log_probs_stay_float32_under_a_bfloat16_autocast():
    # the recipe trains under a bfloat16 autocast; the CTC loss needs float32 log-probs (bfloat16
    # keeps 8 bits of mantissa: a log-prob near -10 would be off by up to 0.03)
    model = small_model()
    x = torch.randn(2, 40, 80, generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs, _ = model(x)
    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 10), rtol=0, atol=1e-6)
    torch.testing.assert_close(log_probs, model(x)[0], rtol=0, atol=0.1)  # the same model, bfloat16 layers


def test_save_and_load_round_trip_in_float16(tmp_path):
    model = small_model()
    path = tmp_path / "m.safetensors"
    save_acoustic_model(model, path, {"steps": 3})
    loaded = load_acoustic_model(path)
    assert loaded.config == SMALL and not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor.half().float()), name
    x = torch.randn(2, 40, 80)
    torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0.05, atol=0.05)
    ahead = small_model(config=dataclasses.replace(SMALL, lookahead=2))
    save_acoustic_model(ahead, path)
    assert load_acoustic_model(path).config.lookahead == 2


def test_a_config_written_before_lookahead_existed_loads_as_causal(tmp_path):
    config = {k: v for k, v in SMALL.__dict__.items() if k != "lookahead"}
    model = load_acoustic_model(_rewrite(tmp_path / "old.safetensors", config={**config, "tokens": list(TOKENS)}))
    assert model.config.lookahead == 0 and model.config.delay == 0


def _rewrite(path, tensors=None, config=None):
    """Save tensors with a config (both defaults: the small model's) as a safetensors file."""
    from safetensors.torch import save_file

    tensors = tensors if tensors is not None else {k: v.contiguous() for k, v in small_model().state_dict().items()}
    config = config if config is not None else {**SMALL.__dict__, "tokens": list(TOKENS)}
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})
    return path


def test_loader_errors_name_the_file_and_the_mismatch(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("these are not weights\n")
    with pytest.raises(InputFileError, match="not a safetensors file") as info:
        load_acoustic_model(text)
    assert info.value.path == str(text)
    config = {**SMALL.__dict__, "tokens": list(TOKENS)}
    wider = _rewrite(tmp_path / "wider.safetensors", config={**config, "channels": 32})
    with pytest.raises(InputFileError, match=r"tensor 'front.weight' has shape \[24, 320, 3\], the config"):
        load_acoustic_model(wider)
    deeper = _rewrite(tmp_path / "deeper.safetensors", config={**config, "dilations": [1, 3, 2, 4]})
    with pytest.raises(InputFileError, match=r"tensor 'blocks.3.norm.weight' missing"):
        load_acoustic_model(deeper)
    more_tokens = _rewrite(tmp_path / "tokens.safetensors", config={**config, "tokens": [*TOKENS, "-"]})
    with pytest.raises(InputFileError, match="token table has 30 symbols but the model outputs 29"):
        load_acoustic_model(more_tokens)
    no_config = tmp_path / "bare.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(no_config))
    with pytest.raises(InputFileError, match="no valid acoustic model config"):
        load_acoustic_model(no_config)
    too_far = _rewrite(tmp_path / "ahead.safetensors", config={**config, "lookahead": 7})
    with pytest.raises(InputFileError, match=r"no valid acoustic model config.*lookahead must be in \[0, 4\]"):
        load_acoustic_model(too_far)
    extra = dict(small_model().state_dict(), stray=torch.zeros(2))
    with pytest.raises(InputFileError, match="tensors the config does not have: stray"):
        load_acoustic_model(_rewrite(tmp_path / "extra.safetensors", tensors=extra))


def test_pretrained_rejects_a_decoder_over_other_tokens(tmp_path):
    path = tmp_path / "m.safetensors"
    save_acoustic_model(small_model(), path)
    asr = CtcAsr.pretrained(weights=path)
    assert asr.frame_seconds == 0.04 and asr.decoder.tokens == list(TOKENS)
    swapped = [TOKENS[0], TOKENS[1], *TOKENS[3:], TOKENS[2]]
    with pytest.raises(InvalidArgumentError, match="a decoder over the model's 29 tokens"):
        CtcAsr.pretrained(GreedyCtcDecoder(swapped), weights=path)


def test_shipped_weights_fit_the_size_limit_and_load():
    assert os.path.getsize(WEIGHTS) <= 10 * 1024 * 1024
    model = load_acoustic_model()
    assert model.config.tokens == TOKENS
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000
