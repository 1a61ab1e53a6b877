"""The flat-array decoding graph (``.npz``) that the WFST decoder reads.

Keys (the contract between ``graphs/`` and the decoder):

* ``start``: int64 scalar; ``final_weights``: float32 [S], tropical cost, +inf where not final;
* ``arc_offsets``: int64 [S+1], the arcs of state s are ``arc_offsets[s] .. arc_offsets[s+1]-1``;
* ``ilabels``, ``olabels``: int32 [A]; ``weights``: float32 [A] (tropical cost); ``nextstates``:
  int32 [A]; within a state arcs are sorted by ilabel (stable);
* ``num_tokens``: int64 scalar V; ``blank``: int64 scalar (the blank's acoustic output index);
  ``topology``: str (``"standard"`` or ``"compact"``).

Input label 0 is epsilon, i >= 1 is acoustic output i - 1 (every ilabel is in 0..V); output
labels are word ids of the ``words.txt`` beside the file, 0 for none.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile

import numpy as np

from speechdecode import _backend
from speechdecode._io import atomic_write, read_npz
from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError
from speechdecode.graphs.fst_io import FstArrays, fst_to_arrays, openfst
from speechdecode.graphs.topology import TOPOLOGIES

__all__ = ["ARRAY_DTYPES", "GRAPH_FILE", "DecodingGraph", "check_graph", "export_npz", "load_graph"]

GRAPH_FILE = "TLG.npz"  # the decoding graph's arrays in a graph directory
ARRAY_DTYPES = {
    "final_weights": np.float32,
    "arc_offsets": np.int64,
    "ilabels": np.int32,
    "olabels": np.int32,
    "weights": np.float32,
    "nextstates": np.int32,
}
_SCALARS = ("start", "num_tokens", "blank")


@dataclasses.dataclass
class DecodingGraph(FstArrays):
    """A decoding graph as flat arrays (the module docstring gives each field's meaning): the
    :class:`~speechdecode.graphs.fst_io.FstArrays` of the FST, and its acoustic-model facts."""

    num_tokens: int
    blank: int
    topology: str


def export_npz(fst, path: str | os.PathLike, num_tokens: int, blank: int, topology: str) -> DecodingGraph:
    """Write ``fst`` (a decoding graph with CTC-token inputs) as the ``.npz`` of the module docstring.

    The file is written atomically. Arcs are stably sorted by ilabel within each state (an
    input-label sorted FST, as :func:`~speechdecode.graphs.compile.compile_graph` makes, is kept as it is).

    Args:
        fst: a tropical FST, or its :class:`~speechdecode.graphs.fst_io.FstArrays` with the arcs of
            each state sorted by ilabel already (e.g. ``CompiledGraph.tlg_arrays``).
        path: the output file.
        num_tokens: V; blank: the blank's output index in [0, V); topology: T's kind.

    Returns:
        The :class:`DecodingGraph` written.

    Raises:
        InvalidArgumentError: an FST that is not a decoding graph (:func:`check_graph`: e.g. an
            ilabel outside 0..V, a ``#k`` left in, or no start state), or bad ``num_tokens`` /
            ``blank`` / ``topology``.
    """
    if not isinstance(num_tokens, (int, np.integer)) or num_tokens < 2:
        raise InvalidArgumentError("num_tokens", "an integer >= 2", num_tokens)
    if not isinstance(blank, (int, np.integer)) or not 0 <= blank < num_tokens:
        raise InvalidArgumentError("blank", f"an output index in [0, {num_tokens})", blank)
    if topology not in TOPOLOGIES:
        raise InvalidArgumentError("topology", f"one of {', '.join(TOPOLOGIES)}", repr(topology))
    if isinstance(fst, FstArrays):
        arrays = fst  # check_graph below refuses arcs out of order
    else:
        arrays = fst_to_arrays(fst)
    sorted_flag = openfst().FstProperties.I_LABEL_SORTED
    if arrays is not fst and fst.properties(sorted_flag, True) != sorted_flag:
        sources = np.repeat(np.arange(arrays.num_states, dtype=np.int64), np.diff(arrays.arc_offsets))
        order = np.lexsort((arrays.ilabels, sources))
        del sources
        for name in ("ilabels", "olabels", "weights", "nextstates"):
            setattr(arrays, name, getattr(arrays, name)[order])
    graph = DecodingGraph(**vars(arrays), num_tokens=int(num_tokens), blank=int(blank), topology=topology)
    try:
        check_graph(graph)
    except TensorError as exc:
        raise InvalidArgumentError("fst", f"a decoding graph ({exc.argument}: {exc.expected})", exc.actual) from None
    members = {name: getattr(graph, name) for name in ARRAY_DTYPES}
    members.update({name: np.int64(getattr(graph, name)) for name in _SCALARS}, topology=np.str_(topology))
    with atomic_write(path, "wb") as handle, zipfile.ZipFile(handle, "w", allowZip64=True) as archive:
        # np.savez's layout (a stored .npy member per array), without a bytes copy of each array
        for name, value in members.items():
            value = np.asarray(value)  # every array is C-contiguous; scalars stay 0-d
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(value))
                member.write(value.reshape(-1).view(np.uint8))
    return graph


def load_graph(path: str | os.PathLike) -> DecodingGraph:
    """Read a decoding graph: a ``.npz`` from :func:`export_npz`, or a graph directory holding ``TLG.npz``.

    Raises:
        InputFileError: not a readable .npz, a missing key, a wrong dtype or shape, or arrays that
            break a rule of :func:`check_graph` (the message names the file and the key).
        OSError: the file cannot be read.

    Example:
        >>> graph = load_graph("graph/")  # doctest: +SKIP
        >>> graph.arc_offsets.shape == (graph.num_states + 1,)  # doctest: +SKIP
        True
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, GRAPH_FILE)
    data = read_npz(path, "decoding graph")
    missing = sorted((set(ARRAY_DTYPES) | set(_SCALARS) | {"topology"}) - set(data))
    if missing:
        raise InputFileError(path, None, f"not a decoding graph: missing key(s) {', '.join(missing)}")
    fields = {}
    for name, dtype in ARRAY_DTYPES.items():
        value = data[name]
        if value.dtype != dtype or value.ndim != 1:
            raise InputFileError(path, None, f"{name}: expected 1-D {np.dtype(dtype)}, got {value.dtype} {value.shape}")
        fields[name] = value
    for name in _SCALARS:
        value = data[name]
        if value.shape != () or value.dtype != np.int64:
            raise InputFileError(path, None, f"{name}: expected an int64 scalar, got {value.dtype} {value.shape}")
        fields[name] = int(value)
    topology = data["topology"]
    if topology.shape != () or topology.dtype.kind != "U":
        raise InputFileError(path, None, f"topology: expected a str scalar, got {topology.dtype} {topology.shape}")
    if str(topology) not in TOPOLOGIES:
        raise InputFileError(path, None, f"topology: expected one of {', '.join(TOPOLOGIES)}, got {str(topology)!r}")
    graph = DecodingGraph(**fields, topology=str(topology))
    try:
        check_graph(graph)
    except TensorError as exc:
        raise InputFileError(path, None, str(exc)) from None
    return graph


def check_graph(graph: DecodingGraph) -> None:
    """Check a graph's arrays against every rule of the format (the module docstring).

    The one check there is (native: ``csrc/decoding/wfst_graph.h``), the one the WFST decoder
    runs too: lengths, offsets, labels, next states, costs, arcs sorted by ilabel, start, blank,
    ``num_tokens`` and no cycle of epsilon arcs.

    Raises:
        TensorError: naming the first array that breaks a rule, what it expects and what it holds.
        BackendUnavailableError: the native extension is not built.
    """
    _backend.native().check_graph(
        graph.start, graph.final_weights, graph.arc_offsets, graph.ilabels, graph.olabels, graph.weights,
        graph.nextstates, graph.num_tokens, graph.blank,
    )  # fmt: skip
