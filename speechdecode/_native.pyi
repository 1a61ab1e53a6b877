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
