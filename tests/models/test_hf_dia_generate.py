"""Our loop around Dia (models.hf_dia.dia_generate) on a tiny random DiaForConditionalGeneration:
greedy, it is Dia's own generate token for token; any sampler draws every token that Dia's end
rules do not force, and the end rules hold (channel c ends delays[c] columns after channel 0)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from test_hf_dia import BOS, EOS, PAD, C, V, dia  # noqa: E402

from speechdecode.decoding.samplers import FilterSampler  # noqa: E402
from speechdecode.errors import InvalidArgumentError, TensorError  # noqa: E402
from speechdecode.models.hf_dia import dia_generate  # noqa: E402

DELAYS = [0, 2, 3]


@pytest.fixture(scope="module")
def model():
    return dia().eval()


def _text(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 64, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("batch", "length", "new", "scale", "top_k"),
    [(2, 6, 10, None, None), (3, 5, 12, 3.0, 20), (1, 4, 30, 2.0, V), (2, 7, 25, None, None), (5, 3, 4, 1.5, 7)],
)
def test_greedy_is_dias_generate(model, batch, length, new, scale, top_k):
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
