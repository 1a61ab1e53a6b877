"""guided_sample: classifier-free guidance fused into the draw. Every backend equals the reference
on random inputs of awkward sizes (-inf entries included), the guided logits equal transformers'
CFG processors (MusicGen's and Dia's) bit for bit, and the draw equals sampling what those
processors and transformers' warpers produce."""

import pytest
import torch

from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.sampling import guided_sample, keep_mask, sample
from speechdecode.kernels.sampling.reference import guide

BACKENDS = ["reference", "native", "triton"]
SHAPES = [(1, 1), (3, 2), (2, 31), (5, 33), (4, 257), (2, 1000)]
FORMS = ["uncond", "dual", "cond"]


def inputs(batch, vocab, seed, masked=True):
    g = torch.Generator().manual_seed(seed)
    c, u, c2 = (torch.randn(batch, vocab, generator=g) * 2 for _ in range(3))
    if masked and vocab > 1:
        for t in (c, u, c2):
            t[torch.rand(batch, vocab, generator=g) < 0.1] = float("-inf")
        for t in (c, u, c2):
            t[:, 0] = torch.randn(batch, generator=g)  # every row keeps a token finite everywhere
    return c, u, c2


def call(form, c, u, c2, **kw):
    if form == "dual":
        return guided_sample(c, u, 2.5, cond2=c2, guidance_scale2=-0.75, **kw)
    return guided_sample(c, u, 2.5, center=form, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("batch", "vocab"), SHAPES)
def test_backends_equal_the_reference(backend, form, batch, vocab):
    c, u, c2 = inputs(batch, vocab, seed=batch * 1000 + vocab)
    g = torch.Generator().manual_seed(vocab)
    params = {
        "temperature": torch.rand(batch, generator=g) + 0.3,
        "top_k": torch.randint(1, vocab + 2, (batch,), generator=g),
        "top_p": torch.rand(batch, generator=g) * 0.9 + 0.1,
        "min_p": torch.rand(batch, generator=g) * 0.2,
        "uniforms": torch.rand(batch, generator=g),
    }
    want = call(form, c, u, c2, backend="reference", **params)
    assert torch.equal(call(form, c, u, c2, backend=backend, **params), want)
    # and the reference is sample() of the guided logits
    second = c2 if form == "dual" else None
    guided = guide(c, u, second, 2.5, -0.75 if form == "dual" else 0.0, "cond" if form == "cond" else "uncond")
    assert torch.equal(sample(guided, backend="reference", **params), want)
    greedy = call(form, c, u, c2, backend=backend, temperature=0)
    assert torch.equal(greedy, torch.where(torch.isinf(guided), -torch.inf, guided).argmax(dim=1))


def test_non_contiguous_and_half_inputs():
    c, u, _ = inputs(6, 40, seed=3, masked=False)
    wide = torch.zeros(6, 80)
    wide[:, ::2] = c  # a strided view: vocabulary stride 2
    params = {"top_k": 10, "uniforms": torch.rand(6, generator=torch.Generator().manual_seed(1))}
    for b in BACKENDS:
        assert torch.equal(guided_sample(wide[:, ::2], u, 3.0, backend=b, **params), guided_sample(c, u, 3.0, **params))
        half = guided_sample(c.half(), u.half(), 3.0, backend=b, **params)
        assert torch.equal(half, guided_sample(c.half().float(), u.half().float(), 3.0, **params))


def test_guided_logits_equal_transformers_processors():
    transformers = pytest.importorskip("transformers")
    from transformers.generation.logits_process import (
        ClassifierFreeGuidanceLogitsProcessor,
        DiaClassifierFreeGuidanceLogitsProcessor,
    )

    c, u, _ = inputs(4, 300, seed=9, masked=False)
    ids = torch.zeros((4, 1), dtype=torch.long)
    musicgen = ClassifierFreeGuidanceLogitsProcessor(3.0)(ids, torch.cat([c, u]))
    assert torch.equal(guide(c, u, None, 3.0, 0.0, "uncond"), musicgen)
    dia = DiaClassifierFreeGuidanceLogitsProcessor(3.0)(ids, torch.cat([c, u]))
    assert torch.equal(guide(c, u, None, 3.0, 0.0, "cond"), dia)
    # then transformers' warpers: the distribution they leave is the one guided_sample draws from
    warped = torch.cat([c, u])
    for processor in (
        ClassifierFreeGuidanceLogitsProcessor(3.0),
        transformers.TemperatureLogitsWarper(0.8),
        transformers.TopKLogitsWarper(40),
        transformers.TopPLogitsWarper(0.9),
    ):
        warped = processor(ids, warped)
    kept = keep_mask(guide(c, u, None, 3.0, 0.0, "uncond"), temperature=0.8, top_k=40, top_p=0.9)
    assert torch.equal(torch.isfinite(warped), kept)
    for b in BACKENDS:
        uniforms = torch.rand(4, generator=torch.Generator().manual_seed(b.__len__()))
        drawn = guided_sample(c, u, 3.0, temperature=0.8, top_k=40, top_p=0.9, uniforms=uniforms, backend=b)
        assert torch.equal(drawn, sample(warped, uniforms=uniforms, backend="reference"))


def test_bad_inputs_are_named():
    c, u, c2 = inputs(2, 5, seed=0, masked=False)
    with pytest.raises(TensorError, match=r"uncond: expected the shape and device of cond \[2, 5\]"):
        guided_sample(c, u[:, :4], 2.0)
    bad = u.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(TensorError, match="uncond: expected no NaN or \\+inf, got one in row 1"):
        guided_sample(c, bad, 2.0)
    dead = c.clone()
    dead[1] = float("-inf")
    dead[1, 0] = 0.0
    masked = u.clone()
    masked[1, 0] = float("-inf")
    with pytest.raises(TensorError, match="finite in every input in each row, got none in row 1"):
        guided_sample(dead, masked, 2.0)
    with pytest.raises(InvalidArgumentError, match="center"):
        guided_sample(c, u, 2.0, center="both")
    with pytest.raises(InvalidArgumentError, match="cond2"):
        guided_sample(c, u, 2.0, cond2=c2, guidance_scale2=1.0, center="cond")
    with pytest.raises(InvalidArgumentError, match="guidance_scale2"):
        guided_sample(c, u, 2.0, cond2=c2)
    with pytest.raises(InvalidArgumentError, match="guidance_scale"):
        guided_sample(c, u, float("nan"))
