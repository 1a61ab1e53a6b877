"""Our loop around Dia (models.hf_dia.dia_generate) on a tiny random DiaForConditionalGeneration:
greedy, it is Dia's own generate token for token; any sampler draws every token that Dia's end
rules do not force, and the end rules hold (channel c ends delays[c] columns after channel 0)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from test_hf_dia import BOS, EOS, PAD, C, V, dia  # noqa: E402

from speechdecode import _backend  # noqa: E402
from speechdecode.decoding.samplers import FilterSampler  # noqa: E402
from speechdecode.errors import InvalidArgumentError, TensorError  # noqa: E402
from speechdecode.models.hf_dia import dia_generate  # noqa: E402

DELAYS = [0, 2, 3]


@pytest.fixture(scope="module")
def model():
    return dia().eval()


def _text(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 64, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backend", ["native", "reference"])  # the C++ step pass, or torch ops
@pytest.mark.parametrize(
    ("batch", "length", "new", "scale", "top_k"),
    [(2, 6, 10, None, None), (3, 5, 12, 3.0, 20), (1, 4, 30, 2.0, V), (2, 7, 25, None, None), (5, 3, 4, 1.5, 7)],
)
def test_greedy_is_dias_generate(model, batch, length, new, scale, top_k, backend, monkeypatch):
    monkeypatch.setenv(_backend.ENV_VAR, backend)
    text = _text(batch, length, seed=batch * 100 + new)
    kwargs = {"max_new_tokens": new, "do_sample": False, "guidance_scale": scale, "top_k": top_k}
    start = torch.full((batch, 1, C), BOS)
    want = model.generate(input_ids=text, attention_mask=torch.ones_like(text), decoder_input_ids=start, **kwargs)
    greedy = FilterSampler(temperature=0.0)
    got = dia_generate(model, text, max_new_tokens=new, guidance_scale=scale, guidance_top_k=top_k, sampler=greedy)
    assert got.shape == want.shape and torch.equal(got, want)


class Recording:
    """A sampler that draws with FilterSampler and keeps what it was given and what it drew."""

    def __init__(self, seed: int):
        self.inner = FilterSampler(top_k=9, generator=torch.Generator().manual_seed(seed))
        self.calls = []

    def __call__(self, logits, history):
        tokens = self.inner(logits, history)
        self.calls.append((logits.clone(), history.clone(), tokens.clone()))
        return tokens

    def reset(self, rows=None):
        self.calls.clear()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sampled_tokens_are_the_samplers_and_the_end_rules_hold(model, seed):
    batch, new = 3, 40
    sampler = Recording(seed)
    codes = dia_generate(model, _text(batch, 5, seed), max_new_tokens=new, guidance_scale=2.0, sampler=sampler)
    assert codes.shape[0] == batch and codes.shape[2] == C and 2 <= codes.shape[1] <= new + 1
    assert bool((codes[:, 0] == BOS).all()) and len(sampler.calls) == codes.shape[1] - 1
    for step, (logits, history, drawn) in enumerate(sampler.calls):
        assert logits.shape == (batch * C, V) and history.shape == (batch * C, step)
        assert torch.equal(history, codes[:, 1 : step + 1].transpose(1, 2).reshape(batch * C, step))
        column = codes[:, step + 1].reshape(batch * C)
        kept = column == drawn
        assert bool((column[~kept] == PAD).all())  # only a channel that has ended differs: PAD
        assert bool((drawn <= EOS).all())  # PAD and BOS are never drawn; EOS only as the end rules say
    for b in range(batch):
        ends = [(codes[b, :, c] == EOS).nonzero().flatten().tolist() for c in range(C)]
        assert all(len(e) == 1 for e in ends) or codes.shape[1] == new + 1
        if len(ends[0]) == 1:  # channel c ends delays[c] columns after channel 0, PAD after its end
            for c in range(C):
                assert ends[c] == [ends[0][0] + DELAYS[c]]
                assert bool((codes[b, ends[c][0] + 1 :, c] == PAD).all())


def test_bad_arguments_are_named(model):
    text = _text(1, 4, 0)
    with pytest.raises(InvalidArgumentError, match=r"^model: expected a DiaForConditionalGeneration"):
        dia_generate(torch.nn.Linear(2, 2), text, max_new_tokens=8)
    with pytest.raises(InvalidArgumentError, match=r"^max_new_tokens: expected an integer >= 4, got 3"):
        dia_generate(model, text, max_new_tokens=3)
    with pytest.raises(InvalidArgumentError, match=r"^guidance_scale: expected None, 1 or a number > 1"):
        dia_generate(model, text, max_new_tokens=8, guidance_scale=0.5)
    with pytest.raises(InvalidArgumentError, match=r"^guidance_top_k:"):
        dia_generate(model, text, max_new_tokens=8, guidance_scale=2.0, guidance_top_k=0)
    with pytest.raises(TensorError, match=r"^input_ids: expected integer \[B, L\]"):
        dia_generate(model, text.float(), max_new_tokens=8)

    class Short:
        def __call__(self, logits, history):
            return torch.zeros(logits.shape[0] - 1, dtype=torch.int64)

        def reset(self, rows=None):
            pass

    with pytest.raises(TensorError, match=r"sampler output: expected \[3\] integer tokens"):
        dia_generate(model, text, max_new_tokens=8, sampler=Short())


def _dias_processors(logits, batch, channels, eos, guided, top_k, ending, countdown, end_all):
    """transformers' Dia guidance and EOS filter on [B(*2) * C, V] logits, then the forced ends of
    its delay-pattern processor from the given state: (scores, ending, countdown)."""
    from transformers.generation.logits_process import (
        DiaClassifierFreeGuidanceLogitsProcessor,
        DiaEOSChannelFilterLogitsProcessor,
    )

    rows = batch * channels
    scores = logits.clone()
    if guided:
        scores = DiaClassifierFreeGuidanceLogitsProcessor(3.0, top_k)(torch.zeros(rows, 1, dtype=torch.long), scores)
    scores = DiaEOSChannelFilterLogitsProcessor(channels, eos)(None, scores).clone()
    ending = ending | (scores.view(batch, channels, -1)[:, 0].argmax(dim=1) == eos) | end_all
    forced = (ending[:, None] & (countdown == 0)).reshape(rows)
    scores[forced] = float("-inf")
    scores[forced, eos] = 0.0
    return scores, ending, countdown - ending[:, None].long()


@pytest.mark.parametrize(
    ("batch", "channels", "vocab", "guided", "top_k"),
    [(1, 9, 1028, True, 45), (3, 3, 17, True, 1), (2, 4, 1031, True, 1031), (5, 1, 7, True, None),
     (2, 9, 1028, False, None), (4, 3, 33, False, 5), (7, 2, 300, True, 299), (1, 1, 5, True, 1)],
)  # fmt: skip
def test_native_step_pass_is_dias_processors(batch, channels, vocab, guided, top_k):
    generator = torch.Generator().manual_seed(batch * 1000 + vocab)
    rows, eos = batch * channels, vocab - 4
    for trial in range(24):
        logits = torch.randn(rows * (2 if guided else 1), vocab, generator=generator) * 4
        if trial % 4 == 1:  # eos the best logit of some rows (channel 0 only may end)
            logits[::2, eos] = 50.0
        if trial % 4 == 2:  # masked tokens: -inf in cond only (guided -inf), and in both (NaN guided)
            logits[0, : vocab // 3] = float("-inf")
            if guided:
                logits[rows, : min(vocab // 3, top_k or 0)] = float("-inf")
        if trial % 4 == 3:  # equal logits in a row
            logits[-1] = logits[-1, 0]
        ending = torch.rand(batch, generator=generator) < 0.3
        countdown = torch.randint(-2, 4, (batch, channels), generator=generator)
        end_all = trial % 6 == 5
        want = _dias_processors(logits, batch, channels, eos, guided, top_k, ending, countdown, end_all)
        scores = torch.full((rows, vocab), 7.0)
        _backend.native().dia_scores(
            logits.numpy(), scores.numpy(), ending.numpy(), countdown.numpy(), guided, 3.0, top_k or 0, eos, end_all
        )
        assert torch.equal(scores, want[0]), (trial, (scores != want[0]).nonzero()[:5])
        assert torch.equal(ending, want[1]) and torch.equal(countdown, want[2]), trial


def test_native_step_pass_names_bad_arrays():
    native, logits = _backend.native(), torch.zeros(6, 10).numpy()
    scores, ending, countdown = torch.zeros(3, 10).numpy(), torch.zeros(1, dtype=torch.bool), torch.zeros(1, 3)
    countdown = countdown.long().numpy()
    with pytest.raises(TensorError, match=r"^out: expected a writeable C-contiguous float32 array of shape \[3, 10\]"):
        native.dia_scores(logits, torch.zeros(6, 10).numpy(), ending.numpy(), countdown, True, 3.0, 4, 7, False)
    with pytest.raises(TensorError, match=r"^ending: expected a writeable C-contiguous bool array of shape \[1\]"):
        native.dia_scores(logits, scores, ending.byte().numpy(), countdown, True, 3.0, 4, 7, False)
    with pytest.raises(TensorError, match=r"^countdown: expected \[B, C\] with B \* C = 3 rows"):
        native.dia_scores(logits, scores, ending.numpy(), countdown[:, :2], True, 3.0, 4, 7, False)
    with pytest.raises(TensorError, match=r"^countdown: expected a writeable C-contiguous int64 array"):
        native.dia_scores(logits, scores, ending.numpy(), countdown.astype("int32"), True, 3.0, 4, 7, False)
    with pytest.raises(TensorError, match=r"^eos: expected an id in \[0, 10\), got 10"):
        native.dia_scores(logits, scores, ending.numpy(), countdown, True, 3.0, 4, 10, False)
    with pytest.raises(TensorError, match=r"^top_k: expected 0 \(none\) or in \[1, 10\], got 11"):
        native.dia_scores(logits, scores, ending.numpy(), countdown, True, 3.0, 11, 7, False)
    with pytest.raises(TensorError, match=r"^logits: expected a C-contiguous float32 array of 2N rows"):
        native.dia_scores(torch.zeros(5, 10).numpy(), scores, ending.numpy(), countdown, True, 3.0, 4, 7, False)
