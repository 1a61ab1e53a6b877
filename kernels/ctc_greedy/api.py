"""CTC greedy decoding's checked entry point: argument checks and the backend dispatch.

Every backend returns the packed form ``(tokens, frames, offsets)``: int64 tensors where
utterance b owns ``tokens[offsets[b]:offsets[b + 1]]`` and ``frames`` holds each token's first
frame. :func:`speechdecode.decoding.ctc_greedy` builds one hypothesis per utterance from it.
"""

from __future__ import annotations

from speechdecode import _backend, _tensors

__all__ = ["ctc_greedy_packed"]


def ctc_greedy_packed(
    log_probs, lengths=None, blank: int = 0, *, backend: str | None = None, num_threads: int | None = None
):
    """:func:`~speechdecode.decoding.ctc_greedy` in packed form: int64 tensors ``(tokens, frames, offsets)``.

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
        from speechdecode.kernels.ctc_greedy import native

        return native.ctc_greedy(x, lens, blank, num_threads)
    if impl == "triton":
        from speechdecode.kernels.ctc_greedy import triton as kernel
    else:
        from speechdecode.kernels.ctc_greedy import reference as kernel
    return kernel.ctc_greedy(x, lens, blank)
