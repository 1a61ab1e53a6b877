"""CodecStream on transformers codecs with random weights (tiny configs, nothing downloaded): the
streamed waveform equals the whole decode for a causal EnCodec in any chunking and for DAC once
the lookahead covers its right context, and generated frames go to audio as they come out."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import DacConfig, DacModel, EncodecConfig, EncodecModel  # noqa: E402

from speechdecode.errors import InvalidArgumentError, TensorError  # noqa: E402
from speechdecode.models import DelayPatternLM, TinyTransformerLM  # noqa: E402
from speechdecode.models.codec_stream import CodecStream  # noqa: E402

CARD = 32


@pytest.fixture(scope="module")
def encodec():
    torch.manual_seed(0)
    config = EncodecConfig(
        codebook_size=CARD, hidden_size=8, num_filters=4, upsampling_ratios=[2, 2], target_bandwidths=[4.0],
        sampling_rate=400, codebook_dim=8, num_lstm_layers=1,
    )  # fmt: skip
    assert config.use_causal_conv
    return EncodecModel(config).eval()


@pytest.fixture(scope="module")
def dac():
    torch.manual_seed(0)
    config = DacConfig(
        encoder_hidden_size=8, downsampling_ratios=[2, 2], decoder_hidden_size=16, n_codebooks=3,
        codebook_size=CARD, codebook_dim=4, hidden_size=16, sampling_rate=400,
    )  # fmt: skip
    return DacModel(config).eval()


def chunks(total: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    sizes = []
    while sum(sizes) < total:
        sizes.append(min(int(torch.randint(0, 5, (1,), generator=g)), total - sum(sizes)))  # 0 included
    return sizes


def stream(codec_stream: CodecStream, codes: torch.Tensor, seed: int) -> tuple[torch.Tensor, list[int]]:
    pieces, lengths, at = [], [], 0
    for n in chunks(codes.shape[-1], seed):
        piece = codec_stream.accept(codes[..., at : at + n])
        pieces.append(piece)
        lengths.append(piece.shape[-1])
        at += n
    pieces.append(codec_stream.finish())
    return torch.cat(pieces, dim=-1), lengths


@pytest.mark.parametrize("seed", range(4))
def test_a_causal_codec_streams_exactly(encodec, seed):
    codes = torch.randint(0, CARD, (2, 4, 23), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        whole = encodec.decode(codes[None], [None]).audio_values
    s = CodecStream(encodec)
    got, lengths = stream(s, codes, seed)
    assert got.shape == whole.shape
    torch.testing.assert_close(got, whole, atol=1e-5, rtol=0)
    # every frame's samples at once, once the first 7 frames (EnCodec's kernel_size) exist
    ends = torch.tensor(chunks(23, seed)).cumsum(0)
    emitted = torch.where(ends >= 7, ends, 0)
    assert lengths == (4 * torch.diff(emitted, prepend=torch.tensor([0]))).tolist()


def test_a_non_causal_codec_needs_its_lookahead(dac):
    codes = torch.randint(0, CARD, (2, 3, 21), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        whole = dac.decode(audio_codes=codes).audio_values[:, None]
    eager, _ = stream(CodecStream(dac), codes, seed=1)
    assert (eager - whole).abs().max() > 1e-3  # DAC's convolutions look ahead: early samples change later
    held, lengths = stream(CodecStream(dac, lookahead=2), codes, seed=1)
    torch.testing.assert_close(held, whole, atol=1e-4, rtol=0)
    assert sum(lengths) == 4 * (21 - 2)  # two frames wait for flush()


def test_bounded_context_costs_little_and_converges(encodec):
    codes = torch.randint(0, CARD, (1, 4, 30), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = encodec.decode(codes[None], [None]).audio_values
    errors = []
    for context in (1, 4, 30):
        got, _ = stream(CodecStream(encodec, context=context), codes, seed=2)
        errors.append(float((got - whole).abs().max()))
    assert errors[-1] < 1e-5  # a context as long as the utterance is the exact stream
    assert errors[0] >= errors[-1]


def test_generated_frames_become_audio_as_they_come_out(encodec):
    K, phonemes = 4, 9
    net = TinyTransformerLM(DelayPatternLM.input_vocab(CARD, phonemes), K, CARD + 2, K, dim=32, max_context=96)
    lm = DelayPatternLM(net, card=CARD, num_codebooks=K)
    s = CodecStream(encodec)
    pieces = []
    text = torch.randint(0, phonemes, (1, 6), generator=torch.Generator().manual_seed(0))
    out = lm.generate(text, max_frames=12, on_frame=lambda t, codes, valid: pieces.append(s.accept(codes[..., None])))
    frames = int(out.lengths[0])
    assert len(pieces) == frames
    with torch.no_grad():
        whole = encodec.decode(out.codes[None, :, :, :frames], [None]).audio_values
    torch.testing.assert_close(torch.cat(pieces, dim=-1), whole, atol=1e-5, rtol=0)


def test_bad_codecs_and_frames_are_named(encodec):
    with pytest.raises(InvalidArgumentError, match="codec: expected a transformers EncodecModel or DacModel"):
        CodecStream(torch.nn.Linear(2, 2))
    s = CodecStream(encodec)
    most = encodec.config.num_quantizers
    with pytest.raises(TensorError, match=rf"K in \[1, {most}\] \(the codebooks EncodecModel decodes\)"):
        s.accept(torch.zeros((1, most + 1, 2), dtype=torch.long))
    s.accept(torch.zeros((1, 4, 2), dtype=torch.long))
    with pytest.raises(TensorError, match=r"\[B, K\] = \[1, 4\] as before"):
        s.accept(torch.zeros((2, 4, 1), dtype=torch.long))
    with pytest.raises(TensorError, match="integer codes"):
        s.accept(torch.zeros((1, 4, 1)))
    with pytest.raises(InvalidArgumentError, match="lookahead"):
        CodecStream(encodec, lookahead=-1)
