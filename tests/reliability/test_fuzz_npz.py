"""Fuzzing the ``.npz`` readers: decoding graphs (graphs.export.load_graph, WfstDecoder on a path)
and posteriors (decoding.posteriors.load_posteriors), in the probe worker.

Known-invalid arrays (a label, state or offset out of range, unsorted arcs, NaN or infinite
costs, a wrong dtype or shape, a missing key; lengths outside [0, T], NaN log-probs, ...) and
damaged archives (cut, a flipped byte inside a member, not a zip at all) must be rejected with an
error naming the file, by load_graph and by WfstDecoder alike. Random byte damage must fail
cleanly; a graph that loads must decode, the C++ search agreeing with the exhaustive reference.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from probing import FUZZ, check_outcome, examples

from speechdecode import _backend
from speechdecode.decoding.posteriors import save_posteriors
from speechdecode.graphs.export import ARRAY_DTYPES

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")


def _graph(seed: int) -> dict[str, np.ndarray]:
    """A small graph in the export format: 5 states, tokens 1..3, epsilon arcs forward only."""
    rng = np.random.default_rng(seed)
    arcs = []
    for s in range(5):
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.25 and s < 4:
                arcs.append((s, 0, 0, float(rng.uniform(0, 2)), int(rng.integers(s + 1, 5))))
            else:
                word = int(rng.integers(0, 3))
                arcs.append((s, int(rng.integers(1, 4)), word, float(rng.uniform(0, 2)), int(rng.integers(0, 5))))
    arcs.sort(key=lambda a: (a[0], a[1]))
    counts = np.bincount([a[0] for a in arcs], minlength=5)
    return {
        "start": np.int64(0),
        "final_weights": np.array([np.inf, 0.5, np.inf, 0.0, 1.0], np.float32),
        "arc_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "ilabels": np.array([a[1] for a in arcs], np.int32),
        "olabels": np.array([a[2] for a in arcs], np.int32),
        "weights": np.array([a[3] for a in arcs], np.float32),
        "nextstates": np.array([a[4] for a in arcs], np.int32),
        "num_tokens": np.int64(3),
        "blank": np.int64(0),
        "topology": np.str_("standard"),
    }


GRAPHS = [_graph(seed) for seed in (1, 2, 3)]


def _save(path, arrays: dict) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def test_base_graphs_decode_alike(prober, tmp_path):
    for i, graph in enumerate(GRAPHS):
        path = tmp_path / f"g{i}.npz"
        _save(path, graph)
        assert prober("load_graph", str(path))[0] == "ok"
        outcome = prober("wfst_decode", str(path), i)
        assert outcome[0] == "ok", outcome
        native, reference = outcome[1]
        assert native == reference and any(native), outcome


def _graph_mutation(data, g: dict) -> str:
    arcs, states = len(g["ilabels"]), len(g["final_weights"])
    kinds = ["ilabel", "nextstate", "offsets", "start", "blank", "olabel", "weight", "final", "dtype", "missing"]
    kind = data.draw(st.sampled_from([*kinds, "unsorted", "topology", "ndim", "no_states"]))
    a = data.draw(st.integers(0, arcs - 1))
    if kind == "ilabel":
        g["ilabels"][a] = data.draw(st.sampled_from([-1, 4, 2**31 - 1, -(2**31)]))
    elif kind == "nextstate":
        g["nextstates"][a] = data.draw(st.sampled_from([-1, states, 2**31 - 1]))
    elif kind == "offsets":
        how = data.draw(st.sampled_from(["first", "last", "drop", "decrease"]))
        offsets = g["arc_offsets"]
        if how == "first":
            offsets[0] = 1
        elif how == "last":
            offsets[-1] = arcs + data.draw(st.sampled_from([-1, 1, 2**40]))
        elif how == "drop":
            g["arc_offsets"] = offsets[:-1]
        else:
            s = data.draw(st.integers(1, states - 1))
            offsets[s] = offsets[s + 1] + 1
    elif kind == "start":
        g["start"] = np.int64(data.draw(st.sampled_from([-1, states, 2**32])))
    elif kind == "blank":
        g["blank"] = np.int64(data.draw(st.sampled_from([-1, 3, 2**40])))
    elif kind == "olabel":
        g["olabels"][a] = data.draw(st.sampled_from([-1, -(2**31)]))
    elif kind == "weight":
        g["weights"][a] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "final":
        g["final_weights"][data.draw(st.integers(0, states - 1))] = data.draw(st.sampled_from([np.nan, -np.inf]))
    elif kind == "dtype":
        name = data.draw(st.sampled_from(sorted(ARRAY_DTYPES)))
        other = data.draw(st.sampled_from([np.float64, np.int64, np.int16, np.uint32, np.float16]))
        if np.dtype(other) == np.dtype(ARRAY_DTYPES[name]):
            other = np.int8
        with np.errstate(invalid="ignore"):  # +inf final weights become some integer
            g[name] = g[name].astype(other)
        if name == "nextstates" and other == np.int64:
            g[name][a] = 2**32 + 1  # would wrap to 1 in an int32 cast
    elif kind == "missing":
        del g[data.draw(st.sampled_from(sorted(g)))]
    elif kind == "unsorted":
        offsets = g["arc_offsets"]
        s = next((s for s in range(states) if len(set(g["ilabels"][offsets[s] : offsets[s + 1]].tolist())) > 1), None)
        if s is None:  # no state with two labels: an offset out of order instead
            g["arc_offsets"] = offsets[::-1].copy()
        else:
            g["ilabels"][offsets[s] : offsets[s + 1]] = g["ilabels"][offsets[s] : offsets[s + 1]][::-1].copy()
    elif kind == "topology":
        g["topology"] = data.draw(st.sampled_from([np.str_("fancy"), np.int64(1), np.array(["standard", "x"])]))
    elif kind == "ndim":
        name = data.draw(st.sampled_from(sorted(ARRAY_DTYPES)))
        g[name] = np.stack([g[name], g[name]])
    else:
        g["final_weights"] = g["final_weights"][:0]
        g["arc_offsets"] = np.zeros(1, np.int64)
        for name in ("ilabels", "olabels", "weights", "nextstates"):
            g[name] = g[name][:0]
    return kind


@settings(FUZZ, max_examples=examples(400))
@given(data=st.data())
def test_invalid_graph_is_rejected_with_the_file_named(prober, tmp_path, data):
    g = {k: np.array(v, copy=True) for k, v in data.draw(st.sampled_from(GRAPHS)).items()}
    kind = _graph_mutation(data, g)
    path = tmp_path / "TLG.npz"
    _save(path, g)
    check_outcome(f"graph {kind}", prober("load_graph", str(path)), path, must_fail=True)
    check_outcome(f"graph {kind} (WfstDecoder)", prober("wfst_decode", str(path), 0), path, must_fail=True)


def _member_spans(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of each member's stored data in a zip archive."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for info in archive.infolist():
            name_len, extra_len = np.frombuffer(raw[info.header_offset + 26 : info.header_offset + 30], "<u2")
            start = info.header_offset + 30 + int(name_len) + int(extra_len)
            spans.append((start, start + info.compress_size))
    return spans


def _archive_damage(data, raw: bytes) -> tuple[str, bytes]:
    kind = data.draw(st.sampled_from(["cut", "member_byte", "text"]))
    if kind == "cut":
        return kind, raw[: data.draw(st.integers(0, len(raw) - 1))]
    if kind == "text":
        return kind, data.draw(st.sampled_from([b"", b"hello\n", b"\x93NUMPY", b"PK\x03\x04", b"\x80\x04K\x01."]))
    spans = _member_spans(raw)
    start, end = data.draw(st.sampled_from([s for s in spans if s[1] > s[0] + 2]))
    # Every stored byte counts (the CRC covers it). Not a deflate stream's first byte (its BFINAL
    # bit cleared leaves the data whole: zipfile stops at the member's end) nor its last (padding).
    deflated = zipfile.ZipFile(io.BytesIO(raw)).infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    at = data.draw(st.integers(start + 1, end - 2) if deflated else st.integers(start, end - 1))
    damaged = bytearray(raw)
    damaged[at] ^= 1 << data.draw(st.integers(0, 7))
    return kind, bytes(damaged)


@settings(FUZZ, max_examples=examples(300))
@given(data=st.data())
def test_damaged_graph_archive_is_rejected(prober, tmp_path, data):
    buffer = io.BytesIO()
    np.savez(buffer, **data.draw(st.sampled_from(GRAPHS)))
    kind, raw = _archive_damage(data, buffer.getvalue())
    path = tmp_path / "TLG.npz"
    path.write_bytes(raw)
    check_outcome(f"graph.npz {kind}", prober("load_graph", str(path)), path, must_fail=True)
    check_outcome(f"graph.npz {kind} (WfstDecoder)", prober("wfst_decode", str(path), 0), path, must_fail=True)


@settings(FUZZ, max_examples=examples(300))
@given(data=st.data())
def test_random_graph_damage_fails_cleanly_or_decodes_alike(prober, tmp_path, data):
    """Bytes of one .npy member (header or data) replaced, in an archive that is otherwise sound."""
    buffer = io.BytesIO()
    np.savez(buffer, **data.draw(st.sampled_from(GRAPHS)))
    with zipfile.ZipFile(buffer) as archive:
        members = {name: bytearray(archive.read(name)) for name in archive.namelist()}
    member = members[data.draw(st.sampled_from(sorted(members)))]
    for _ in range(data.draw(st.integers(1, 3))):
        member[data.draw(st.integers(0, len(member) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "TLG.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, bytes(content))
    loaded = prober("load_graph", str(path))
    check_outcome("graph random damage", loaded, path)
    decoded = prober("wfst_decode", str(path), 1)
    check_outcome("graph random damage (WfstDecoder)", decoded, path)
    if decoded[0] == "ok":
        assert loaded[0] == "ok"
        native, reference = decoded[1]
        assert native == reference or native == "wide"


def test_int64_graph_arrays_are_not_wrapped():
    """WfstDecoder(dict) used to cast int64 arrays to int32: next state 2**32 + 1 became 1."""
    from speechdecode.decoding import WfstDecoder
    from speechdecode.errors import TensorError

    graph = {k: np.array(v, copy=True) for k, v in GRAPHS[0].items()}
    graph["nextstates"] = graph["nextstates"].astype(np.int64)
    graph["nextstates"][0] = 2**32 + 1
    with pytest.raises(TensorError, match=r"nextstates.*4294967297"):
        WfstDecoder(graph)


# --- posteriors ---------------------------------------------------------------------------


def _posteriors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((2, 5, 4))
    log_probs = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(np.float32)
    log_probs[1, 4] = np.nan  # beyond utterance 1's length: not read, allowed
    return {"log_probs": log_probs, "lengths": np.array([5, 3]), "utt_ids": np.array(["u1", "u2"])}


def test_base_posteriors_read(prober, tmp_path):
    path = tmp_path / "post.npz"
    save_posteriors(path, **_posteriors())
    outcome = prober("load_posteriors", str(path))
    assert outcome[0] == "ok" and outcome[1][1] == ["u1", "u2"], outcome


def _posteriors_mutation(data, p: dict) -> str:
    kind = data.draw(st.sampled_from(["missing", "ndim", "dtype", "lengths_dtype", "lengths_shape", "lengths_range",
                                      "nan", "utt_ids_count", "utt_ids_dtype"]))  # fmt: skip
    if kind == "missing":
        del p["log_probs"]
    elif kind == "ndim":
        p["log_probs"] = p["log_probs"][data.draw(st.sampled_from([0, (0, 0), (0, 0, 0)]))]
    elif kind == "dtype":
        with np.errstate(invalid="ignore"):  # the NaN beyond utterance 1's length
            p["log_probs"] = p["log_probs"].astype(data.draw(st.sampled_from([np.int32, np.int64, np.bool_, "U5"])))
    elif kind == "lengths_dtype":
        p["lengths"] = p["lengths"].astype(data.draw(st.sampled_from([np.float32, np.float64, "U3"])))
    elif kind == "lengths_shape":
        p["lengths"] = data.draw(st.sampled_from([p["lengths"][:1], np.array([5, 3, 1]), p["lengths"][None]]))
    elif kind == "lengths_range":
        p["lengths"] = p["lengths"].copy()
        p["lengths"][data.draw(st.integers(0, 1))] = data.draw(st.sampled_from([-1, 6, 2**40, -(2**40)]))
    elif kind == "nan":
        b, t, v = data.draw(st.integers(0, 1)), data.draw(st.integers(0, 2)), data.draw(st.integers(0, 3))
        p["log_probs"] = p["log_probs"].copy()
        p["log_probs"][b, t, v] = data.draw(st.sampled_from([np.nan, np.inf]))
    elif kind == "utt_ids_count":
        p["utt_ids"] = data.draw(st.sampled_from([p["utt_ids"][:1], np.array(["a", "b", "c"])]))
    else:
        p["utt_ids"] = data.draw(st.sampled_from([np.array([1, 2]), np.array([["a", "b"]]), np.array([b"a", b"b"])]))
    return kind


@settings(FUZZ, max_examples=examples(300))
@given(data=st.data())
def test_invalid_posteriors_are_rejected_with_the_file_named(prober, tmp_path, data):
    p = _posteriors()
    kind = _posteriors_mutation(data, p)
    path = tmp_path / "post.npz"
    if data.draw(st.booleans()):
        _save(path, p)
    else:
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **p)
    check_outcome(f"posteriors {kind}", prober("load_posteriors", str(path)), path, must_fail=True)


@settings(FUZZ, max_examples=examples(200))
@given(data=st.data())
def test_damaged_posteriors_archive_is_rejected(prober, tmp_path, data):
    buffer = io.BytesIO()
    (np.savez_compressed if data.draw(st.booleans()) else np.savez)(buffer, **_posteriors())
    kind, raw = _archive_damage(data, buffer.getvalue())
    path = tmp_path / "post.npz"
    path.write_bytes(raw)
    check_outcome(f"posteriors.npz {kind}", prober("load_posteriors", str(path)), path, must_fail=True)


def test_epsilon_cycle_in_a_graph_file_names_the_file(tmp_path):
    from speechdecode.decoding import WfstDecoder

    graph = {k: np.array(v, copy=True) for k, v in GRAPHS[0].items()}
    graph.update(arc_offsets=np.array([0, 1, 2, 2, 2, 2]), ilabels=np.zeros(2, np.int32), olabels=np.zeros(2, np.int32),
                 weights=np.zeros(2, np.float32), nextstates=np.array([1, 0], np.int32))  # fmt: skip
    path = tmp_path / "TLG.npz"
    _save(path, graph)
    with pytest.raises(ValueError, match="epsilon cycle") as error:
        WfstDecoder(path)
    assert str(path) in str(error.value)
