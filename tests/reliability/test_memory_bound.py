"""The whole-process memory of `lm build --memory 100M` on the KJV Bible, order 5 (about 790k
words): at most 150 MB plus the input's size, the figure the reliability work set. Counting keeps
to the budget (sorted runs spill to disk); estimation holds the counts and streams the model to
the file one order at a time, so the model is never whole in memory."""

import json
import subprocess
import sys

import pytest

from speechdecode import _backend
from speechdecode.testing.corpora import kjv_sentences

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="native extension not built")


def test_lm_build_peak_under_150_mb_with_memory_100m(tmp_path):
    text = tmp_path / "kjv.txt"
    text.write_text("\n".join(kjv_sentences()) + "\n", encoding="utf-8")
    args = ["lm", "build", "--text", text, "-o", "5", "--memory", "100M", "--arpa", tmp_path / "o5.arpa", "--json"]
    out = subprocess.run([sys.executable, "-m", "speechdecode", *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert sum(summary["written_ngrams"]) > 1_700_000  # the whole model was written
    limit_mib = (150e6 + text.stat().st_size) / 2**20
    assert summary["peak_rss_mb"] <= limit_mib, (summary["peak_rss_mb"], limit_mib)
