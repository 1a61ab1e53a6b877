"""The acoustic model recipe's data mix (recipes/acoustic_model/synthesize.py) and flite's rate."""

import importlib.util
import os
from collections import Counter

import numpy as np
import pytest

from speechdecode.testing.speech import ESPEAK_TRAIN_VOICES, FLITE_TRAIN_VOICES, TEST_VOICES, Rendition, synthesize

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "acoustic_model", "synthesize.py")


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("am_synthesize", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def renditions(recipe, share: float, count: int = 4000, seed: int = 0):
    return [recipe.training_rendition(np.random.default_rng([seed, i]), share) for i in range(count)]


def test_the_engine_is_drawn_before_the_voice(recipe):
    drawn = renditions(recipe, 0.5)
    engines = Counter(r.voice.partition(":")[0] for r in drawn)
    assert set(engines) == {"espeak", "flite"}
    assert abs(engines["flite"] / len(drawn) - 0.5) < 0.03  # binomial sd 0.008
    flite = Counter(r.voice for r in drawn if r.voice.startswith("flite:"))
    assert set(flite) == set(FLITE_TRAIN_VOICES) and min(flite.values()) > 300  # about 400 each
    espeak = {r.voice for r in drawn if r.voice.startswith("espeak:")}
    assert len(espeak) > 200 and espeak <= set(ESPEAK_TRAIN_VOICES)
    assert not {r.voice for r in drawn} & set(TEST_VOICES)
    # flite varies its rate and sox pitch; espeak its own rate and pitch
    assert len({r.rate for r in drawn if r.voice.startswith("flite:")}) > 50
    assert len({r.cents for r in drawn if r.voice.startswith("flite:")}) > 300
    assert {r.cents for r in drawn if r.voice.startswith("espeak:")} == {0}
    assert all(r.voice.startswith("espeak:") for r in renditions(recipe, 0.0, 500))
    assert all(r.voice.startswith("flite:") for r in renditions(recipe, 1.0, 500))


def test_each_utterance_depends_on_its_seed_and_index_only(recipe):
    assert renditions(recipe, 0.5, 50) == renditions(recipe, 0.5, 50)
    assert renditions(recipe, 0.5, 50) != renditions(recipe, 0.5, 50, seed=1)


def test_flite_rate_stretches_the_durations():
    text = "and god said let there be light and there was light"
    normal = synthesize(text, Rendition("flite:kal16"))
    slow = synthesize(text, Rendition("flite:kal16", rate=125))
    fast = synthesize(text, Rendition("flite:kal16", rate=225))
    assert 1.25 < len(slow) / len(normal) < 1.55  # 175 / 125 = 1.4
    assert 0.68 < len(fast) / len(normal) < 0.88  # 175 / 225 = 0.78
