"""Flat arrays <-> OpenFst FSTs, through OpenFst's own binary formats.

Building a large FST arc by arc from Python costs a call per arc; instead the arrays are laid
out as OpenFst's ``vector`` binary format with numpy and read back with ``Fst.read_from_string``
(:func:`fst_from_arrays`), and an FST is turned into arrays by converting it to the ``const``
format, whose states and arcs are two contiguous tables (:func:`fst_to_arrays`).

The layouts (OpenFst ``fst/vector-fst.h``, ``fst/const-fst.h``, ``fst/fst.h`` ``FstHeader``),
little-endian, for the ``standard`` (tropical, float32) arc type:

* header: int32 magic 2125659606, the FST type and arc type as int32-length strings, int32
  version, int32 flags, uint64 properties, int64 start, int64 number of states, int64 number of
  arcs;
* ``vector`` (version 2): per state, float32 final weight, int64 arc count, then its arcs as
  (int32 ilabel, int32 olabel, float32 weight, int32 nextstate);
* ``const`` (version 2): all states as (float32 final, uint32 first arc, uint32 arc count,
  uint32 input-epsilon count, uint32 output-epsilon count), then all arcs as above.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from speechdecode.errors import BackendUnavailableError, InvalidArgumentError

__all__ = ["FstArrays", "fst_from_arrays", "fst_to_arrays", "openfst"]

_MAGIC = 2125659606
_EXPANDED_MUTABLE = 0x3  # kExpanded | kMutable; every other property is left for OpenFst to compute
_IS_ALIGNED = 0x4
_ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])
_CONST_STATE = np.dtype(
    [("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("niepsilons", "<u4"), ("noepsilons", "<u4")]
)


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
    counts = np.bincount(arc_sources, minlength=num_states).astype(np.int64)
    # The body as 4-byte words: a state record is 3 words (final, arc count low, high), an arc 4.
    # State s's record follows s records and the arcs of states < s; arc a (in state order) follows
    # the records of states <= its source and a earlier arcs.
    first_arc = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    state_word = 3 * np.arange(num_states, dtype=np.int64) + 4 * first_arc
    body = np.empty(3 * num_states + 4 * len(order), dtype="<u4")
    body[state_word] = final_weights.astype("<f4").view("<u4")
    body[state_word + 1] = (counts & 0xFFFFFFFF).astype("<u4")
    body[state_word + 2] = (counts >> 32).astype("<u4")
    arc_word = 3 * (arc_sources[order] + 1) + 4 * np.arange(len(order), dtype=np.int64)
    body[arc_word] = np.asarray(ilabels, dtype="<i4")[order].view("<u4")
    body[arc_word + 1] = np.asarray(olabels, dtype="<i4")[order].view("<u4")
    body[arc_word + 2] = np.asarray(weights, dtype="<f4")[order].view("<u4")
    body[arc_word + 3] = np.asarray(nextstates, dtype="<i4")[order].view("<u4")
    data = _header(b"vector", start, num_states, 0) + body.tobytes()
    return openfst().Fst.read_from_string(data)


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    (size,) = struct.unpack_from("<i", data, offset)
    return data[offset + 4 : offset + 4 + size], offset + 4 + size


def fst_to_arrays(fst) -> FstArrays:
    """The states and arcs of a tropical (``standard``) FST as :class:`FstArrays`.

    Arcs keep OpenFst's order within each state (arcsort the FST first for sorted arcs).

    Raises:
        InvalidArgumentError: an FST whose arc type is not ``standard``.

    Example:
        >>> arrays = fst_to_arrays(fst_from_arrays(0, [0.0], [0], [1], [2], [0.5], [0]))
        >>> arrays.ilabels.tolist(), arrays.final_weights.tolist()
        ([1], [0.0])
    """
    if fst.arc_type() != "standard":
        raise InvalidArgumentError("fst", "an FST with standard (tropical float32) arcs", fst.arc_type())
    data = openfst().convert(fst, "const").write_to_string()
    (magic,) = struct.unpack_from("<i", data, 0)
    fst_type, offset = _read_string(data, 4)
    arc_type, offset = _read_string(data, offset)
    version, flags, _, start, num_states, num_arcs = struct.unpack_from("<iiQqqq", data, offset)
    offset += struct.calcsize("<iiQqqq")
    if (magic, fst_type, arc_type, version) != (_MAGIC, b"const", b"standard", 2) or flags & _IS_ALIGNED:
        raise InvalidArgumentError(
            "fst", "OpenFst's const format version 2, unaligned", (magic, fst_type, arc_type, version, flags)
        )
    states = np.frombuffer(data, dtype=_CONST_STATE, count=num_states, offset=offset)
    arcs = np.frombuffer(data, dtype=_ARC, count=num_arcs, offset=offset + _CONST_STATE.itemsize * num_states)
    offsets = np.empty(num_states + 1, dtype=np.int64)
    offsets[0] = 0
    np.cumsum(states["narcs"], out=offsets[1:])
    if not np.array_equal(states["pos"], offsets[:-1]):
        raise InvalidArgumentError("fst", "a const FST whose states' arcs are stored in state order", "another layout")
    return FstArrays(
        start=int(start),
        final_weights=states["final"].copy(),
        arc_offsets=offsets,
        ilabels=arcs["ilabel"].copy(),
        olabels=arcs["olabel"].copy(),
        weights=arcs["weight"].copy(),
        nextstates=arcs["nextstate"].copy(),
    )
