"""Greedy (best-path) CTC decoding: argmax per frame, merge repeats, drop blanks."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import torch

from speechdecode import _backend, _tensors


class GreedyHypothesis(NamedTuple):
    """One utterance's greedy decoding.

    tokens: int64 [N] label ids, blanks and repeats removed.
    frames: int64 [N] the first frame of the run of frames that emitted each token.
    Both are numpy arrays when the input was numpy, else tensors on the input's device.
    """

    tokens: np.ndarray | torch.Tensor
    frames: np.ndarray | torch.Tensor


def _native_ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, num_threads: int | None):
    if log_probs.stride(2) != 1:
        log_probs = log_probs.contiguous()
    score_type = str(log_probs.dtype).removeprefix("torch.")
    if log_probs.dtype == torch.bfloat16:  # numpy has no bfloat16: pass the bit patterns
        log_probs = log_probs.view(torch.int16)
    packed = _backend.native().ctc_greedy(
        log_probs.numpy(), lengths.numpy(), blank, score_type=score_type, num_threads=num_threads or 0
    )
    return tuple(torch.from_numpy(a) for a in packed)


def ctc_greedy_packed(
    log_probs, lengths=None, blank: int = 0, *, backend: str | None = None, num_threads: int | None = None
):
    """:func:`ctc_greedy` in packed form: int64 tensors ``(tokens, frames, offsets)``.

    Utterance b owns ``tokens[offsets[b]:offsets[b + 1]]``. This is the form the backends
    produce; it avoids building one Python object per utterance for large batches.
    """
    x = _tensors.scores(log_probs, "log_probs", ndim=3)
    batch, frames, vocab = x.shape
    if vocab == 0:
        raise _tensors.TensorError("log_probs", "at least one label (V >= 1)", f"shape {list(x.shape)}")
    blank = _tensors.label(blank, "blank", vocab)
    lens = _tensors.lengths(lengths, "lengths", batch, frames, x.device)
    impl = _backend.select(x.device.type, backend)
    if impl == "native":
        return _native_ctc_greedy(x, lens, blank, num_threads)
    if impl == "triton":
        from speechdecode.kernels.ctc_greedy import triton as kernel
    else:
        from speechdecode.kernels.ctc_greedy import reference as kernel
    return kernel.ctc_greedy(x, lens, blank)


def ctc_greedy(
    log_probs, lengths=None, blank: int = 0, *, backend: str | None = None, num_threads: int | None = None
) -> list[GreedyHypothesis]:
    """Greedy CTC decoding of a batch.

    Args:
        log_probs: [B, T, V] scores (log-probabilities or logits: only the argmax matters),
            float32, float16 or bfloat16, numpy or torch, CPU or CUDA, any strides.
            NaN or +inf inside ``lengths`` raises; -inf (log 0) is allowed.
        lengths: [B] integer frame counts (frames past them are ignored), or None for all T.
        blank: the blank label id.
        backend: "reference", "native" or "triton"; default: ``SPEECHDECODE_BACKEND`` or the
            fastest available for the input's device.
        num_threads: CPU threads of the native backend (default: all cores). One thread reads
            float32 scores at about the speed of a streaming read; more help where one thread
            cannot use the memory bandwidth.

    The native float32 argmax uses AVX-512 or AVX2 when the CPU has them (checked at run
    time) and a portable loop elsewhere; ``SPEECHDECODE_CPU_ISA=avx512|avx2|portable`` forces
    one (an ISA the CPU lacks raises TensorError).

    Returns:
        One :class:`GreedyHypothesis` per utterance, in the input's framework and device.
        Ties between labels go to the lowest id (the first maximum).

    Raises:
        TensorError: wrong ndim/dtype, lengths out of [0, T], NaN/+inf scores (with position).
        InvalidArgumentError: blank outside [0, V).
        BackendUnavailableError: a forced backend that cannot run here.

    Example:
        >>> import numpy as np
        >>> x = np.log(np.eye(4, dtype=np.float32)[[1, 1, 0, 1, 2, 2]] + 1e-3)[None]
        >>> hyp = ctc_greedy(x)[0]
        >>> hyp.tokens.tolist(), hyp.frames.tolist()
        ([1, 1, 2], [0, 3, 4])
    """
    tokens, frames, offsets = ctc_greedy_packed(log_probs, lengths, blank, backend=backend, num_threads=num_threads)
    bounds = offsets.tolist()
    tokens = _tensors.like_input(tokens, log_probs)
    frames = _tensors.like_input(frames, log_probs)
    return [GreedyHypothesis(tokens[a:b], frames[a:b]) for a, b in itertools.pairwise(bounds)]
