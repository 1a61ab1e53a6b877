"""transformers adapters on a tiny random Llama (built from a config, nothing downloaded)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from speechdecode.decoding import ras, sample  # noqa: E402
from speechdecode.errors import InvalidArgumentError  # noqa: E402
from speechdecode.kernels.sampling import keep_mask  # noqa: E402
from speechdecode.models.hf import DurationStoppingProcessor, SamplingWarper, ras_generate  # noqa: E402

VOCAB, EOS, PAD = 64, 2, 0


def _model(peak: float = 1.0):
    """A seeded random 2-layer Llama; ``peak`` scales the output head (peaked rows repeat more)."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(peak)
    return model


@pytest.fixture(scope="module")
def model():
    return _model()


def _prompt(batch=3, length=5, seed=1):
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("warper", [SamplingWarper(top_k=1), SamplingWarper(temperature=0.0, top_p=0.3)])
def test_top_k_one_and_temperature_zero_equal_greedy(model, warper):
    ids = _prompt()
    greedy = model.generate(ids, do_sample=False, max_new_tokens=8, eos_token_id=None)
    torch.manual_seed(5)  # multinomial draws, which must not matter
    sampled = model.generate(
        ids, do_sample=True, top_k=0, max_new_tokens=8, eos_token_id=None, logits_processor=[warper]
    )
    assert sampled.shape == (3, 13)
    assert torch.equal(sampled, greedy)


@pytest.mark.parametrize("V", [1, 7, 64, 513])
def test_warper_keeps_exactly_the_reference_set(V):
    gen = torch.Generator().manual_seed(V)
    B = 6
    scores = torch.randn(B, V, generator=gen) * 3
    if V > 2:
        scores[1, ::3] = float("-inf")
    temperature = torch.rand(B, generator=gen) + 0.3
    temperature[4] = 0.0
    params = dict(
        temperature=temperature,
        top_k=torch.randint(1, V + 2, (B,), generator=gen),
        top_p=torch.tensor([0.5, 0.9, 1.0, 0.2, 0.7, 0.95]),
        min_p=torch.tensor([0.0, 0.1, 0.02, 0.0, 0.3, 0.0]),
    )
    out = SamplingWarper(**params)(torch.zeros(B, 1, dtype=torch.long), scores)
    want = keep_mask(scores, backend="reference", **params)
    assert torch.equal(torch.isfinite(out), want)
    t = torch.where(temperature == 0, torch.ones_like(temperature), temperature)
    assert torch.equal(out[want], (scores / t[:, None])[want])
    # the probabilities HF's multinomial sees are the kept weights renormalized: each kept token's
    # probability is its softmax weight over the kept set only
    probs = out.softmax(dim=-1)
    e = torch.where(want, (scores / t[:, None]).double().exp(), torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(probs.double(), e / e.sum(dim=1, keepdim=True), rtol=1e-5, atol=1e-7)


def test_warper_in_generate_draws_only_kept_tokens(model):
    ids = _prompt(batch=4, seed=3)
    warper = SamplingWarper(temperature=0.7, top_k=5, top_p=0.6)
    torch.manual_seed(2)
    out = model.generate(
        ids,
        do_sample=True,
        top_k=0,
        max_new_tokens=10,
        eos_token_id=None,
        logits_processor=[warper],
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    for step, (raw, processed) in enumerate(zip(out.logits, out.scores, strict=True)):
        kept = keep_mask(raw, temperature=0.7, top_k=5, top_p=0.6, backend="reference")
        assert torch.equal(torch.isfinite(processed), kept)
        assert bool(kept.gather(1, out.sequences[:, 5 + step, None]).all())
        assert bool((kept.sum(dim=1) <= 5).all())


def _assert_ends_at(seqs, prompt, totals):
    for b, d in enumerate(totals.tolist()):
        row = seqs[b, prompt:].tolist()
        assert EOS not in row[:d], (b, row)
        assert row[d] == EOS, (b, row)
        assert all(t == PAD for t in row[d + 1 :]), (b, row)


def test_duration_stopping_ends_every_row_at_its_length(model):
    ids = _prompt(batch=4, seed=4)
    durations = torch.tensor([[1, 2, 0], [0, 0, 0], [4, 3, 2], [2, 2, 1]])  # D = 3, 0, 9, 5
    stop = DurationStoppingProcessor(durations, eos_id=EOS, prompt_length=ids.shape[1])
    torch.manual_seed(0)
    out = model.generate(
        ids, do_sample=True, top_k=0, max_new_tokens=20, logits_processor=[stop], eos_token_id=EOS, pad_token_id=PAD
    )
    assert out.shape == (4, 5 + 9 + 1)
    _assert_ends_at(out, 5, durations.sum(dim=1))


def _step_loop(model, ids, steps, draw):
    """Decodes without a KV cache, one full forward per step; ``draw(logits, history)``."""
    for _ in range(steps):
        with torch.no_grad():
            logits = model(ids).logits[:, -1].float()
        ids = torch.cat([ids, draw(logits, ids[:, 5:])[:, None]], dim=1)
    return ids


@pytest.mark.parametrize("preset", ["paper", "cosyvoice", "flashcosyvoice"])
def test_ras_generate_equals_step_loop_with_the_same_uniforms(preset):
    model = _model(peak=4.0)  # peaked rows: tokens repeat and the redraw fires
    ids = _prompt(batch=4, seed=6)
    options = dict(window=6, threshold=0.1, top_p=0.7, preset=preset)
    got = model.generate(
        ids,
        custom_generate=ras_generate,
        max_new_tokens=16,
        eos_token_id=None,
        **{f"ras_{k}": v for k, v in options.items()},
        ras_generator=torch.Generator().manual_seed(9),
    )
    gen = torch.Generator().manual_seed(9)
    redraws = 0

    def draw(logits, history):
        nonlocal redraws
        u = torch.rand((logits.shape[0], 2), generator=gen)
        tokens = ras(logits, history, uniforms=u, **options)
        nucleus = ras(logits, history, uniforms=u, **{**options, "preset": "paper", "threshold": 1.0})
        if preset != "flashcosyvoice":  # flashcosyvoice's nucleus drops the crossing token
            redraws += int((tokens != nucleus).sum())
        return tokens

    want = _step_loop(model, ids, 16, draw)
    assert torch.equal(got, want)
    assert preset == "flashcosyvoice" or redraws > 0


def test_ras_generate_never_firing_is_nucleus_sampling(model):
    """paper preset, threshold 1: count / window > 1 never holds, so RAS is top-p sampling."""
    ids = _prompt(batch=5, seed=7)
    got = model.generate(
        ids,
        custom_generate=ras_generate,
        max_new_tokens=12,
        eos_token_id=None,
        ras_threshold=1.0,
        ras_top_p=0.6,
        ras_generator=torch.Generator().manual_seed(3),
    )
    gen = torch.Generator().manual_seed(3)

    def nucleus(logits, history):
        return sample(logits, top_p=0.6, uniforms=torch.rand((logits.shape[0], 2), generator=gen)[:, 0])

    assert torch.equal(got, _step_loop(model, ids, 12, nucleus))


def test_ras_generate_runs_processors_and_stops_rows_at_eos(model):
    ids = _prompt(batch=3, seed=8)
    durations = torch.tensor([4, 0, 7])
    stop = DurationStoppingProcessor(durations, eos_id=EOS, prompt_length=5)
    out = model.generate(
        ids,
        custom_generate=ras_generate,
        max_new_tokens=30,
        logits_processor=[stop],
        eos_token_id=EOS,
        pad_token_id=PAD,
        ras_preset="cosyvoice",
        ras_generator=torch.Generator().manual_seed(1),
        return_dict_in_generate=True,
        output_scores=True,
    )
    assert out.sequences.shape == (3, 5 + 7 + 1)
    assert len(out.scores) == 8
    _assert_ends_at(out.sequences, 5, durations)


def test_errors_name_the_argument(model):
    with pytest.raises(InvalidArgumentError, match="preset"):
        model.generate(_prompt(), custom_generate=ras_generate, max_new_tokens=2, ras_preset="vall-e")
    with pytest.raises(InvalidArgumentError, match="prompt_length"):
        DurationStoppingProcessor(torch.tensor([1]), eos_id=EOS, prompt_length=-1)
    stop = DurationStoppingProcessor(torch.tensor([1]), eos_id=EOS, prompt_length=5)
    with pytest.raises(InvalidArgumentError, match="input_ids"):
        stop(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, VOCAB))
    with pytest.raises(InvalidArgumentError, match="top_p"):
        SamplingWarper(top_p=1.5)(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, VOCAB))
