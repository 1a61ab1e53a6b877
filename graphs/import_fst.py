"""Decoding graphs users already have: an OpenFst TLG (binary, any tropical FST type) as flat arrays.

Label convention (the one ``graphs`` compiles with, and WeNet's): input label 0 is epsilon and
input label i >= 1 is acoustic-model output i - 1, so ``tokens.txt`` has ``<eps>`` at id 0 and the
acoustic tokens at ids 1..V in output order (disambiguation symbols ``#k``, if listed, after
them, and absent from the graph); output labels are ids of ``words.txt`` (0 = no word). Tables
with the blank at id 0 (k2 / icefall) are refused with a message saying so.

    >>> graph, words, tokens = import_fst("exp/TLG.fst")  # tokens.txt, words.txt beside it  # doctest: +SKIP
    >>> write_graph_dir(graph, words, tokens, "graph")  # graph/TLG.npz, words.txt, tokens.txt  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from speechdecode._io import atomic_write
from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError
from speechdecode.graphs.export import ARRAY_DTYPES, GRAPH_FILE, DecodingGraph, check_graph, load_graph
from speechdecode.graphs.fst_io import fst_to_arrays, openfst
from speechdecode.graphs.symbols import SymbolTable, is_disambig

__all__ = ["BLANK_NAMES", "FST_MAGIC", "import_fst", "is_openfst_file", "write_graph_dir"]

FST_MAGIC = (2125659606).to_bytes(4, "little")
EPSILON_NAMES = ("<eps>", "<epsilon>")
BLANK_NAMES = ("<blk>", "<blank>", "<b>", "<pad>", "-")
# An imported graph's T is not known; the .npz records the usual CTC topology (the decoder reads
# only the arcs, whatever T was).
TOPOLOGY = "standard"


def is_openfst_file(path: str | os.PathLike) -> bool:
    """Whether the file starts with OpenFst's binary magic number."""
    with open(path, "rb") as handle:
        return handle.read(4) == FST_MAGIC


def _acoustic_tokens(tokens: SymbolTable, path: str) -> int:
    """V: the tokens at ids 1..V, checked against the label convention."""
    first = tokens.symbol(0)
    if first not in EPSILON_NAMES:
        raise InputFileError(
            path, None,
            f"id 0 is {first!r}, expected <eps>: input label 0 is epsilon and label i >= 1 is acoustic output "
            "i - 1 (a table with the blank at id 0, as k2 / icefall write it, needs every id shifted by 1)",
        )  # fmt: skip
    symbols = tokens.symbols[1:]
    acoustic = [s for s in symbols if not is_disambig(s)]
    if symbols[: len(acoustic)] != acoustic:
        raise InputFileError(path, None, "disambiguation symbols (#k) must come after every acoustic token")
    return len(acoustic)


def import_fst(
    path: str | os.PathLike,
    tokens: str | os.PathLike | SymbolTable | None = None,
    words: str | os.PathLike | SymbolTable | None = None,
    blank: int | str | None = None,
) -> tuple[DecodingGraph, SymbolTable | None, SymbolTable]:
    """Read an OpenFst decoding graph and its tables as the WFST decoder's arrays.

    Args:
        path: the FST file (OpenFst binary; ``vector``, ``const`` or any type pywrapfst reads).
        tokens: the token table; default ``tokens.txt`` beside the FST.
        words: the word table; default ``words.txt`` beside the FST (None when there is none).
        blank: the blank, as an acoustic index or a ``tokens.txt`` symbol; default the first of
            ``<blk>, <blank>, <b>, <pad>, -`` in the table.

    Returns:
        (arrays with arcs sorted by input label, the word table, the token table).

    Raises:
        InputFileError: a missing table, a token table off the label convention, an input label
            beyond the acoustic tokens (naming it and its symbol), an output label beyond words.txt,
            a file that is not an OpenFst FST, arcs that break a rule of
            :func:`~speechdecode.graphs.export.check_graph` (e.g. no start state).
        InvalidArgumentError: a blank that is not a token.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    tokens_path = os.path.join(folder, "tokens.txt") if tokens is None else tokens
    if not isinstance(tokens_path, SymbolTable) and not os.path.isfile(tokens_path):
        raise InputFileError(path, None, f"no token table: expected {tokens_path} (or pass tokens=)")
    table = tokens_path if isinstance(tokens_path, SymbolTable) else SymbolTable.read(tokens_path)
    where = "tokens" if isinstance(tokens_path, SymbolTable) else os.fspath(tokens_path)
    num_tokens = _acoustic_tokens(table, where)
    words_path = os.path.join(folder, "words.txt") if words is None else words
    word_table = None
    if isinstance(words_path, SymbolTable):
        word_table = words_path
    elif os.path.isfile(words_path):
        word_table = SymbolTable.read(words_path)
    blank_id = _blank(blank, table, num_tokens)
    if not is_openfst_file(path):
        raise InputFileError(path, None, "not an OpenFst binary FST (no OpenFst magic number)")
    arrays = fst_to_arrays(openfst().Fst.read(path))
    if arrays.num_arcs and int(arrays.ilabels.max()) > num_tokens:
        label = int(arrays.ilabels.max())
        name = table.symbol(label) if label < len(table) else "not in the table"
        raise InputFileError(
            path, None,
            f"input label {label} ({name}) exceeds the {num_tokens} acoustic tokens of {where} "
            "(labels are token id = acoustic output + 1; remove disambiguation symbols with fstrmsymbols)",
        )  # fmt: skip
    if word_table is not None and arrays.num_arcs and int(arrays.olabels.max()) >= len(word_table):
        raise InputFileError(
            path, None, f"output label {int(arrays.olabels.max())} exceeds the {len(word_table)} words of words.txt"
        )
    sources = np.repeat(np.arange(arrays.num_states, dtype=np.int64), np.diff(arrays.arc_offsets))
    order = np.lexsort((arrays.ilabels, sources))
    graph = DecodingGraph(
        start=arrays.start, final_weights=arrays.final_weights, arc_offsets=arrays.arc_offsets,
        ilabels=arrays.ilabels[order], olabels=arrays.olabels[order], weights=arrays.weights[order],
        nextstates=arrays.nextstates[order], num_tokens=num_tokens, blank=blank_id, topology=TOPOLOGY,
    )  # fmt: skip
    try:
        check_graph(graph)
    except TensorError as exc:
        raise InputFileError(path, None, str(exc)) from None
    return graph, word_table, table


def _blank(blank, tokens: SymbolTable, num_tokens: int) -> int:
    if blank is None:
        found = [name for name in BLANK_NAMES if name in tokens and 1 <= tokens.id(name) <= num_tokens]
        if not found:
            expected = f"a blank named one of {list(BLANK_NAMES)} in tokens.txt, or blank="
            raise InvalidArgumentError("blank", expected, f"none in {tokens.symbols[:8]}")
        return tokens.id(found[0]) - 1
    if isinstance(blank, str):
        if blank not in tokens or not 1 <= tokens.id(blank) <= num_tokens:
            raise InvalidArgumentError("blank", "an acoustic token of tokens.txt", repr(blank))
        return tokens.id(blank) - 1
    if isinstance(blank, bool) or not isinstance(blank, int) or not 0 <= blank < num_tokens:
        raise InvalidArgumentError("blank", f"an acoustic index in [0, {num_tokens}) or a token", repr(blank))
    return blank


def write_graph_dir(
    graph: DecodingGraph, words: SymbolTable | None, tokens: SymbolTable, out: str | os.PathLike
) -> list[str]:
    """Write ``TLG.npz`` (the decoder's arrays, read back and checked), ``tokens.txt`` and ``words.txt``
    (when there is one) into the directory ``out`` (made if missing); returns the paths written."""
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    npz = os.path.join(out, GRAPH_FILE)
    with atomic_write(npz, "wb") as handle:
        np.savez(
            handle,
            **{name: np.asarray(getattr(graph, name), dtype=dtype) for name, dtype in ARRAY_DTYPES.items()},
            **{name: np.int64(getattr(graph, name)) for name in ("start", "num_tokens", "blank")},
            topology=np.str_(graph.topology),
        )
    load_graph(npz)
    written = [npz]
    for name, table in (("tokens.txt", tokens), ("words.txt", words)):
        if table is not None:
            written.append(os.path.join(out, name))
            table.write(written[-1])
    return written
