"""The compat benchmark suite runs in quick mode with one anchor per case and a WER per row."""

import pytest

from speechdecode.bench import run

pytest.importorskip("pyctcdecode")
pytest.importorskip("flashlight.lib.text.decoder.kenlm")


def test_quick_compat_suite(tmp_path):
    doc = run("compat", out_dir=tmp_path, quick=True)
    cases = {r["case"] for r in doc["rows"]}
    simulated = {"pyctcdecode defaults", "torchaudio ctc_decoder"}
    assert cases == simulated | {f"real posteriors, {c}" for c in simulated}  # the shipped acoustic model's
    assert all(sum(r["anchor"] for r in doc["rows"] if r["case"] == c) == 1 for c in cases)
    assert all(0.0 <= r["params"]["wer"] <= 1.0 and r["ratio"] > 0 for r in doc["rows"])
