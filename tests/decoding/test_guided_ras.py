"""guided_ras: classifier-free guidance (MusicGen's, VoiceLDM's dual, Dia's form) and temperature
fused into repetition-aware sampling. Every backend (C++, Triton under the interpreter, batched
torch) equals the per-row reference on random inputs of awkward sizes with -inf entries, for
every preset; the reference is RAS of what transformers' CFG processor and temperature warper
produce, bit for bit."""

import numpy as np
import pytest
import torch

from speechdecode import _backend
from speechdecode.decoding import RasSampler, guided_ras, ras
from speechdecode.errors import InvalidArgumentError, TensorError

SHAPES = [(1, 1), (3, 2), (2, 31), (5, 33), (4, 257), (2, 1000)]
FORMS = ["uncond", "dual", "cond"]
PRESETS = ["paper", "cosyvoice", "flashcosyvoice"]


def inputs(batch, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    c, u, c2 = (torch.randn(batch, vocab, generator=g) * 2 for _ in range(3))
    if vocab > 1:
        for t in (c, u, c2):
            t[torch.rand(batch, vocab, generator=g) < 0.1] = float("-inf")
        for t in (c, u, c2):
            t[:, 0] = torch.randn(batch, generator=g)  # a token finite in every input
    # histories that repeat tokens, so that the redraw fires in some rows
    history = torch.randint(-1, min(vocab, 4), (batch, 12), generator=g)
    return c, u, c2, history, torch.rand(batch, 2, generator=g)


def call(form, c, u, c2, history, **kw):
    if form == "dual":
        return guided_ras(c, u, 2.5, history, cond2=c2, guidance_scale2=-0.75, **kw)
    return guided_ras(c, u, 2.5, history, center=form, **kw)


@pytest.mark.parametrize("backend", ["native", "triton", "torch"])
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("batch", "vocab"), SHAPES)
def test_backends_equal_the_reference(backend, preset, form, batch, vocab, monkeypatch):
    c, u, c2, history, uniforms = inputs(batch, vocab, seed=batch * 1000 + vocab)
    options = {"temperature": 0.7, "window": 6, "threshold": 0.2, "top_p": 0.85, "preset": preset, "uniforms": uniforms}
    want = call(form, c, u, c2, history, backend="reference", **options)
    if backend == "torch":  # the batched torch path runs where neither kernel does
        monkeypatch.setattr(_backend, "HAS_NATIVE", False)
        backend = "native"
    assert torch.equal(call(form, c, u, c2, history, backend=backend, **options), want)


@pytest.mark.parametrize("preset", PRESETS)
def test_the_reference_is_ras_after_transformers_cfg_and_temperature(preset):
    transformers = pytest.importorskip("transformers")
    from transformers.generation.logits_process import (
        ClassifierFreeGuidanceLogitsProcessor,
        DiaClassifierFreeGuidanceLogitsProcessor,
    )

    c, u, _, history, uniforms = inputs(6, 300, seed=11)
    ids = torch.zeros((6, 1), dtype=torch.long)
    temperature = transformers.TemperatureLogitsWarper(0.8)
    for center, cfg in (
        ("uncond", ClassifierFreeGuidanceLogitsProcessor),
        ("cond", DiaClassifierFreeGuidanceLogitsProcessor),
    ):
        finite_c, finite_u = c.clamp(min=-30), u.clamp(min=-30)  # transformers' form has no -inf rule
        warped = temperature(ids, cfg(3.0)(ids, torch.cat([finite_c, finite_u])))
        want = ras(warped, history, preset=preset, top_k=20, uniforms=uniforms, backend="reference")
        for backend in ("reference", "native"):
            got = guided_ras(finite_c, finite_u, 3.0, history, center=center, temperature=0.8, preset=preset,
                             top_k=20, uniforms=uniforms, backend=backend)  # fmt: skip
            assert torch.equal(got, want)


def test_guidance_changes_the_draw_and_equal_passes_are_plain_ras():
    c, u, _, history, uniforms = inputs(64, 50, seed=5)
    plain = ras(c, history, uniforms=uniforms, backend="reference")
    for backend in ("native", "triton"):
        # cond == uncond: u + (c - u) * s is c exactly, so the draws are ras's
        assert torch.equal(guided_ras(c, c.clone(), 4.0, history, uniforms=uniforms, backend=backend), plain)
        assert not torch.equal(guided_ras(c, u, 4.0, history, uniforms=uniforms, backend=backend), plain)


def test_non_contiguous_half_and_numpy_inputs():
    c, u, _, history, uniforms = inputs(5, 40, seed=3)
    wide = torch.zeros(5, 80)
    wide[:, ::2] = c
    want = guided_ras(c, u, 2.0, history, uniforms=uniforms, backend="reference")
    for backend in ("native", "triton", "reference"):
        assert torch.equal(guided_ras(wide[:, ::2], u, 2.0, history, uniforms=uniforms, backend=backend), want)
        half = guided_ras(c.half(), u.half(), 2.0, history, uniforms=uniforms, backend=backend)
        assert torch.equal(half, guided_ras(c.half().float(), u.half().float(), 2.0, history, uniforms=uniforms))
    out = guided_ras(c.numpy(), u.numpy(), 2.0, history.numpy(), uniforms=uniforms.numpy())
    assert isinstance(out, np.ndarray) and out.tolist() == want.tolist()


def test_bad_inputs_are_named():
    c, u, c2, history, _ = inputs(2, 5, seed=0)
    with pytest.raises(TensorError, match=r"uncond: expected the shape and device of cond \[2, 5\]"):
        guided_ras(c, u[:, :4], 2.0, history)
    bad = u.clone()
    bad[1, 2] = float("nan")
    for backend in ("native", "reference"):
        with pytest.raises(TensorError, match=r"uncond: expected no NaN or \+inf, got one in row 1"):
            guided_ras(c, bad, 2.0, history, backend=backend)
    dead = torch.full((2, 5), float("-inf"))
    dead[:, 1] = 0.0
    masked = u.clone()
    masked[1, 1] = float("-inf")
    with pytest.raises(TensorError, match="finite in every input in each row, got none in row 1"):
        guided_ras(dead, masked, 2.0, history, backend="native")
    with pytest.raises(InvalidArgumentError, match="temperature"):
        guided_ras(c, u, 2.0, history, temperature=0.0)
    with pytest.raises(InvalidArgumentError, match="guidance_scale"):
        guided_ras(c, u, float("nan"), history)
    with pytest.raises(InvalidArgumentError, match="cond2"):
        guided_ras(c, u, 2.0, history, cond2=c2, guidance_scale2=1.0, center="cond")
    with pytest.raises(InvalidArgumentError, match="preset"):
        guided_ras(c, u, 2.0, history, preset="vall-e")


def test_ras_sampler_guides_inside_its_draw():
    c, u, _, history, _ = inputs(8, 64, seed=2)
    sampler = RasSampler(window=6, threshold=0.2, preset="cosyvoice", temperature=0.9,
                         generator=torch.Generator().manual_seed(4))  # fmt: skip
    got = sampler.guided(c, u, 3.0, history)
    uniforms = torch.rand(8, 2, generator=torch.Generator().manual_seed(4))
    want = guided_ras(c, u, 3.0, history[:, -6:], temperature=0.9, window=6, threshold=0.2, preset="cosyvoice",
                      uniforms=uniforms, backend="reference")  # fmt: skip
    assert torch.equal(got, want)
