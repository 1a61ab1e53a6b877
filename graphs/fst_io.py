"""Flat arrays <-> OpenFst FSTs, through OpenFst's own binary format.

Building a large FST arc by arc from Python costs a call per arc; instead the arrays are laid
out as OpenFst's ``vector`` binary format with numpy and read back with ``Fst.read_from_string``
(:func:`fst_from_arrays`). The other way, an FST written in that format is read back in chunks of
states into preallocated arrays (:func:`fst_to_arrays`, :func:`read_vector_arrays`): with each
state's arc count (one cheap call per state), every state record and arc has a known position.

The layout (OpenFst ``fst/vector-fst.h``, ``fst/fst.h`` ``FstHeader``), little-endian, for the
``standard`` (tropical, float32) arc type:

* header: int32 magic 2125659606, the FST type and arc type as int32-length strings, int32
  version, int32 flags, uint64 properties, int64 start, int64 number of states, int64 number of
  arcs; then the symbol tables the flags announce;
* ``vector`` (version 2): per state, float32 final weight, int64 arc count, then its arcs as
  (int32 ilabel, int32 olabel, float32 weight, int32 nextstate); the states end the file.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import tempfile

import numpy as np

from speechdecode.errors import BackendUnavailableError, InvalidArgumentError

__all__ = [
    "FstArrays",
    "fst_from_arrays",
    "fst_from_csr",
    "fst_to_arrays",
    "openfst",
    "read_vector_arrays",
    "write_vector_arrays",
]

_MAGIC = 2125659606
_EXPANDED_MUTABLE = 0x3  # kExpanded | kMutable; every other property is left for OpenFst to compute
_ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])
_STATE_WORDS, _ARC_WORDS = 3, 4  # a vector state record (final, arc count low, high) and an arc, in 4-byte words
_CHUNK_WORDS = 1 << 18  # the file is read about 1 MB at a time (a state with more arcs at once)


def openfst():
    """The ``pywrapfst`` module (OpenFst's Python binding, bundled with pynini).

    Raises:
        BackendUnavailableError: pynini is not installed.
    """
    try:
        import pywrapfst
    except ImportError:
        raise BackendUnavailableError("graphs/ needs OpenFst's Python wrapper: pip install pynini") from None
    return pywrapfst


@dataclasses.dataclass
class FstArrays:
    """An FST as CSR arrays (tropical weights, +inf = not final).

    Attributes:
        start: the start state (-1 for an FST without states).
        final_weights: float32 [S].
        arc_offsets: int64 [S + 1]; the arcs of state s are ``arc_offsets[s]:arc_offsets[s + 1]``.
        ilabels, olabels: int32 [A].
        weights: float32 [A].
        nextstates: int32 [A].
    """

    start: int
    final_weights: np.ndarray
    arc_offsets: np.ndarray
    ilabels: np.ndarray
    olabels: np.ndarray
    weights: np.ndarray
    nextstates: np.ndarray

    @property
    def num_states(self) -> int:
        return len(self.final_weights)

    @property
    def num_arcs(self) -> int:
        return len(self.ilabels)


def _header(fst_type: bytes, start: int, num_states: int, num_arcs: int) -> bytes:
    arc_type = b"standard"
    return b"".join(
        [
            struct.pack("<ii", _MAGIC, len(fst_type)),
            fst_type,
            struct.pack("<i", len(arc_type)),
            arc_type,
            struct.pack("<iiQqqq", 2, 0, _EXPANDED_MUTABLE, start, num_states, num_arcs),
        ]
    )


def fst_from_arrays(
    start: int,
    final_weights: np.ndarray,
    arc_sources: np.ndarray,
    ilabels: np.ndarray,
    olabels: np.ndarray,
    weights: np.ndarray,
    nextstates: np.ndarray,
):
    """A ``pywrapfst.VectorFst`` (tropical) with the given states and arcs.

    Arcs are given as parallel arrays with their source state; within a state they keep their
    given order (a stable sort by source is applied).

    Args:
        start: the start state, in ``[0, S)``.
        final_weights: float [S], +inf where a state is not final.
        arc_sources, ilabels, olabels, nextstates: integer [A]; labels >= 0, states in ``[0, S)``.
        weights: float [A].

    Raises:
        InvalidArgumentError: mismatched lengths, a state outside ``[0, S)`` or a negative label.

    Example:
        >>> f = fst_from_arrays(0, np.array([np.inf, 0.0]), [0], [3], [3], [0.5], [1])
        >>> f.num_states(), f.num_arcs(0)
        (2, 1)
    """
    final_weights = np.asarray(final_weights, dtype=np.float32)
    num_states = len(final_weights)
    columns = {"ilabels": ilabels, "olabels": olabels, "weights": weights, "nextstates": nextstates}
    arc_sources = np.asarray(arc_sources, dtype=np.int64)
    for name, values in columns.items():
        if np.shape(values) != arc_sources.shape:
            raise InvalidArgumentError(name, f"shape {arc_sources.shape} (one value per arc)", np.shape(values))
    if not 0 <= start < num_states:
        raise InvalidArgumentError("start", f"a state in [0, {num_states})", start)
    for name, values in (("arc_sources", arc_sources), ("nextstates", nextstates)):
        values = np.asarray(values)
        if len(values) and (values.min() < 0 or values.max() >= num_states):
            raise InvalidArgumentError(name, f"states in [0, {num_states})", f"[{values.min()}, {values.max()}]")
    for name in ("ilabels", "olabels"):
        if len(columns[name]) and np.min(columns[name]) < 0:
            raise InvalidArgumentError(name, "labels >= 0", int(np.min(columns[name])))
    order = np.argsort(arc_sources, kind="stable")
    offsets = np.zeros(num_states + 1, dtype=np.int64)
    np.cumsum(np.bincount(arc_sources, minlength=num_states), out=offsets[1:])
    arrays = FstArrays(
        start=int(start),
        final_weights=final_weights,
        arc_offsets=offsets,
        ilabels=np.asarray(ilabels, dtype=np.int32)[order],
        olabels=np.asarray(olabels, dtype=np.int32)[order],
        weights=np.asarray(weights, dtype=np.float32)[order],
        nextstates=np.asarray(nextstates, dtype=np.int32)[order],
    )
    return fst_from_csr(arrays)


def fst_from_csr(arrays: FstArrays):
    """A ``pywrapfst.VectorFst`` (tropical) of :class:`FstArrays`, arcs in their order (no checks:
    the arrays come from :func:`fst_to_arrays`, :func:`fst_from_arrays` or the native steps).

    Example:
        >>> f = fst_from_csr(fst_to_arrays(fst_from_arrays(0, [0.0], [0], [1], [2], [0.5], [0])))
        >>> f.num_states(), f.num_arcs(0)
        (1, 1)
    """
    if arrays.num_states == 0:
        return openfst().VectorFst()
    body = _vector_body(arrays, 0, arrays.num_states)
    return openfst().Fst.read_from_string(b"".join([_header(b"vector", arrays.start, arrays.num_states, 0), body.data]))


def write_vector_arrays(handle, arrays: FstArrays) -> None:
    """Write :class:`FstArrays` (with states) to ``handle`` as OpenFst's ``vector`` binary file,
    what ``fst_from_csr(arrays).write(path)`` writes up to the header's properties (left for
    OpenFst to compute) and arc count. Written in chunks of states: the memory used is a chunk's."""
    handle.write(_header(b"vector", arrays.start, arrays.num_states, arrays.num_arcs))
    offsets, first = arrays.arc_offsets, 0
    while first < arrays.num_states:
        last = int(np.searchsorted(offsets, offsets[first] + _CHUNK_WORDS // _ARC_WORDS, side="right")) - 1
        last = max(min(last, arrays.num_states, first + _CHUNK_WORDS // _STATE_WORDS), first + 1)
        handle.write(_vector_body(arrays, first, last).data)
        first = last


def _vector_body(arrays: FstArrays, first: int, last: int) -> np.ndarray:
    """States ``first .. last - 1`` in OpenFst's ``vector`` format, as 4-byte words (module docstring)."""
    offsets = arrays.arc_offsets[first : last + 1] - arrays.arc_offsets[first]
    lo, hi = int(arrays.arc_offsets[first]), int(arrays.arc_offsets[last])
    num_states, num_arcs = last - first, hi - lo
    counts = np.diff(offsets)
    # A state record is 3 words (final, arc count low, high), an arc 4. State s's record follows
    # s records and the arcs of states < s; arc a (in state order) follows the records of states
    # <= its source and a earlier arcs.
    state_word = 3 * np.arange(num_states, dtype=np.int64) + 4 * offsets[:-1]
    body = np.empty(3 * num_states + 4 * num_arcs, dtype="<u4")
    body[state_word] = arrays.final_weights[first:last].astype("<f4", copy=False).view("<u4")
    body[state_word + 1] = (counts & 0xFFFFFFFF).astype("<u4")
    body[state_word + 2] = (counts >> 32).astype("<u4")
    arc_word = 3 * np.repeat(np.arange(1, num_states + 1, dtype=np.int64), counts)
    del counts, state_word
    arc_word += 4 * np.arange(num_arcs, dtype=np.int64)
    body[arc_word] = arrays.ilabels[lo:hi].view("<u4")
    body[arc_word + 1] = arrays.olabels[lo:hi].view("<u4")
    body[arc_word + 2] = arrays.weights[lo:hi].view("<u4")
    body[arc_word + 3] = arrays.nextstates[lo:hi].view("<u4")
    return body


def fst_to_arrays(fst) -> FstArrays:
    """The states and arcs of a tropical (``standard``) FST as :class:`FstArrays`.

    Arcs keep OpenFst's order within each state (arcsort the FST first for sorted arcs). A ``log``
    FST is read too, as the tropical FST ``arcmap(fst, map_type="to_std")`` would give: both store
    a weight as the same float32 cost, so the conversion is skipped.

    Raises:
        InvalidArgumentError: an FST whose arc type is neither ``standard`` nor ``log``.

    Example:
        >>> arrays = fst_to_arrays(fst_from_arrays(0, [0.0], [0], [1], [2], [0.5], [0]))
        >>> arrays.ilabels.tolist(), arrays.final_weights.tolist()
        ([1], [0.0])
    """
    if fst.arc_type() not in ("standard", "log"):
        raise InvalidArgumentError("fst", "an FST with standard (tropical) or log float32 arcs", fst.arc_type())
    if fst.fst_type() != "vector":
        fst = openfst().convert(fst, "vector")
    # Through a temporary file, read a chunk at a time: never a second copy of the FST in memory.
    with tempfile.TemporaryDirectory(prefix="speechdecode-fst-") as folder:
        path = os.path.join(folder, "fst")
        fst.write(path)
        with open(path, "rb") as handle:
            return read_vector_arrays(handle, fst)


def read_vector_arrays(handle, fst) -> FstArrays:
    """:class:`FstArrays` of ``fst`` from its ``vector`` binary file (``fst.write(path)``) open in ``handle``.

    Reads the file in chunks of states straight into the arrays, so the memory used is the
    arrays' and a chunk's, never a second copy of the FST. ``fst`` gives each state's arc count.

    Raises:
        InvalidArgumentError: the file is not ``fst`` in OpenFst's ``vector`` format, version 2,
            with its arcs, standard or log (naming what differs).
    """
    counts = np.fromiter(map(fst.num_arcs, range(fst.num_states())), dtype=np.int64, count=fst.num_states())
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    del counts
    num_states, num_arcs = len(offsets) - 1, int(offsets[-1])
    handle.seek(0)
    header = handle.read(256)
    (magic,) = struct.unpack_from("<i", header, 0)
    fst_type, offset = _read_string(header, 4)
    arc_type, offset = _read_string(header, offset)
    version, _, _, start, states_in_header, _ = struct.unpack_from("<iiQqqq", header, offset)
    found = (magic, fst_type, arc_type, version, states_in_header)
    arcs = fst.arc_type().encode()
    if found != (_MAGIC, b"vector", arcs, 2, num_states) or arcs not in (b"standard", b"log"):
        expected = (_MAGIC, b"vector", arcs if arcs == b"log" else b"standard", 2, num_states)
        raise InvalidArgumentError(
            "fst", f"OpenFst's vector format (magic, type, arcs, version, states) {expected}", found
        )
    # The states end the file: its header and any symbol tables are what comes before them.
    body_words = _STATE_WORDS * num_states + _ARC_WORDS * num_arcs
    body = handle.seek(0, os.SEEK_END) - 4 * body_words
    if body < offset + struct.calcsize("<iiQqqq"):
        raise InvalidArgumentError(
            "fst", f"a vector FST file with {num_arcs} arcs after its header", f"{body + 4 * body_words} bytes"
        )
    arrays = FstArrays(
        start=int(start),
        final_weights=np.empty(num_states, dtype=np.float32),
        arc_offsets=offsets,
        ilabels=np.empty(num_arcs, dtype=np.int32),
        olabels=np.empty(num_arcs, dtype=np.int32),
        weights=np.empty(num_arcs, dtype=np.float32),
        nextstates=np.empty(num_arcs, dtype=np.int32),
    )
    first = 0
    while first < num_states:  # states first..last-1: at most 2 * _CHUNK_WORDS words, at least one state
        last = int(np.searchsorted(offsets, offsets[first] + _CHUNK_WORDS // _ARC_WORDS, side="right")) - 1
        last = max(min(last, num_states, first + _CHUNK_WORDS // _STATE_WORDS), first + 1)
        at = _STATE_WORDS * np.arange(last - first) + _ARC_WORDS * (offsets[first:last] - offsets[first])
        begin = _STATE_WORDS * first + _ARC_WORDS * int(offsets[first])
        end = _STATE_WORDS * last + _ARC_WORDS * int(offsets[last])
        words = np.empty(end - begin, dtype="<u4")
        handle.seek(body + 4 * begin)
        if handle.readinto(words) != words.nbytes:
            raise InvalidArgumentError("fst", f"a vector FST file of {body + 4 * body_words} bytes", "a shorter file")
        written = words[at + 1].astype(np.int64) | (words[at + 2].astype(np.int64) << 32)
        if not np.array_equal(written, np.diff(offsets[first : last + 1])):
            raise InvalidArgumentError("fst", "a vector FST file with the FST's arc counts", "other counts")
        arrays.final_weights[first:last] = words[at].view("<f4")
        is_arc = np.ones(len(words), dtype=bool)
        for k in range(_STATE_WORDS):
            is_arc[at + k] = False
        arcs = words[is_arc].view(_ARC)
        lo, hi = offsets[first], offsets[last]
        arrays.ilabels[lo:hi] = arcs["ilabel"]
        arrays.olabels[lo:hi] = arcs["olabel"]
        arrays.weights[lo:hi] = arcs["weight"]
        arrays.nextstates[lo:hi] = arcs["nextstate"]
        first = last
    return arrays


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    (size,) = struct.unpack_from("<i", data, offset)
    return data[offset + 4 : offset + 4 + size], offset + 4 + size
