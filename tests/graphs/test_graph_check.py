"""One check of a decoding graph's arrays: graphs.export.check_graph, load_graph and WfstDecoder
report the same rule broken with the same words (the native check in csrc/decoding/wfst_graph)."""

import gzip

import numpy as np
import pytest

from speechdecode.decoding import WfstDecoder
from speechdecode.errors import InputFileError, TensorError
from speechdecode.graphs import read_lexicon
from speechdecode.graphs.export import ARRAY_DTYPES, DecodingGraph, check_graph, load_graph


def _graph() -> dict:
    """3 states, tokens 1..2: 0 -a-> 1 -eps-> 2 (final), 0 -b-> 2."""
    return {
        "start": np.int64(0),
        "final_weights": np.array([np.inf, np.inf, 0.5], np.float32),
        "arc_offsets": np.array([0, 2, 3, 3], np.int64),
        "ilabels": np.array([1, 2, 0], np.int32),
        "olabels": np.array([1, 0, 2], np.int32),
        "weights": np.array([0.25, 1.0, 0.0], np.float32),
        "nextstates": np.array([1, 2, 2], np.int32),
        "num_tokens": np.int64(2),
        "blank": np.int64(0),
        "topology": np.str_("compact"),
    }


BROKEN = {
    "offsets": ({"arc_offsets": np.array([0, 2, 1, 3], np.int64)}, "arc_offsets: expected non-decreasing offsets"),
    "label": ({"ilabels": np.array([1, 3, 0], np.int32)}, "ilabels: expected input labels in 0..2"),
    "unsorted": ({"ilabels": np.array([2, 1, 0], np.int32)}, "ilabels: expected the arcs of each state sorted"),
    "olabel": ({"olabels": np.array([1, -1, 2], np.int32)}, r"olabels: expected word ids >= 0, got -1 at \[1\]"),
    "nextstate": ({"nextstates": np.array([1, 3, 2], np.int32)}, r"nextstates: expected states in \[0, 3\), got 3"),
    "weight": ({"weights": np.array([0.25, np.nan, 0.0], np.float32)}, "weights: expected finite costs"),
    "final": ({"final_weights": np.array([np.inf, -np.inf, 0.5], np.float32)}, "final_weights: expected finite"),
    "length": ({"weights": np.array([0.25, 1.0], np.float32)}, "weights: expected 3 costs"),
    "start": ({"start": np.int64(3)}, r"start: expected a state in \[0, 3\), got 3"),
    "blank": ({"blank": np.int64(2)}, r"blank: expected a token id in \[0, 2\)"),
    "cycle": ({"nextstates": np.array([1, 2, 1], np.int32)}, "graph: expected no epsilon cycles"),
}


def _decoding_graph(g: dict) -> DecodingGraph:
    scalars = {name: int(g[name]) for name in ("start", "num_tokens", "blank")}
    return DecodingGraph(**scalars, **{name: g[name] for name in ARRAY_DTYPES}, topology=str(g["topology"]))


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_every_reader_reports_the_same_broken_rule(tmp_path, kind):
    change, message = BROKEN[kind]
    g = {**_graph(), **change}
    with pytest.raises(TensorError, match=message):
        check_graph(_decoding_graph(g))
    path = tmp_path / "TLG.npz"
    np.savez(path, **g)
    with pytest.raises(InputFileError, match=message) as error:
        load_graph(path)
    assert str(path) in str(error.value)
    with pytest.raises(InputFileError, match=message):
        WfstDecoder(path, words=["<eps>", "a", "b"])
    arrays = {k: v for k, v in g.items() if k != "topology"}
    with pytest.raises(TensorError, match=message):
        WfstDecoder(arrays, words=["<eps>", "a", "b"])


def test_a_good_graph_passes_every_reader(tmp_path):
    g = _graph()
    check_graph(_decoding_graph(g))
    np.savez(tmp_path / "TLG.npz", **g)
    assert load_graph(tmp_path / "TLG.npz").num_arcs == 3
    assert WfstDecoder(tmp_path / "TLG.npz", words=["<eps>", "a", "b"]).num_tokens == 2


def test_arrays_of_another_dtype_or_layout_are_refused():
    g = _decoding_graph(_graph())
    g.ilabels = g.ilabels.astype(np.int64)
    with pytest.raises(TensorError, match=r"ilabels: expected a C-contiguous int32 array of shape \[M\], got int64"):
        check_graph(g)
    g = _decoding_graph(_graph())
    g.weights = np.zeros(6, np.float32)[::2]
    with pytest.raises(TensorError, match="weights: expected a C-contiguous float32"):
        check_graph(g)


def test_gzip_lexicon_is_told_by_content(tmp_path):
    path = tmp_path / "lexicon.txt"  # no .gz in the name
    path.write_bytes(gzip.compress(b"cat k a t\ndog d o g\n"))
    assert read_lexicon(path)["dog"][0].tokens == ("d", "o", "g")
