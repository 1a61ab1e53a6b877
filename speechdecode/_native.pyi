"""Type stubs for speechdecode._native, the C++ core built from csrc/ (see csrc/bindings/)."""

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
