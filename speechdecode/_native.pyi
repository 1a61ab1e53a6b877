"""Type stubs for speechdecode._native, the C++ core built from csrc/ (see csrc/bindings/)."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

def compiler_info() -> str:
    """Compiler and C++ standard the extension was built with."""

def ctc_greedy(
    log_probs: npt.NDArray[np.float32] | npt.NDArray[np.float16] | npt.NDArray[np.int16] | npt.NDArray[np.uint16],
    lengths: npt.NDArray[np.int64] | None,
    blank: int,
    score_type: str = "float32",
    num_threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Greedy CTC decoding of log_probs [B, T, V]; returns packed (tokens, frames, offsets).

    16-bit scores cross as bit patterns with score_type "float16" or "bfloat16". The vocab axis
    must be contiguous. Releases the GIL and runs on num_threads threads (0: all cores).
    Raises speechdecode.errors.TensorError for bad shapes, lengths, blank, NaN or +inf scores.
    """

# --- the CTC searches' result (csrc/decoding/hypothesis.h, csrc/bindings/decoding.cc) ---
# public API: speechdecode.decoding.Hypothesis (built from it)

class Hypothesis:
    """One hypothesis of a CTC search (prefix beam or WFST); read-only."""

    @property
    def tokens(self) -> tuple[int, ...]: ...
    @property
    def token_frames(self) -> tuple[int, ...]: ...
    @property
    def words(self) -> tuple[str, ...]:
        """The words as text (prefix search); empty where the search gives word_ids."""
    @property
    def word_ids(self) -> tuple[int, ...]:
        """The words as output labels of the decoding graph (WFST search); empty otherwise."""
    @property
    def word_frames(self) -> tuple[tuple[int, int], ...]: ...
    @property
    def score(self) -> float: ...
    @property
    def am_score(self) -> float: ...
    @property
    def lm_score(self) -> float: ...
    @property
    def reached_final(self) -> bool:
        """Whether the WFST path ended in a final state (always True for the prefix search)."""

# --- CTC prefix beam search (csrc/decoding/ctc_prefix_beam_search, csrc/bindings/decoding_prefix.cc) ---
# public API: speechdecode.decoding.CtcPrefixBeamSearch

class CtcPrefixBeamSearchOptions:
    """The prefix search's options (fields and defaults: csrc/decoding/ctc_prefix_beam_search.h)."""

    blank: int
    alpha: float
    beta: float
    beam: int
    token_topk: int
    beam_threshold: float
    token_min_logp: float
    extend_best_token: bool
    partial_word_lm: bool
    unk_score_offset: float
    blank_skip_threshold: float
    viterbi: bool
    recombine: bool
    score_boundary: bool
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """Raises speechdecode.errors.TensorError naming the first option out of range."""

class CtcPrefixBeamSearch:
    """CTC prefix beam search with word-level LM fusion and hotwords; read-only, shareable across threads."""

    def __init__(
        self,
        chars: list[str],
        starts_word: list[int],
        options: CtcPrefixBeamSearchOptions,
        hotwords: list[tuple[list[int], float]],
        lm: NgramModel | None,
        lexicon: list[tuple[list[int], str]],
    ) -> None:
        """Raises TensorError for options out of range, inconsistent sizes, bad hotword or lexicon tokens."""
    @property
    def vocab_size(self) -> int: ...
    def decode(
        self, log_probs: npt.NDArray[np.float32], lengths: npt.NDArray[np.int64], nbest: int, num_threads: int
    ) -> list[list[Hypothesis]]:
        """Decodes float32 log_probs [B, T, V] (last axis contiguous); per utterance, up to nbest
        hypotheses, best first. Releases the GIL.
        Raises speechdecode.errors.TensorError for bad shapes, lengths, NaN or +inf scores."""
    def stream(self) -> CtcPrefixBeamSearchStream: ...

def ctc_best_path(log_probs: npt.NDArray[np.float32], tokens: list[int], blank: int) -> list[int]:
    """The CTC Viterbi forced alignment of C-contiguous float32 log_probs [T, V] to tokens: the
    token of each frame (blank included). Releases the GIL. Raises TensorError for a token outside
    [0, V) or equal to blank."""

class CtcPrefixBeamSearchStream:
    """One utterance fed in chunks; best(n) equals decoding all the frames so far at once."""

    @property
    def frames(self) -> int: ...
    @property
    def searched_frames(self) -> int: ...
    def accept(self, chunk: npt.NDArray[np.float32]) -> None:
        """Consumes float32 frames [T, V]. Releases the GIL."""
    def best(self, nbest: int) -> list[Hypothesis]:
        """The n-best hypotheses of the frames so far; the stream can go on. Releases the GIL."""

# --- WFST beam search (csrc/decoding/wfst_decoder, csrc/bindings/decoding_wfst.cc); API: decoding.WfstDecoder ---

class WfstGraph:
    """A decoding graph in flat arrays (CSR by state, arcs sorted by ilabel), checked once."""

    def __init__(
        self,
        start: int,
        final_weights: npt.NDArray[np.float32],
        arc_offsets: npt.NDArray[np.int64],
        ilabels: npt.NDArray[np.int32],
        olabels: npt.NDArray[np.int32],
        weights: npt.NDArray[np.float32],
        nextstates: npt.NDArray[np.int32],
        num_tokens: int,
        blank: int,
    ) -> None:
        """Raises speechdecode.errors.TensorError naming the bad array (or an epsilon cycle)."""
    @property
    def num_states(self) -> int: ...
    @property
    def num_arcs(self) -> int: ...
    @property
    def num_tokens(self) -> int: ...
    @property
    def blank(self) -> int: ...
    @property
    def start(self) -> int: ...

class WfstOptions:
    """The WFST search's options (fields and defaults: csrc/decoding/wfst_decoder.h)."""

    beam: float
    max_active: int
    acoustic_scale: float
    blank_skip_threshold: float
    lattice_beam: float
    nbest: int
    word_boundary: int
    max_nbest_expansions: int
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """Raises speechdecode.errors.TensorError naming the first option out of range."""

def wfst_decode(
    graph: WfstGraph,
    log_probs: npt.NDArray[np.float32],
    lengths: npt.NDArray[np.int64] | None,
    options: WfstOptions,
    num_threads: int = 0,
) -> list[list[Hypothesis]]:
    """Beam-searches log_probs [B, T, V] (last axis contiguous) over graph; one n-best list per
    utterance (word_ids: the graph's output labels).

    options.blank_skip_threshold: +inf for none; word_boundary: -1 for none. Releases the GIL and
    runs utterances on num_threads threads (0: all cores). Raises TensorError for bad shapes,
    lengths, options, NaN or +inf log-probs (naming utterance and frame).
    """

class WfstSearch:
    """The streaming search state of one utterance."""

    def __init__(self, graph: WfstGraph, options: WfstOptions) -> None: ...
    def accept(self, chunk: npt.NDArray[np.float32]) -> None:
        """Searches chunk [T_chunk, V] (float32, last axis contiguous). Releases the GIL."""
    def partial(self) -> Hypothesis | None:
        """The best path so far, final weights ignored; None when no token survives."""
    def finish(self) -> list[Hypothesis]:
        """The n-best list of the frames accepted so far. Releases the GIL."""
    @property
    def frames_accepted(self) -> int: ...

# --- sampling (csrc/decoding/sampling, csrc/bindings/sampling.cc) ---

def sample(
    logits: npt.NDArray[np.float32],
    temperature: float | npt.NDArray[np.float32],
    top_k: int | npt.NDArray[np.int64],
    top_p: float | npt.NDArray[np.float32],
    min_p: float | npt.NDArray[np.float32],
    uniforms: float | npt.NDArray[np.float32],
    num_threads: int = 0,
) -> npt.NDArray[np.int64]:
    """One token per row of float32 logits [B, V] (vocab axis contiguous), as kernels.sampling.

    Parameters are scalars or [B] arrays. Releases the GIL. Raises TensorError naming the
    argument and row (NaN / +inf / all -inf logits, parameters out of range).
    """

def guided_sample(
    cond: npt.NDArray[np.float32],
    uncond: npt.NDArray[np.float32],
    cond2: npt.NDArray[np.float32] | None,
    scale: float,
    scale2: float,
    center: str,
    temperature: npt.ArrayLike,
    top_k: npt.ArrayLike,
    top_p: npt.ArrayLike,
    min_p: npt.ArrayLike,
    uniforms: npt.ArrayLike,
    num_threads: int = 0,
) -> npt.NDArray[np.int64]:
    """sample() of classifier-free-guided logits ('uncond': u + (c - u) * s [+ (c2 - u) * s2];
    'cond': c + (c - u) * s; -inf in any input stays -inf), guided row by row where it is drawn.
    Releases the GIL.
    """

def repetition_aware_sample(
    logits: npt.NDArray[np.float32],
    history: npt.NDArray[np.int64],
    window: int,
    threshold: float,
    top_k: int,
    top_p: float,
    preset: str,
    uniforms: npt.NDArray[np.float32],
    num_threads: int = 0,
    uncond: npt.NDArray[np.float32] | None = None,
    cond2: npt.NDArray[np.float32] | None = None,
    scale: float = 1.0,
    scale2: float = 0.0,
    center: str = "uncond",
    temperature: float = 1.0,
) -> npt.NDArray[np.int64]:
    """VALL-E 2 RAS of logits [B, V] with history [B, L] (-1 padding) and uniforms [B, 2], as
    decoding.ras; top_k <= 0: none. With uncond (and cond2) the logits are cond, guided as
    guided_sample guides and divided by temperature, row by row (decoding.guided_ras).
    Releases the GIL. Raises TensorError naming the row."""

def dia_scores(
    logits: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    ending: npt.NDArray[np.bool_],
    countdown: npt.NDArray[np.int64],
    guided: bool,
    scale: float,
    top_k: int,
    eos: int,
    end_all: bool,
    num_threads: int = 0,
) -> None:
    """One step of Dia's guidance, end-of-speech filter and forced ends (csrc/decoding/dia_scores.h)
    over float32 logits [N, V] (guided: [2N, V], the conditional rows first), C-contiguous; row r is
    channel r % C of sequence r // C. top_k 0: none (only when guided). Writes the scores into out
    (float32 [N, V]) and updates ending (bool [B]) and countdown (int64 [B, C]) in place; end_all:
    every sequence is ending from this step on. Releases the GIL."""

# --- lm counting (csrc/lm/ngram_counter, csrc/bindings/lm_count.cc) ---

COUNT_MAX_ORDER: int

def count_min_memory(order: int) -> int:
    """The smallest memory_bytes count_files accepts for this order."""

def count_files(
    paths: list[str | bytes],
    order: int,
    units: str = "word",
    word_boundary: str = "|",
    limit_vocab: list[str] | None = None,
    memory_bytes: int = 1 << 30,
    tmp_dir: str = "",
    encoding_errors: str = "strict",
    progress: Callable[[int], object] | None = None,
    output_fds: list[int] = ...,
) -> tuple[list[str], list[npt.NDArray[np.int32]], list[npt.NDArray[np.int64]], dict[str, Any]]:
    """Counts n-grams of orders 1..order in text files (plain or gzip), one sentence per line.

    Returns (words, ngrams, counts, stats): words by id; per order n an int32 [M_n, n] array of
    sorted id rows and an int64 [M_n] array of counts; stats has lines, tokens, input_bytes, runs,
    merge_passes, table_bytes and rows (M_n per order). With output_fds (2 * order open file
    descriptors: per order one for its n-grams' int32 ids, one for its int64 counts) the rows and
    counts are written there, at each descriptor's offset, and the arrays are empty.
    progress(bytes_read) is called with the GIL about every 4 MiB; an exception it raises (or
    Ctrl-C) aborts counting. Releases the GIL while counting.
    Raises speechdecode.errors.InputFileError (path:line) for unreadable files, invalid UTF-8
    (strict) and <s> / </s> in the text; ValueError for bad options.
    """

# --- lm query model (csrc/lm/ngram_model, csrc/bindings/lm.cc); public API: speechdecode.lm.NgramModel ---

class NgramModel:
    """Back-off n-gram LM in KenLM's probing structure, loaded from an ARPA file; scores equal KenLM's."""

    @staticmethod
    def from_arpa(path: str | bytes) -> NgramModel:
        """Loads an ARPA file (plain or gzip); raises ArpaFormatError (path:line) or OSError. Releases the GIL."""
    @staticmethod
    def load(path: str | bytes) -> NgramModel:
        """ARPA (plain or gzip) or a memory-mapped KenLM binary, by content; InputFileError for a bad binary."""
    @property
    def kenlm_type(self) -> int | None:
        """KenLM model type of a binary (0 probing .. 5 quantized trie with array pointers); None for ARPA."""
    @property
    def order(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def counts(self) -> list[int]:
        """N-gram counts per order as the file declares them."""
    @property
    def memory_bytes(self) -> int:
        """Bytes held by the vocabulary and the tables."""
    def vocab(self) -> list[str]:
        """All words, by id (<unk> = 0, <s> = 1, </s> = 2, then file order)."""
    def word_id(self, word: str) -> int:
        """The id of word; 0 (<unk>) when absent."""
    def contains(self, word: str) -> bool: ...
    def score(self, sentence: str, bos: bool, eos: bool) -> float:
        """log10 p(sentence), words split on ASCII whitespace, summed in float32 like kenlm."""
    def full_scores(self, sentence: str, bos: bool, eos: bool) -> list[tuple[float, int, bool]]:
        """(log10 prob, n-gram length, oov) per word, and for </s> when eos."""
    def score_batch_text(
        self, sentences: list[str] | tuple[str, ...], bos: bool, eos: bool, num_threads: int = 0
    ) -> npt.NDArray[np.float64]:
        """score() of every sentence; releases the GIL, num_threads <= 0: all cores."""
    def score_batch_ids(
        self,
        ids: npt.NDArray[np.int32],
        offsets: npt.NDArray[np.int64],
        bos: bool,
        eos: bool,
        num_threads: int = 0,
    ) -> npt.NDArray[np.float64]:
        """Sentence b is ids[offsets[b]:offsets[b + 1]]; raises TensorError for ids outside [0, V)."""
    def score_word(self, state: tuple[int, ...] | list[int], word_id: int) -> tuple[float, tuple[int, ...]]:
        """(log10 p(word | state), next state); states are word ids, most recent first."""
    def score_words(
        self, states: npt.NDArray[np.int32], word_ids: npt.NDArray[np.int32], num_threads: int = 0
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
        """Vectorised score_word; states int32 [n, order - 1], most recent first, -1 padded. Releases the GIL."""
    def kenlm_id(self, word_id: int) -> int:
        """KenLM's own id of a word id (a KenLM binary's; the same id for a model read from ARPA)."""

def write_kenlm_binary(
    arpa_path: bytes, fd: int, name: bytes, type: int, prob_bits: int = 0, backoff_bits: int = 0, pointer_bits: int = 0
) -> None:
    """Writes the KenLM binary of an ARPA file to fd (type 0 probing, 2..5 tries). Releases the GIL."""

def kenlm_arpa_tables(
    path: bytes,
) -> tuple[list[str], list[npt.NDArray[np.int32]], list[npt.NDArray[np.float64]], list[npt.NDArray[np.float64]]]:
    """ArpaModel's tables of a KenLM trie binary; InputFileError for a probing one. Releases the GIL."""

def estimate_mkn(
    ngrams: list[npt.NDArray[np.int32]],
    counts: list[npt.NDArray[np.int64]],
    vocab_size: int,
    prune: list[int],
    discount_fallback: tuple[float, float, float],
    float64: bool = False,
    num_threads: int = 0,
    grain: int = 0,
) -> dict:
    """Interpolated modified Kneser-Ney as lmplz computes it (csrc/lm/kneser_ney.h).

    ngrams[n-1]: int32 [M_n, n] sorted unique rows; counts[n-1]: int64 [M_n] (read in place).
    Returns {"ngrams", "log10_probs", "backoffs"} (lists per order, lmplz's suffix order,
    pruned n-grams left out), "count_of_counts" int64 [N, 4], "discounts" float64 [N, 3],
    "fallback" (per order None or the reason). grain: items per parallel work item (0: default;
    tests make it small). Releases the GIL; TensorError names a bad array.
    """

def estimate_mkn_arpa(
    fd: int,
    name: bytes,
    gzip: bool,
    words: list[str],
    ngrams: list[npt.NDArray[np.int32]],
    counts: list[npt.NDArray[np.int64]],
    prune: list[int],
    discount_fallback: tuple[float, float, float],
    float64: bool = False,
    allow_fallback: bool = True,
    num_threads: int = 0,
    grain: int = 0,
) -> dict:
    """estimate_mkn written to the ARPA file on fd one order at a time (csrc/lm/kneser_ney.h's sink).

    vocab_size is len(words). Returns {"written": False when a fallback was needed and not
    allowed (nothing written), "kept": n-grams per order, "count_of_counts", "discounts",
    "fallback"} as estimate_mkn. Releases the GIL.
    """

def write_arpa(
    fd: int,
    name: bytes,
    gzip: bool,
    words: list[str],
    ngrams: list[npt.NDArray[np.int32]],
    log10_probs: list[npt.NDArray[np.float64]],
    backoffs: list[npt.NDArray[np.float64]],
    num_threads: int = 0,
) -> None:
    """Writes an ARPA file as lm/arpa.py's write_arpa does to the open descriptor fd (not closed).

    Raises OSError(errno, reason, name) on I/O failure, TensorError for bad arrays or ids. Releases the GIL.
    """

def format_arpa_floats(values: npt.NDArray[np.float64]) -> list[str]:
    """The ARPA writer's text of each value: shortest float32 decimal as KenLM prints it.

    Exponent form below 1e-6 and from 1e21, as KenLM's double-conversion settings give.
    """

def read_arpa_tables(
    path: str,
) -> tuple[list[str], list[npt.NDArray[np.int32]], list[npt.NDArray[np.float64]], list[npt.NDArray[np.float64]]]:
    """The tables of lm/arpa.py's ArpaModel, read by the C++ parser NgramModel uses (gzip by content).

    (words, ngrams per order int32 [M_n, n], log10_probs per order float64 [M_n], backoffs per
    order float64 [M_n] ([0] for the highest)): ids in file order and values as doubles. Raises
    ArpaFormatError (path:line) for a malformed file (duplicates and missing contexts included),
    OSError when it cannot be read. Releases the GIL.
    """

# --- decoding graphs (csrc/decoding/wfst_graph, csrc/graphs/fst_ops, csrc/bindings/graphs.cc); API:
# graphs.export.check_graph, graphs.compile.minimize_encoded / compose_ctc ---

def check_graph(
    start: int,
    final_weights: npt.NDArray[np.float32],
    arc_offsets: npt.NDArray[np.int64],
    ilabels: npt.NDArray[np.int32],
    olabels: npt.NDArray[np.int32],
    weights: npt.NDArray[np.float32],
    nextstates: npt.NDArray[np.int32],
    num_tokens: int,
    blank: int,
) -> None:
    """Checks a decoding graph's arrays (graphs/export.py's format); WfstGraph runs the same check.

    Each array C-contiguous 1-D of its dtype. Raises speechdecode.errors.TensorError naming the first
    bad array (or an epsilon cycle), what it expects and what it holds. Releases the GIL.
    """

def minimize_encoded(
    start: int,
    final_weights: npt.NDArray[np.float32],
    arc_offsets: npt.NDArray[np.int64],
    ilabels: npt.NDArray[np.int32],
    olabels: npt.NDArray[np.int32],
    weights: npt.NDArray[np.float32],
    nextstates: npt.NDArray[np.int32],
) -> tuple[
    int,
    npt.NDArray[np.float32],
    npt.NDArray[np.int64],
    npt.NDArray[np.int32],
    npt.NDArray[np.int32],
    npt.NDArray[np.float32],
    npt.NDArray[np.int32],
]:
    """OpenFst's minimization of a deterministic FST encoded over (input, output, weight), final
    weights included (Hopcroft's refinement); returns the same seven fields, states numbered by
    their smallest original member, arcs sorted by input label. Raises TensorError for a
    nondeterministic FST or arrays that are not an FST. Releases the GIL.
    """

def compose_ctc(
    start: int,
    final_weights: npt.NDArray[np.float32],
    arc_offsets: npt.NDArray[np.int64],
    ilabels: npt.NDArray[np.int32],
    olabels: npt.NDArray[np.int32],
    weights: npt.NDArray[np.float32],
    nextstates: npt.NDArray[np.int32],
    num_tokens: int,
    blank: int,
    num_disambig: int,
    topology: str,
) -> tuple[
    int,
    npt.NDArray[np.float32],
    npt.NDArray[np.int64],
    npt.NDArray[np.int32],
    npt.NDArray[np.int32],
    npt.NDArray[np.float32],
    npt.NDArray[np.int32],
]:
    """T∘LG for the CTC topology (``"compact"`` or ``"standard"``), as OpenFst's composition and
    connect give it for an LG without input epsilons; returns the fields as minimize_encoded,
    states in breadth-first order. Raises TensorError for an input epsilon or bad sizes. Releases
    the GIL.
    """
