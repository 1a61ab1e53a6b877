"""CTC token topologies T: acoustic-model frames (with blanks and repeats) -> tokens.

Labels follow the graph's token table (:func:`speechdecode.graphs.symbols.token_table`): input
``i >= 1`` is acoustic-model output ``i - 1``, 0 is epsilon; outputs are the same ids, and the
disambiguation symbols ``#0 .. #k`` (ids V+1 ...) appear as outputs of ``<eps>:#k`` self-loops so
that T composes with an LG whose inputs still carry them.

* ``standard`` (EESEN / k2 ``ctc_topo``): a state per last-seen unit plus a blank state 0, all
  final. A frame of unit u from state s != u outputs u and moves to u; from u itself it outputs
  nothing (a repeat), so emitting u twice needs a blank between. O(V^2) arcs.
* ``compact`` (WeNet's default ``ctc_token_fst``): a hub state 0 (final, blank self-loop); unit u
  goes hub -> u outputting u, loops on u without output, and returns to the hub on epsilon.
  3(V-1)+1 arcs. A repeated unit may also be read as two units without a blank.
"""

from __future__ import annotations

import numpy as np

from speechdecode.errors import InvalidArgumentError
from speechdecode.graphs.fst_io import fst_from_arrays

__all__ = ["TOPOLOGIES", "ctc_topology"]

TOPOLOGIES = ("standard", "compact")


def ctc_topology(num_tokens: int, blank: int = 0, num_disambig: int = 1, topology: str = "compact"):
    """The CTC topology T as a ``pywrapfst.VectorFst`` (tropical, all weights 0).

    Args:
        num_tokens: V, the acoustic model's output size (blank included), >= 2.
        blank: the blank's output index in ``[0, V)`` (label ``blank + 1``).
        num_disambig: how many ``#k`` self-loops (output labels V+1 .. V+num_disambig).
        topology: ``"standard"`` or ``"compact"`` (module docstring).

    Raises:
        InvalidArgumentError: a bad size, blank, count or topology name.

    Example:
        >>> t = ctc_topology(3, blank=0, num_disambig=1, topology="compact")
        >>> t.num_states(), sum(t.num_arcs(s) for s in t.states())
        (3, 8)
    """
    if topology not in TOPOLOGIES:
        raise InvalidArgumentError("topology", f"one of {', '.join(TOPOLOGIES)}", repr(topology))
    if not isinstance(num_tokens, (int, np.integer)) or num_tokens < 2:
        raise InvalidArgumentError("num_tokens", "an integer >= 2 (the blank and at least one unit)", num_tokens)
    if not isinstance(blank, (int, np.integer)) or not 0 <= blank < num_tokens:
        raise InvalidArgumentError("blank", f"an output index in [0, {num_tokens})", blank)
    if not isinstance(num_disambig, (int, np.integer)) or num_disambig < 0:
        raise InvalidArgumentError("num_disambig", "an integer >= 0", num_disambig)
    labels = np.arange(1, num_tokens + 1, dtype=np.int64)
    blank_label = blank + 1
    units = labels[labels != blank_label]
    disambig = np.arange(num_tokens + 1, num_tokens + 1 + num_disambig, dtype=np.int64)
    n = len(units)
    if topology == "standard":
        # State 0: after a blank (or at the start); state k (1..n): the last unit was units[k-1].
        num_states = n + 1
        states = np.arange(num_states)
        src_u = np.repeat(states, n)
        dst_u = np.tile(np.arange(1, n + 1), num_states)
        repeat = src_u == dst_u
        src = np.concatenate([states, src_u, np.repeat(states, num_disambig)])
        dst = np.concatenate([np.zeros(num_states, np.int64), dst_u, np.repeat(states, num_disambig)])
        ilab = np.concatenate(
            [np.full(num_states, blank_label), units[dst_u - 1], np.zeros(num_states * num_disambig, np.int64)]
        )
        olab = np.concatenate(
            [np.zeros(num_states, np.int64), np.where(repeat, 0, units[dst_u - 1]), np.tile(disambig, num_states)]
        )
        finals = np.zeros(num_states)
    else:
        # State 0: the hub; state k (1..n): inside a run of units[k-1].
        num_states = n + 1
        unit_states = np.arange(1, n + 1)
        src = np.concatenate([[0], np.zeros(n, np.int64), unit_states, unit_states, np.zeros(num_disambig, np.int64)])
        dst = np.concatenate([[0], unit_states, unit_states, np.zeros(n, np.int64), np.zeros(num_disambig, np.int64)])
        ilab = np.concatenate([[blank_label], units, units, np.zeros(n + num_disambig, np.int64)])
        olab = np.concatenate([[0], units, np.zeros(2 * n, np.int64), disambig])
        finals = np.full(num_states, np.inf)
        finals[0] = 0.0
    return fst_from_arrays(0, finals, src, ilab, olab, np.zeros(len(src), np.float32), dst)
