"""TLG compilation (docs/DEFINITIONS.md section 2, the EESEN / WeNet / FunASR recipe).

    LG  = arcsort(minimize_encoded(determinize_log(compose(L, G))))
    TLG = arcsort(compose(T, LG))

L∘G and its determinization are OpenFst's. The two steps after it are native (``csrc/graphs/
fst_ops.h``) and give results isomorphic to OpenFst's: ``minimize_encoded`` is Hopcroft's
partition refinement of LG as an acceptor over (input, output, weight) triples, and T∘LG is built
directly as the product of the CTC topology with LG (the states OpenFst's composition keeps when LG
has no input epsilons; with optional silence LG can have them, and OpenFst composes). Both return
arcs sorted by input label, so the arcsorts cost nothing.

``determinize_log`` determinizes in the log semiring (Kaldi's ``fstdeterminizestar --use-log``
role: sums, not minima, of equal-label paths, so LG stays stochastic); ``minimize_encoded``
minimizes LG as an acceptor over (input, output, weight) triples, with no weight pushing. T's
``#k`` self-loops read epsilon, so TLG's input labels are epsilon and acoustic units only; LG
keeps its ``#k`` inputs (for composing with another T).

Each step is timed and reports its result's states and arcs and the process's peak resident
memory so far. ``max_arcs`` estimates the two compositions' sizes before running them and stops
with :class:`GraphCompileError` instead of exhausting memory; the actual sizes are checked too.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import os
import resource
import time

import numpy as np

from speechdecode import _backend
from speechdecode._io import atomic_directory
from speechdecode.errors import InvalidArgumentError, SpeechdecodeError
from speechdecode.graphs.fst_io import FstArrays, fst_from_csr, fst_to_arrays, openfst, write_vector_arrays
from speechdecode.graphs.grammar import grammar_fst
from speechdecode.graphs.lexicon import Lexicon, read_lexicon
from speechdecode.graphs.lexicon_fst import disambiguate, lexicon_fst
from speechdecode.graphs.symbols import SymbolTable, acoustic_units, is_disambig, token_table, word_table
from speechdecode.graphs.topology import TOPOLOGIES, ctc_topology

pywrapfst = openfst()

__all__ = [
    "CompileStep",
    "CompiledGraph",
    "GraphCompileError",
    "check_output_dir",
    "compile_graph",
    "compose_ctc",
    "compose_lg",
    "compose_tlg",
    "minimize_encoded",
    "num_arcs",
]


class GraphCompileError(SpeechdecodeError, RuntimeError):
    """A graph could not be compiled: too large for ``max_arcs``, or L∘G not determinizable."""


@dataclasses.dataclass(frozen=True)
class CompileStep:
    """One step of a compilation: its name, wall time, result size and peak RSS so far (MB)."""

    name: str
    seconds: float
    states: int
    arcs: int
    peak_rss_mb: float


def num_arcs(fst) -> int:
    """Total number of arcs of an FST (states are numbered 0..n-1 in OpenFst's expanded FSTs)."""
    return sum(map(fst.num_arcs, range(fst.num_states())))


def _release_free_heap() -> None:
    """Give freed heap back to the OS (glibc's ``malloc_trim``): what parsing the ARPA file or LG left.

    The parse leaves ~150 MB of free but fragmented heap on a 500k n-gram LM, LG as much; large
    allocations (OpenFst's and numpy's) are mmapped and cannot reuse it, so without this it adds
    to the compile's peak RSS. A no-op where the C library has no ``malloc_trim``.
    """
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Steps:
    def __init__(self, steps: list[CompileStep] | None):
        self.steps = steps if steps is not None else []

    def record(self, name: str, started: float, fst, *, resized: bool = True) -> None:
        """Append a step (``fst`` an FST or :class:`FstArrays`); ``resized=False`` (an arcsort)
        takes the sizes of the step before."""
        seconds = time.perf_counter() - started
        if not resized:
            states, arcs = self.steps[-1].states, self.steps[-1].arcs
        elif isinstance(fst, FstArrays):
            states, arcs = fst.num_states, fst.num_arcs
        else:
            states, arcs = fst.num_states(), num_arcs(fst)
        self.steps.append(CompileStep(name, seconds, states, arcs, _peak_rss_mb()))


def _check_size(what: str, arcs: int, max_arcs: int | None, estimated: bool) -> None:
    if max_arcs is not None and arcs > max_arcs:
        verb = "would have about" if estimated else "has"
        raise GraphCompileError(
            f"{what} {verb} {arcs:,} arcs, more than max_arcs={max_arcs:,}; raise --max-arcs if the memory "
            "allows, or use a smaller (pruned) LM"
        )


def _estimate_l_arcs(lexicon: Lexicon, silence: bool) -> int:
    """An upper bound of |L| arcs, from the pronunciations alone: a token arc per token, a ``#k``
    arc, and (with optional silence) a silence and a skip arc per pronunciation, plus the loops."""
    tokens = sum(len(pron.tokens) + 1 for _, pron in lexicon.entries())
    return tokens + (2 * len(lexicon) if silence else 0) + 4


def _estimate_lg_arcs(lexicon: Lexicon, words: SymbolTable, G, silence: bool) -> int:
    """|L∘G| arcs: each G word arc meets each first arc of its word's pronunciations; the rest of a
    pronunciation is shared by all G arcs with the same word and destination. Exact without
    silence; with it, an upper bound."""
    entries, _ = disambiguate(lexicon)
    first = np.zeros(len(words), dtype=np.int64)
    rest = np.zeros(len(words), dtype=np.int64)
    for entry in entries:
        w = words.id(entry.word)
        first[w] += 1
        rest[w] += len(entry.tokens) - 1 + (entry.disambig > 0) + silence
    g = fst_to_arrays(G)
    backoff = g.ilabels == words.id("#0")
    word_arcs = ~backoff
    pairs = np.unique(g.ilabels[word_arcs].astype(np.int64) * (g.num_states + 1) + g.nextstates[word_arcs])
    return int(first[g.ilabels[word_arcs]].sum() + rest[pairs // (g.num_states + 1)].sum() + backoff.sum()) + (
        3 * g.num_states if silence else 0
    )


def _estimate_tlg_arcs(LG, num_tokens: int, topology: str) -> int:
    """|T∘LG| arcs from LG's arcs (an FST or :class:`FstArrays`): per LG state, the units that can
    have led into it (T's state).

    Exact for the compact topology; for the standard one it leaves out T states carried through
    LG's ``#k`` arcs (about 5-10% fewer arcs than the result on phone lexicons)."""
    lg = LG if isinstance(LG, FstArrays) else fst_to_arrays(LG)
    sources = np.repeat(np.arange(lg.num_states), np.diff(lg.arc_offsets))
    token = (lg.ilabels > 0) & (lg.ilabels <= num_tokens)
    pairs = np.unique(lg.ilabels[token].astype(np.int64) * lg.num_states + lg.nextstates[token])
    into = np.bincount(pairs % lg.num_states, minlength=lg.num_states)
    if topology == "compact":
        return lg.num_arcs + 2 * len(pairs) + lg.num_states
    out = np.bincount(sources, minlength=lg.num_states)
    return int(((1 + into) * (out + 1) + into).sum())


def compose_lg(L, G, *, max_arcs: int | None = None, steps: list[CompileStep] | None = None):
    """LG = arcsort(minimize_encoded(determinize_log(compose(L, G)))), as a new tropical FST.

    Args:
        L: the lexicon FST (input tokens, output words), e.g. from :func:`lexicon_fst`.
        G: the grammar FST (words), e.g. ``grammar_fst(...).fst``.
        max_arcs: stop when a result has more arcs.
        steps: a list that receives a :class:`CompileStep` per step.

    Raises:
        GraphCompileError: L∘G is not functional, so not determinizable (the message explains:
            homophones or prefix pronunciations without disambiguation symbols), or a result
            larger than ``max_arcs``.
    """
    return fst_from_csr(_compose_lg([L.copy(), G.copy()], _Steps(steps), max_arcs))


def _compose_lg(owned: list, record: _Steps, max_arcs: int | None) -> FstArrays:
    """:func:`compose_lg` on ``owned = [L, G]``, FSTs nothing else holds, as arrays: the list is
    emptied, L and G are arc-sorted in place and freed once composed, and each intermediate is
    freed as soon as the next exists, so the peak memory is that of one step."""
    L, G = owned
    owned.clear()
    started = time.perf_counter()
    L.arcsort("olabel")
    G.arcsort("ilabel")
    lg = pywrapfst.compose(L, G)
    del L, G
    record.record("compose(L,G)", started, lg)
    _check_size("L∘G", record.steps[-1].arcs, max_arcs, False)
    started = time.perf_counter()
    log = pywrapfst.arcmap(lg, map_type="to_log")
    del lg
    try:
        det = pywrapfst.determinize(log)
    except pywrapfst.FstOpError:
        raise GraphCompileError(
            "L∘G is not determinizable: some token sequence maps to two different word sequences (it is "
            "not functional). This happens when homophones or pronunciations that are prefixes of others "
            "lack disambiguation symbols #1, #2, ... at their ends (lexicon_fst adds them unless "
            "disambig=False), or when G's back-off arcs are not labelled #0."
        ) from None
    del log
    _release_free_heap()  # what the determinization freed: the arrays below are mmapped, not heap
    det_fst = det
    det = fst_to_arrays(det_fst)  # log arcs read as tropical ones (fst_to_arrays): no arcmap to_std
    del det_fst
    _release_free_heap()
    record.record("determinize_log", started, det)
    _check_size("det(L∘G)", record.steps[-1].arcs, max_arcs, False)
    started = time.perf_counter()
    lg = minimize_encoded(det)
    del det
    record.record("minimize_encoded", started, lg)
    return lg


def _columns(fst: FstArrays) -> tuple:
    return (fst.start, fst.final_weights, fst.arc_offsets, fst.ilabels, fst.olabels, fst.weights, fst.nextstates)


def minimize_encoded(fst: FstArrays) -> FstArrays:
    """OpenFst's minimization of ``fst`` encoded as an acceptor over (input, output, weight), final
    weights included, decoded again (``EncodeMapper(encode_labels=True, encode_weights=True)``,
    ``minimize``, ``decode``), natively: a result isomorphic to OpenFst's, arcs sorted by input label.

    Weights are compared exactly, as OpenFst's encoding compares them; nothing is pushed.

    Raises:
        TensorError: ``fst`` is not deterministic over the triples (two arcs of a state with the
            same input, output and weight), or its arrays are not an FST.
    """
    return FstArrays(*_backend.native().minimize_encoded(*_columns(fst)))


def compose_ctc(lg: FstArrays, num_tokens: int, blank: int, num_disambig: int, topology: str) -> FstArrays:
    """T∘LG for ``ctc_topology(num_tokens, blank, num_disambig, topology)``, built natively: a result
    isomorphic to OpenFst's ``compose`` (which connects), arcs sorted by input label.

    LG's arcs with input labels T never writes (the blank, ``#k`` for k >= ``num_disambig``) are
    not followed, as in the composition.

    Raises:
        TensorError: LG has an input epsilon (compose with :func:`compose_tlg` then), or bad sizes.
    """
    return FstArrays(*_backend.native().compose_ctc(*_columns(lg), num_tokens, blank, num_disambig, topology))


def compose_tlg(T, LG, *, max_arcs: int | None = None, steps: list[CompileStep] | None = None):
    """TLG = arcsort(compose(T, LG)) (input-label sorted), as a new tropical FST.

    Raises:
        GraphCompileError: the result has more than ``max_arcs`` arcs.
    """
    record = _Steps(steps)
    started = time.perf_counter()
    T = T.copy().arcsort("olabel")
    tlg = pywrapfst.compose(T, LG)
    record.record("compose(T,LG)", started, tlg)
    _check_size("TLG", record.steps[-1].arcs, max_arcs, False)
    started = time.perf_counter()
    tlg.arcsort("ilabel")
    record.record("arcsort(TLG)", started, tlg, resized=False)
    return tlg


@dataclasses.dataclass
class CompiledGraph:
    """A compiled decoding graph and how it was made.

    Attributes:
        tlg_arrays: TLG as :class:`FstArrays`, input-label sorted; inputs are token ids (0 epsilon,
            i >= 1 acoustic output i - 1), outputs word ids. ``tlg`` is the same as a
            ``pywrapfst.VectorFst`` (made on first use).
        lg: LG (with ``#k`` inputs), or None unless ``keep_lg``.
        tokens, words: the symbol tables.
        blank: the blank's acoustic-model output index; num_tokens: V; topology: T's kind.
        steps: a :class:`CompileStep` per step, in order.
        oov_words, dropped_ngrams: what ``allow_oov`` left out of G (see :class:`~speechdecode.graphs.grammar.Grammar`).
    """

    tlg_arrays: FstArrays
    lg: object | None
    tokens: SymbolTable
    words: SymbolTable
    blank: int
    num_tokens: int
    topology: str
    steps: list[CompileStep]
    oov_words: list[str]
    dropped_ngrams: tuple[int, ...]

    @functools.cached_property
    def tlg(self):
        """TLG as a ``pywrapfst.VectorFst`` (made from ``tlg_arrays`` on first use)."""
        return fst_from_csr(self.tlg_arrays)

    def stats(self) -> dict:
        """A JSON-ready summary: sizes, per-step timing and memory, OOV counts."""
        return {
            "topology": self.topology,
            "num_tokens": self.num_tokens,
            "blank": self.blank,
            "words": len(self.words) - 4,
            "tlg_states": self.steps[-1].states,
            "tlg_arcs": self.steps[-1].arcs,
            "seconds": sum(s.seconds for s in self.steps),
            "peak_rss_mb": max(s.peak_rss_mb for s in self.steps),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "oov_words": len(self.oov_words),
            "dropped_ngrams": list(self.dropped_ngrams),
        }

    def write(self, out_dir: str | os.PathLike) -> list[str]:
        """Write ``TLG.fst``, ``TLG.npz``, ``tokens.txt``, ``words.txt`` (and ``LG.fst``) into ``out_dir``.

        All files are written into a staging folder beside ``out_dir`` first and moved in only
        when every one is complete (:func:`speechdecode._io.atomic_directory`), so a failure
        leaves ``out_dir`` as it was; other files in ``out_dir`` are left alone.

        Returns:
            The paths written.

        Raises:
            InvalidArgumentError: ``out_dir`` is not a writable directory (see :func:`check_output_dir`).
        """
        from speechdecode.graphs.export import GRAPH_FILE, export_npz

        out_dir = os.fspath(out_dir)
        check_output_dir(out_dir)
        with atomic_directory(out_dir) as staging:
            with open(os.path.join(staging, "TLG.fst"), "wb") as handle:
                write_vector_arrays(handle, self.tlg_arrays)
            if self.lg is not None:
                self.lg.write(os.path.join(staging, "LG.fst"))
            export_npz(self.tlg_arrays, os.path.join(staging, GRAPH_FILE), self.num_tokens, self.blank, self.topology)
            self.tokens.write(os.path.join(staging, "tokens.txt"))
            self.words.write(os.path.join(staging, "words.txt"))
            names = sorted(os.listdir(staging))
        return [os.path.join(out_dir, name) for name in names]


def check_output_dir(out_dir: str | os.PathLike) -> None:
    """Fail early unless ``out_dir`` is a writable directory, or can be made in an existing one.

    Raises:
        InvalidArgumentError: naming ``out_dir``, what is wrong with it (parents are never created).
    """
    path = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidArgumentError("out_dir", "a directory", f"{path!r}, an existing file")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise InvalidArgumentError("out_dir", "a folder in an existing directory", f"{path!r} ({parent!r} {what})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgumentError("out_dir", "a writable directory", f"{path!r} ({parent!r} is not writable)")


def compile_graph(
    tokens,
    lexicon: Lexicon | str | os.PathLike,
    lm,
    *,
    topology: str = "compact",
    blank: str = "<blk>",
    blank_last: bool = False,
    silence: str | None = None,
    silence_prob: float = 0.5,
    allow_oov: bool = False,
    max_arcs: int | None = None,
    keep_lg: bool = False,
) -> CompiledGraph:
    """Compile TLG from a token list, a lexicon and an n-gram LM.

    Args:
        tokens: the acoustic model's outputs (a token file in either layout, a SymbolTable or a
            list; see :func:`~speechdecode.graphs.symbols.acoustic_units`).
        lexicon: a :class:`Lexicon` or a lexicon file (``word [prob] t1 t2 ...``).
        lm: an ARPA file path, an :class:`~speechdecode.lm.arpa.ArpaModel` or an
            :class:`~speechdecode.lm.model.NgramModel`.
        topology: ``"compact"`` or ``"standard"`` (:func:`~speechdecode.graphs.topology.ctc_topology`).
        blank, blank_last: the blank symbol and whether it is the model's last output.
        silence, silence_prob: optional silence token between words and its probability.
        allow_oov: drop (and count) n-grams with words the lexicon lacks instead of failing.
        max_arcs: stop before (estimated) or after (actual) any step whose result exceeds it.
        keep_lg: keep LG in the result.

    Returns:
        A :class:`CompiledGraph`; ``.write(out_dir)`` stores it.

    Raises:
        InputFileError: a lexicon token missing from the tokens (``lexicon.txt:line``), an empty
            pronunciation or repeated entry in the lexicon file, a malformed token file.
        ArpaFormatError: an ARPA file that does not parse.
        InvalidArgumentError: LM words the lexicon lacks (without ``allow_oov``), bad options.
        GraphCompileError: over ``max_arcs``, or L∘G not determinizable.

    Example:
        >>> graph = compile_graph("tokens.txt", "lexicon.txt", "lm.arpa", topology="compact")  # doctest: +SKIP
        >>> graph.write("graph/")  # doctest: +SKIP
    """
    if topology not in TOPOLOGIES:
        raise InvalidArgumentError("topology", f"one of {', '.join(TOPOLOGIES)}", repr(topology))
    if max_arcs is not None and (not isinstance(max_arcs, int) or max_arcs < 1):
        raise InvalidArgumentError("max_arcs", "None or an integer >= 1", repr(max_arcs))
    steps: list[CompileStep] = []
    units = acoustic_units(tokens, blank=blank, blank_last=blank_last)
    if not isinstance(lexicon, Lexicon):
        lexicon = read_lexicon(lexicon)
    for i, word in enumerate(lexicon):
        if is_disambig(word):
            raise InvalidArgumentError(f"lexicon word {i}", "a word (#k is reserved)", repr(word))
    _, max_k = disambiguate(lexicon)
    token_symbols = token_table(units, max_k + 1)
    words = word_table(lexicon)

    if max_arcs is not None:
        _check_size("L", _estimate_l_arcs(lexicon, silence is not None), max_arcs, True)
    started = time.perf_counter()
    L = lexicon_fst(lexicon, token_symbols, words, blank=blank, silence=silence, silence_prob=silence_prob)
    _Steps(steps).record("L", started, L)
    started = time.perf_counter()
    grammar = grammar_fst(lm, words, allow_oov=allow_oov)
    _release_free_heap()
    _Steps(steps).record("G", started, grammar.fst)
    if max_arcs is not None:
        _check_size("L∘G", _estimate_lg_arcs(lexicon, words, grammar.fst, silence is not None), max_arcs, True)
    owned = [L, grammar.fst]
    oov_words, dropped_ngrams = grammar.oov_words, grammar.dropped_ngrams
    del L, grammar
    lg = _compose_lg(owned, _Steps(steps), max_arcs)
    blank_id, num_disambig = units.index(blank), max_k + 1
    if max_arcs is not None:
        _check_size("TLG", _estimate_tlg_arcs(lg, len(units), topology), max_arcs, True)
    LG = fst_from_csr(lg) if keep_lg else None
    if np.any(lg.ilabels == 0):  # input epsilons (optional silence): OpenFst's composition filter
        TLG = compose_tlg(
            ctc_topology(len(units), blank_id, num_disambig, topology), LG if LG is not None else fst_from_csr(lg),
            max_arcs=max_arcs, steps=steps,
        )  # fmt: skip
        del lg
        tlg = fst_to_arrays(TLG)
        del TLG
    else:
        started = time.perf_counter()
        tlg = compose_ctc(lg, len(units), blank_id, num_disambig, topology)
        del lg
        _Steps(steps).record("compose(T,LG)", started, tlg)
        _check_size("TLG", steps[-1].arcs, max_arcs, False)
    _release_free_heap()  # LG's heap: the export's arrays can reuse it
    return CompiledGraph(
        tlg_arrays=tlg,
        lg=LG,
        tokens=token_symbols,
        words=words,
        blank=blank_id,
        num_tokens=len(units),
        topology=topology,
        steps=steps,
        oov_words=oov_words,
        dropped_ngrams=dropped_ngrams,
    )
