"""Beam search of CTC log-probs over a decoding graph (TLG): :class:`WfstDecoder`.

The graph comes in the flat-array export format that ``graphs/`` writes: an ``.npz`` with

* ``start`` (int64 scalar), ``final_weights`` (float32 [S], +inf where not final);
* ``arc_offsets`` (int64 [S + 1]: the arcs of state s are ``arc_offsets[s]:arc_offsets[s + 1]``),
  ``ilabels``, ``olabels``, ``nextstates`` (int32 [A]), ``weights`` (float32 [A], tropical costs),
  the arcs of each state sorted by ilabel;
* ``num_tokens`` (V, the acoustic model's output size), ``blank`` (its blank index), ``topology``.

Input label 0 is epsilon and i >= 1 is acoustic-model output i - 1; output labels are word ids
of ``words.txt`` (0 = no word). A graph directory holds the ``.npz`` beside ``words.txt`` and
``tokens.txt``.

An OpenFst binary graph (e.g. ``TLG.fst`` from WeNet, or one built with kaldifst / pywrapfst) is
read too, with ``tokens.txt`` (``<eps>`` at id 0, the acoustic tokens at ids 1..V) and
``words.txt`` beside it: see :mod:`speechdecode.graphs.import_fst`; ``speechdecode graph import``
writes it as a ``.npz`` once, which loads faster.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch

from speechdecode import _args, _backend, _tensors
from speechdecode._deprecation import renamed
from speechdecode.decoding._files import Watched
from speechdecode.decoding.hypothesis import WfstHypothesis
from speechdecode.decoding.protocol import OneUtterance
from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError
from speechdecode.graphs.export import ARRAY_DTYPES, GRAPH_FILE, DecodingGraph, load_graph
from speechdecode.graphs.symbols import SymbolTable
from speechdecode.kernels import wfst_decode as kernel

__all__ = ["WfstDecoder", "WfstHypothesis", "WfstStream", "read_graph_arrays"]


class _LoadedGraph(NamedTuple):
    arrays: DecodingGraph
    words: SymbolTable | None
    tokens: SymbolTable | None


def _scalar(value, name: str, path) -> int:
    array = np.asarray(value)
    if array.ndim != 0 or array.dtype.kind not in "iu":
        raise InputFileError(
            path, None, f"{name}: expected an integer scalar, got {array.dtype} of shape {array.shape}"
        )
    return int(array)


def _arrays_from(source, path, num_tokens: int | None, blank: int | None) -> DecodingGraph:
    """DecodingGraph from a mapping (npz file, dict) or an object with the arrays as attributes."""

    def get(name):
        if isinstance(source, Mapping) or hasattr(source, "files"):
            return source[name] if name in source else None
        return getattr(source, name, None)

    scalars = {"start": None, "num_tokens": num_tokens, "blank": blank}
    for name, given in scalars.items():
        stored = get(name)
        if given is None and stored is None:
            hint = "" if name == "start" else f": pass {name}= to WfstDecoder"
            raise InputFileError(path, None, f"missing {name!r}{hint}")
        scalars[name] = int(given) if given is not None else _scalar(stored, name, path)
    arrays = {}
    for name, dtype in ARRAY_DTYPES.items():
        array = get(name)
        if array is None:
            raise InputFileError(path, None, f"missing array {name!r} (a graph needs {', '.join(ARRAY_DTYPES)})")
        array = np.asarray(array)
        if array.ndim != 1 or array.dtype.kind not in ("f" if dtype == np.float32 else "iu"):
            got = f"{array.dtype} of shape {array.shape}"
            raise InputFileError(path, None, f"{name}: expected a 1-D {np.dtype(dtype)} array, got {got}")
        if array.dtype.kind in "iu" and array.size:
            # a cast would wrap values outside the target type (2**32 + 1 would read as 1)
            info = np.iinfo(dtype)
            outside = np.flatnonzero((array < info.min) | (array > info.max))
            if outside.size:
                at = int(outside[0])
                raise TensorError(f"graph {name}", f"values that fit {np.dtype(dtype)}", f"{int(array[at])} at [{at}]")
        arrays[name] = np.ascontiguousarray(array, dtype=dtype)
    topology = get("topology")
    return DecodingGraph(**scalars, **arrays, topology="" if topology is None else str(topology))


def read_graph_arrays(
    path: str | os.PathLike, blank: int | str | None = None
) -> tuple[DecodingGraph, SymbolTable | None, SymbolTable | None]:
    """Read a graph: a directory holding ``TLG.npz`` and ``words.txt`` (as ``graphs`` writes it), or an ``.npz``;
    or an OpenFst binary FST (a file, or ``TLG.fst`` in a directory without ``TLG.npz``) with
    ``tokens.txt`` and ``words.txt`` beside it, whose blank is ``blank`` (default: found by name).

    The ``.npz`` is read by :func:`speechdecode.graphs.export.load_graph`, the FST by
    :func:`speechdecode.graphs.import_fst.import_fst`.

    Returns:
        The arrays, the word table and the token table (``words.txt`` and ``tokens.txt`` beside
        the ``.npz``; None where a bare ``.npz`` has none).

    Raises:
        InputFileError: a missing directory, ``TLG.npz`` or ``words.txt`` (in a directory), or an
            ``.npz`` that is not a decoding graph; the message names the file.
    """
    from speechdecode.graphs.import_fst import import_fst, is_openfst_file

    path = os.fspath(path)
    fst = os.path.join(path, "TLG.fst")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, GRAPH_FILE)) and os.path.isfile(fst):
        return import_fst(fst, blank=blank)
    if os.path.isfile(path) and is_openfst_file(path):
        return import_fst(path, blank=blank)
    if os.path.isdir(path):
        npz, words_path = os.path.join(path, GRAPH_FILE), os.path.join(path, "words.txt")
        for required in (npz, words_path):
            if not os.path.isfile(required):
                raise InputFileError(path, None, f"graph directory without {os.path.basename(required)}")
    elif os.path.isfile(path):
        npz, words_path = path, os.path.join(os.path.dirname(path), "words.txt")
    else:
        raise InputFileError(path, None, "no such graph file or directory")
    try:
        arrays = load_graph(npz)  # checked there: dtypes, shapes, offsets, labels, states
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(npz, None, f"not a readable .npz graph: {exc}") from exc
    words = SymbolTable.read(words_path) if os.path.isfile(words_path) else None
    tokens_path = os.path.join(os.path.dirname(words_path), "tokens.txt")
    tokens = SymbolTable.read(tokens_path) if os.path.isfile(tokens_path) else None
    return arrays, words, tokens


def _load(graph, words, num_tokens, blank) -> _LoadedGraph:
    if isinstance(graph, (str, os.PathLike)):
        arrays, table, tokens = read_graph_arrays(graph, blank)
        if num_tokens is not None and num_tokens != arrays.num_tokens:
            raise InvalidArgumentError("num_tokens", f"the graph's {arrays.num_tokens} or None", num_tokens)
        if isinstance(blank, str) and tokens is not None and blank in tokens:
            blank = tokens.id(blank) - 1
        if blank is not None and blank != arrays.blank:
            raise InvalidArgumentError("blank", f"the graph's {arrays.blank} or None", blank)
    else:
        arrays, table, tokens = _arrays_from(graph, "graph", num_tokens, blank), None, None
    if words is not None:
        table = words if isinstance(words, SymbolTable) else SymbolTable(words)
    if table is not None and arrays.olabels.size and int(arrays.olabels.max()) >= len(table):
        raise InvalidArgumentError(
            "words",
            f"a table covering the graph's output labels (up to {int(arrays.olabels.max())})",
            f"{len(table)} words",
        )
    return _LoadedGraph(arrays, table, tokens)


def _boundary(value, tokens: SymbolTable | None, num_tokens: int) -> int | None:
    """The acoustic index of the word-boundary token (a str is looked up in tokens.txt)."""
    if value is None:
        return None
    if isinstance(value, str):
        if tokens is None:
            raise InvalidArgumentError("word_boundary", "a token index (the graph has no tokens.txt)", repr(value))
        if value not in tokens:
            raise InvalidArgumentError("word_boundary", "a token of the graph's tokens.txt", repr(value))
        value = tokens.id(value) - 1  # tokens.txt ids are acoustic indices + 1 (0 is <eps>)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < num_tokens:
        raise InvalidArgumentError("word_boundary", f"a token index in [0, {num_tokens}) or its symbol", repr(value))
    return int(value)


class WfstDecoder:
    """Token-passing Viterbi beam search of CTC log-probs over a decoding graph (TLG).

    Per frame, active tokens follow their emitting arcs (cost += weight - acoustic_scale *
    log_prob of the arc's token), recombine per graph state, then follow epsilon arcs; tokens
    outside ``beam`` of the frame's best, or beyond the ``max_active`` best, are dropped. After
    the last frame, final weights are added. The search is C++ on all cores with the GIL
    released (csrc/decoding/wfst_decoder.h describes it in full).

    Args:
        graph: a graph directory (``TLG.npz`` with ``words.txt``, as ``graphs`` writes it), an ``.npz``
            path, an OpenFst binary FST (a ``TLG.fst`` file or a directory holding one, with
            ``tokens.txt`` and ``words.txt`` beside it; module docstring), or the arrays
            themselves: a mapping or an object (e.g. ``graphs``' ``FstArrays``)
            with ``start, final_weights, arc_offsets, ilabels, olabels, weights, nextstates`` and,
            unless passed here, ``num_tokens`` and ``blank``. The graph is read and checked once.
        beam: pruning beam (cost units), > 0; ``math.inf`` for none.
        max_active: the most tokens kept per frame, >= 1.
        acoustic_scale: weight of the log-probs against the graph costs, > 0.
        blank_skip_threshold: a log-prob (e.g. ``math.log(0.999)``): frames whose blank log-prob
            exceeds it are not searched at all. Faster, and it changes results: a skipped frame's
            scores are not counted, and a repeated token that needed that blank cannot be emitted.
            None: every frame is searched.
        lattice_beam: for ``nbest > 1``, arcs whose path cost is within this of the frame's best
            are kept in the lattice the n-best list is read from; >= 0.
        nbest: the most hypotheses per utterance (distinct word sequences), >= 1.
        num_threads: threads over utterances (default: all cores).
        word_boundary: the token that ends every word (a char lexicon's ``"|"``), as an acoustic
            index or a symbol of the graph's ``tokens.txt``; used for word times (below).
        words: the word table (a :class:`SymbolTable` or a list, id order) when ``graph`` has
            no ``words.txt``; without one words are their ids as strings.
        num_tokens, blank: for array graphs that do not hold them; ``blank`` also names an
            OpenFst graph's blank (an index or a ``tokens.txt`` symbol) when it is not called
            ``<blk>``, ``<blank>``, ``<b>``, ``<pad>`` or ``-``.
        backend: "native" (C++) or "reference" (exhaustive plain-Python Viterbi, no pruning; for
            tiny graphs); default: ``SPEECHDECODE_BACKEND`` or native when built.

    Hypotheses (:class:`WfstHypothesis`): ``am_score`` is the sum of the path's log-probs,
    ``lm_score`` minus its graph cost (arc weights plus the final weight), and ``score =
    acoustic_scale * am_score + lm_score``, the negated search cost. ``tokens`` is the CTC
    collapse of the path's per-frame input labels (a token starts on a non-blank label that
    differs from the previous searched frame's; a skipped frame counts as blank);
    ``token_frames`` their first frames. Word times: word k owns the tokens from the arc that
    carries its output label up to the next word's arc (tokens before the first word's arc belong
    to the first word); ``word_frames[k]`` is the frames of its first and last token, or the arc's
    frame twice when it owns none. This is exact for graphs that emit a word on its first token's
    arc, and shifts by the delay where determinization moved the output label later. With a
    ``word_boundary`` whose occurrences split the tokens into as many groups as there are words,
    ``word_frames[k]`` is instead the first and last frame of group k's tokens other than the
    boundary (exact for a char lexicon whatever the graph's label placement).

    Raises:
        InputFileError: a graph path that is missing, a directory without ``TLG.npz`` or
            ``words.txt``, or an array missing.
        TensorError: a graph that is not well formed (offsets, labels, next states, unsorted arcs,
            NaN weights, an epsilon cycle), naming the array; for a graph read from a file, an
            InputFileError naming the file too.
        InvalidArgumentError: an option out of range.

    Example:
        >>> import numpy as np
        >>> graph = {  # one word "a" (id 1): token 1 at least once, blanks around it
        ...     "start": 0, "final_weights": np.array([np.inf, 0.0], np.float32),
        ...     "arc_offsets": np.array([0, 2, 4]), "ilabels": np.array([1, 2, 1, 2], np.int32),
        ...     "olabels": np.array([0, 1, 0, 0], np.int32), "weights": np.zeros(4, np.float32),
        ...     "nextstates": np.array([0, 1, 1, 1], np.int32), "num_tokens": 2, "blank": 0}
        >>> decoder = WfstDecoder(graph, words=["<eps>", "a"])
        >>> x = np.log(np.array([[[0.9, 0.1], [0.2, 0.8], [0.9, 0.1]]], np.float32))
        >>> hyp = decoder(x)[0][0]
        >>> hyp.words, hyp.tokens, hyp.token_frames, hyp.word_frames
        (('a',), (1,), (1,), ((1, 1),))
    """

    def __init__(
        self,
        graph,
        *,
        beam: float = 16.0,
        max_active: int = 7000,
        acoustic_scale: float = 1.0,
        blank_skip_threshold: float | None = None,
        lattice_beam: float = 8.0,
        nbest: int = 1,
        num_threads: int | None = None,
        word_boundary: int | str | None = None,
        words=None,
        num_tokens: int | None = None,
        blank: int | None = None,
        backend: str | None = None,
    ):
        self._arguments = {name: value for name, value in locals().items() if name not in ("self", "graph")}
        # The options cross every layer as one object: the C++ struct, checked by its validate().
        self.options = kernel.options(
            beam=beam, max_active=max_active, acoustic_scale=acoustic_scale,
            blank_skip_threshold=math.inf if blank_skip_threshold is None else blank_skip_threshold,
            lattice_beam=lattice_beam, nbest=nbest,
        )  # fmt: skip
        self.blank_skip_threshold = None if blank_skip_threshold is None else self.options.blank_skip_threshold
        self.num_threads = 0 if num_threads is None else _args.integer(num_threads, "num_threads", 1)
        self.backend = _backend.select("cpu", backend)
        if self.backend == "triton":
            raise InvalidArgumentError("backend", "native or reference (no Triton WFST search)", repr(backend))
        loaded = _load(graph, words, num_tokens, blank)
        self.arrays, self.words = loaded.arrays, loaded.words
        self._graph_file = None
        if isinstance(graph, (str, os.PathLike)):
            main = os.path.join(graph, GRAPH_FILE) if os.path.isdir(graph) else graph
            if os.path.isdir(graph) and not os.path.isfile(main):
                main = os.path.join(graph, "TLG.fst")
            self._graph_file = Watched(main)
        self.word_boundary = _boundary(word_boundary, loaded.tokens, self.arrays.num_tokens)
        self.options.word_boundary = -1 if self.word_boundary is None else self.word_boundary
        # The C++ graph checks the arrays once (the reference search trusts them).
        self._native_graph = None
        if _backend.HAS_NATIVE:
            a = self.arrays
            try:
                self._native_graph = _backend.native().WfstGraph(
                    a.start, a.final_weights, a.arc_offsets, a.ilabels, a.olabels, a.weights, a.nextstates,
                    a.num_tokens, a.blank,
                )  # fmt: skip
            except ValueError as exc:  # what only the C++ check sees (an epsilon cycle): name the file
                if self._graph_file is None:
                    raise
                raise InputFileError(self._graph_file.path, None, str(exc)) from exc

    def __getattr__(self, name: str):
        # The options (beam, max_active, nbest, ...) read through from the one options object.
        options = self.__dict__.get("options")
        if options is not None and not name.startswith("_") and hasattr(options, name):
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __reduce__(self):
        # A graph read from a file pickles as the file's path and content hash (loaded again,
        # refused if it changed: decoding/_files.py); a graph given as arrays, by content.
        options = dict(self._arguments, word_boundary=self.word_boundary, backend=self.backend)
        options["words"] = None if self.words is None else self.words.symbols
        del options["num_tokens"], options["blank"]
        if self._graph_file is not None:
            return _rebuild, (self._graph_file.ref(), self.arrays.blank, options)
        return _rebuild, (dict(vars(self.arrays)), None, options)

    @property
    def num_tokens(self) -> int:
        """V, the acoustic model's output size the graph expects."""
        return self.arrays.num_tokens

    @property
    def blank(self) -> int:
        """The blank's acoustic-model index."""
        return self.arrays.blank

    def _word(self, word_id: int) -> str:
        return self.words.symbol(word_id) if self.words is not None else str(word_id)

    @property
    def _search_graph(self):
        """The native graph the search runs on; None for the reference backend."""
        return self._native_graph if self.backend == "native" else None

    def _scores(self, x, name: str, ndim: int) -> torch.Tensor:
        t = _tensors.scores(x, name, ndim)
        if t.shape[-1] != self.num_tokens:
            raise TensorError(name, f"V = {self.num_tokens} (the graph's num_tokens)", f"shape {list(t.shape)}")
        return _tensors.cpu_float32(t)

    def __call__(self, log_probs, lengths=None) -> list[list[WfstHypothesis]]:
        """Decode a batch.

        Args:
            log_probs: [B, T, V] log-probabilities, float32, float16 or bfloat16 (upcast), numpy
                or torch (CUDA tensors are copied to the CPU), any strides. NaN or +inf inside
                ``lengths`` raises, naming the utterance and frame; -inf (log 0) is allowed.
            lengths: [B] integer frame counts in [0, T], or None for all T. A zero-length
                utterance gives the graph's best path over no frames (or none).

        Returns:
            Per utterance, its n-best list of :class:`WfstHypothesis`, best first; empty when
            no path through the graph survives (e.g. a graph that cannot consume the frames).

        Raises:
            TensorError: wrong ndim, dtype or V, lengths out of range, NaN/+inf log-probs.
        """
        x = self._scores(log_probs, "log_probs", 3)
        lens = _tensors.lengths(lengths, "lengths", x.shape[0], x.shape[1], torch.device("cpu"))
        return kernel.decode(self._search_graph, self.arrays, self.options, x, lens, self.num_threads, self._word)

    def stream(self) -> WfstStream:
        """A streaming search of one utterance: :meth:`WfstStream.accept` chunks of frames."""
        return WfstStream(self)


def _rebuild(graph, blank, options: dict) -> WfstDecoder:
    """Unpickles a :class:`WfstDecoder`: from arrays, or from a graph file checked against its hash."""
    if hasattr(graph, "check"):
        return WfstDecoder(graph.check(), blank=blank, **options)
    return WfstDecoder(graph, **options)


class WfstStream(OneUtterance):
    """The streaming search of one utterance (from :meth:`WfstDecoder.stream`).

    ``accept`` chunks of frames as they arrive, ask ``partial()`` for the best path so far, and
    ``finish()`` for the n-best list: it equals decoding all accepted frames at once.

    Example:
        >>> import numpy as np
        >>> graph = {"start": 0, "final_weights": np.array([0.0], np.float32),
        ...     "arc_offsets": np.array([0, 2]), "ilabels": np.array([1, 2], np.int32),
        ...     "olabels": np.array([0, 1], np.int32), "weights": np.zeros(2, np.float32),
        ...     "nextstates": np.array([0, 0], np.int32), "num_tokens": 2, "blank": 0}
        >>> stream = WfstDecoder(graph, words=["<eps>", "x"]).stream()
        >>> stream.accept(np.log(np.array([[0.1, 0.9]], np.float32)))
        >>> stream.partial().words
        ('x',)
        >>> stream.accept(np.log(np.array([[0.9, 0.1]], np.float32)))
        >>> [h.words for h in stream.finish()]
        [('x',)]
    """

    def __init__(self, decoder: WfstDecoder):
        self._decoder = decoder
        self._state = kernel.open_stream(decoder._search_graph, decoder.arrays, decoder.options, decoder._word)

    @property
    def frames_accepted(self) -> int:
        """Frames accepted so far."""
        return self._state.frames_accepted

    def accept(self, chunk) -> None:
        """Search ``chunk`` [T_chunk, V] (float32/16, bfloat16; numpy or torch; any strides).

        Raises:
            TensorError: wrong ndim, dtype or V; NaN/+inf (frame numbers count from the stream's start).
            InvalidArgumentError: the stream was finished.
        """
        self._check_open()
        self._state.accept(self._decoder._scores(chunk, "chunk", 2))

    def partial(self) -> WfstHypothesis | None:
        """The best path so far, final weights ignored (``reached_final`` False); None if none survives."""
        self._check_open()
        return self._state.partial()

    def finish(self) -> list[WfstHypothesis]:
        """The n-best list of all accepted frames (as :meth:`WfstDecoder.__call__` gives); ends the stream."""
        self._end()
        return self._state.finish()

    def finalize(self) -> list[WfstHypothesis]:
        """Deprecated name of :meth:`finish`."""
        renamed("WfstStream.finalize()", "finish()")
        return self.finish()
