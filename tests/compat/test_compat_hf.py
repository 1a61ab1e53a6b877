"""Hugging Face's Wav2Vec2ProcessorWithLM and ASR pipeline with speechdecode's pyctcdecode decoder.

A tiny random Wav2Vec2ForCTC and a tokenizer built from a vocabulary (nothing downloaded).
"""

import json
import logging

import numpy as np
import pytest

from speechdecode.compat import pyctcdecode as shim
from speechdecode.lm import count_sentences, estimate, write_arpa

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("pyctcdecode")
pytest.importorskip("kenlm")

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdehot"]
SENTENCES = ["the cat ate", "a cat", "the bat ate a hot date", "cot to the bed", "the hot tea"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    (tmp / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tokenizer = transformers.Wav2Vec2CTCTokenizer(str(tmp / "vocab.json"), word_delimiter_token="|")
    extractor = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, return_attention_mask=True)
    config = transformers.Wav2Vec2Config(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.Wav2Vec2ForCTC(config).eval()
    with pytest.warns(Warning):  # tiny corpora have no count-of-counts for the discounts
        write_arpa(tmp / "lm.arpa", estimate(count_sentences(SENTENCES, 2), "mkn"))
    decoder = shim.build_ctcdecoder(VOCAB, kenlm_model_path=str(tmp / "lm.arpa"))
    return tmp, tokenizer, extractor, model, decoder


def _quiet():
    """transformers logs deprecation notes for pyctcdecode decoding; keep them out of the output."""
    logging.getLogger("transformers").setLevel(logging.ERROR)


def test_processor_batch_decode_and_round_trip(parts, tmp_path):
    _, tokenizer, extractor, model, decoder = parts
    _quiet()
    processor = transformers.Wav2Vec2ProcessorWithLM(extractor, tokenizer, decoder=decoder)
    audio = [np.random.default_rng(i).standard_normal(4000 + 1500 * i).astype(np.float32) for i in range(3)]
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(inputs.input_values, attention_mask=inputs.attention_mask).logits.numpy()
    out = processor.batch_decode(logits, output_word_offsets=True)
    for b, row in enumerate(logits):
        kept = row[(row != -100.0).all(axis=-1)]
        text, _, words, logit_score, lm_score = decoder.decode_beams(kept)[0]
        assert out.text[b] == text and out.logit_score[b] == logit_score and out.lm_score[b] == lm_score
        assert out.word_offsets[b] == [{"word": w, "start_offset": s, "end_offset": e} for w, (s, e) in words]
    assert any(out.text)
    single = processor.decode(logits[0], output_word_offsets=True, beam_width=7)
    assert single.text == decoder.decode_beams(logits[0], beam_width=7)[0][0]

    processor.save_pretrained(str(tmp_path / "saved"))
    loaded = transformers.Wav2Vec2ProcessorWithLM.from_pretrained(str(tmp_path / "saved"))
    assert loaded.decoder._alphabet.labels == decoder._alphabet.labels
    assert loaded.language_model.alpha == decoder._language_model.alpha
    ours_again = shim.BeamSearchDecoderCTC.load_from_dir(str(tmp_path / "saved"))
    again = transformers.Wav2Vec2ProcessorWithLM(loaded.feature_extractor, loaded.tokenizer, decoder=ours_again)
    assert again.batch_decode(logits).text == out.text


def test_pipeline_with_our_decoder(parts):
    _, tokenizer, extractor, model, decoder = parts
    _quiet()
    asr = transformers.pipeline(
        "automatic-speech-recognition", model=model, tokenizer=tokenizer, feature_extractor=extractor, decoder=decoder
    )
    audio = np.random.default_rng(7).standard_normal(9000).astype(np.float32)
    with torch.no_grad():
        values = extractor(audio, sampling_rate=16000, return_tensors="pt").input_values
        logits = model(values).logits[0].numpy()
    want = decoder.decode_beams(logits)[0]
    got = asr(audio, return_timestamps="word")
    assert got["text"] == want[0]
    assert [c["text"] for c in got["chunks"]] == [w for w, _ in want[2]]


def test_a_tokenizer_that_disagrees_with_the_labels_is_refused(parts):
    _, tokenizer, extractor, _, _ = parts
    _quiet()
    other = shim.build_ctcdecoder(["<pad>", "|", *"abcdeho"])  # no "t", no <s> / </s> / <unk>
    with pytest.raises(ValueError, match=r"not in the decoder's alphabet"):
        transformers.Wav2Vec2ProcessorWithLM(extractor, tokenizer, decoder=other)
