"""Type stubs for speechdecode._native, the C++ core built from csrc/ (see csrc/bindings/)."""

from collections.abc import Callable

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
) -> tuple[list[str], list[npt.NDArray[np.int32]], list[npt.NDArray[np.int64]], dict[str, int]]:
    """Counts n-grams of orders 1..order in text files (plain or gzip), one sentence per line.

    Returns (words, ngrams, counts, stats): words by id; per order n an int32 [M_n, n] array of
    sorted id rows and an int64 [M_n] array of counts; stats has lines, tokens, input_bytes, runs,
    merge_passes, table_bytes. progress(bytes_read) is called with the GIL about every 4 MiB;
    an exception it raises (or Ctrl-C) aborts counting. Releases the GIL while counting.
    Raises speechdecode.errors.InputFileError (path:line) for unreadable files, invalid UTF-8
    (strict) and <s> / </s> in the text; ValueError for bad options.
    """

# --- lm query model (csrc/lm/ngram_model, csrc/bindings/lm.cc); public API: speechdecode.lm.NgramModel ---

class NgramModel:
    """Back-off n-gram LM in KenLM's probing structure, loaded from an ARPA file; scores equal KenLM's."""

    @staticmethod
    def from_arpa(path: str | bytes) -> NgramModel:
        """Loads an ARPA file (plain or gzip); raises ArpaFormatError (path:line) or OSError. Releases the GIL."""
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

def write_arpa(
    path: bytes,
    words: list[str],
    ngrams: list[npt.NDArray[np.int32]],
    log10_probs: list[npt.NDArray[np.float64]],
    backoffs: list[npt.NDArray[np.float64]],
    num_threads: int = 0,
) -> None:
    """Writes an ARPA file as lm/arpa.py's write_arpa does (gzip for .gz), atomically.

    Raises OSError on I/O failure, TensorError for bad arrays or ids. Releases the GIL.
    """

def format_arpa_floats(values: npt.NDArray[np.float64]) -> list[str]:
    """The ARPA writer's text of each value: shortest float32 decimal as KenLM prints it.

    Exponent form below 1e-6 and from 1e21, as KenLM's double-conversion settings give.
    """
