"""CtcPrefixBeamSearch and WfstDecoder pickle (LM and graph files by content hash) and run in spawn pools."""

import multiprocessing
import os
import pickle

import numpy as np
import pytest

from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder
from speechdecode.errors import InputFileError
from speechdecode.lm import count_sentences, estimate, write_arpa

CHARS = ["-", "|", "a", "b", "c"]


@pytest.fixture
def arpa(tmp_path):
    with pytest.warns(Warning):  # tiny corpus: no count-of-counts for the discounts
        write_arpa(tmp_path / "lm.arpa", estimate(count_sentences(["ab ba", "ab cab", "ba ab c"], 2), "mkn"))
    return tmp_path / "lm.arpa"


def tiny_graph() -> dict:
    """One word "a" (id 1): token 1 at least once, blanks around it (WfstDecoder's docstring graph)."""
    return {
        "start": 0, "final_weights": np.array([np.inf, 0.0], np.float32), "arc_offsets": np.array([0, 2, 4]),
        "ilabels": np.array([1, 2, 1, 2], np.int32), "olabels": np.array([0, 1, 0, 0], np.int32),
        "weights": np.zeros(4, np.float32), "nextstates": np.array([0, 1, 1, 1], np.int32), "num_tokens": 2,
        "blank": 0,
    }  # fmt: skip


def log_probs(seed, shape):
    return np.log(np.random.default_rng(seed).dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype(np.float32))


def test_prefix_search_pickles_and_decodes_in_a_spawn_pool(arpa):
    lexicon = {"ab": [["a", "b"]], "ba": [["b", "a"]], "cab": [["c", "a", "b"]]}
    search = CtcPrefixBeamSearch(
        CHARS, lm=arpa, hotwords=[("ab", 0.5)], lexicon=lexicon, unk_score_offset=-4.0, nbest=3, beam=8
    )
    batches = [log_probs(s, (2, 13, len(CHARS))) for s in range(3)]
    want = [search(x) for x in batches]
    again = pickle.loads(pickle.dumps(search))
    assert [again(x) for x in batches] == want
    graph = WfstDecoder(tiny_graph(), words=["<eps>", "a"])
    wfst_inputs = [log_probs(s, (2, 5, 2)) for s in range(2)]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.map(search, batches) == want
        assert pool.map(graph, wfst_inputs) == [graph(x) for x in wfst_inputs]


def test_a_changed_lm_file_is_refused(arpa):
    search = CtcPrefixBeamSearch(CHARS, lm=arpa)
    data = pickle.dumps(search)
    assert pickle.loads(data).lm.path == os.path.abspath(arpa)
    original = arpa.read_bytes()
    arpa.write_bytes(original.replace(b"\\end\\", b"\n\\end\\"))
    with pytest.raises(InputFileError, match=r"lm.arpa: .*changed"):
        pickle.loads(data)
    with pytest.raises(InputFileError, match=r"lm.arpa: cannot be pickled: the file changed"):
        pickle.dumps(search)


def test_wfst_decoder_pickles_its_graph_file_by_hash(tmp_path):
    graph = tiny_graph()
    arrays = {k: np.asarray(v) for k, v in graph.items() if k not in ("start", "num_tokens", "blank")}
    scalars = {"start": np.int64(0), "num_tokens": np.int64(2), "blank": np.int64(0)}
    np.savez(tmp_path / "TLG.npz", **arrays, **scalars, topology=np.str_("standard"))
    (tmp_path / "words.txt").write_text("<eps> 0\na 1\n")
    decoder = WfstDecoder(tmp_path, beam=9.0, nbest=2)
    x = log_probs(1, (3, 6, 2))
    data = pickle.dumps(decoder)
    assert len(data) < 2000  # the path and hash, not the arrays
    again = pickle.loads(data)
    assert again(x) == decoder(x) and (again.beam, again.nbest) == (9.0, 2)
    os.utime(tmp_path / "TLG.npz", ns=(1, 1))
    with pytest.raises(InputFileError, match=r"TLG.npz: changed since the decoder was built"):
        pickle.dumps(decoder)
    from_arrays = WfstDecoder(graph, words=["<eps>", "a"])
    assert pickle.loads(pickle.dumps(from_arrays))(x) == from_arrays(x)
