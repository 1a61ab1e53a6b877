"""The lm benchmark suite end to end in quick mode (lmplz is not installed here: its case is a note)."""

import json

from speechdecode.bench import run


def test_quick_lm_suite(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no lmplz
    monkeypatch.delenv("SPEECHDECODE_LMPLZ", raising=False)
    monkeypatch.delenv("SPEECHDECODE_BUILD_BINARY", raising=False)
    doc = run("lm", out_dir=tmp_path, quick=True)
    assert any("no lmplz on PATH" in note for note in doc["notes"])
    cases = {(r["case"], r["impl"]): r for r in doc["rows"]}
    assert ("load ARPA", "kenlm.Model") in cases and cases[("load ARPA", "kenlm.Model")]["anchor"]
    assert {c for c, _ in cases} == {
        "load ARPA",
        "score_batch",
        "state API",
        "load binary kjv",
        "query kjv probing",
        "query kjv trie",
        "query kjv trie-q8b8a22",
    }
    assert any("no build_binary on PATH" in note for note in doc["notes"])

    for row in doc["rows"]:
        anchor = next(r for r in doc["rows"] if r["case"] == row["case"] and r["anchor"])
        assert abs(row["ratio"] - anchor["median_ms"] / row["median_ms"]) < 1e-9
    assert json.loads((tmp_path / "lm.json").read_text())["notes"] == doc["notes"]
    assert "no lmplz on PATH" in (tmp_path / "lm.md").read_text()
