"""One beam-search step: pick each batch item's best ``beam`` continuations.

Definition (every backend implements exactly this)::

    cand[row, v] = beam_scores[row] + log_probs[row, v]          float32
    finished row: cand[row, eos] = beam_scores[row], every other v -> -inf
                  (eos = eos_id, or 0 when eos_id is None): the beam carries itself on once
    key = cand / ((length + 1) ** length_penalty)   when ``length`` is given, else key = cand
    per batch item b: order its beam*V candidates by (key descending, flat index ascending),
        flat index = beam_idx * V + v, and take the first ``beam``

Returned scores are the raw sums ``cand`` (no length penalty): the penalty only ranks. With one
scalar ``length`` it is a positive scale, so it changes the order only where float32 rounding
makes two keys equal (then the lower flat index wins); it is there so that callers comparing
keys across steps get the same numbers.

Backends: ``reference`` (torch, a stable sort per batch item; the oracle), ``native`` (batched
torch: one stable sort of the batch), ``triton`` (a program per batch item, ``beam`` passes of
max-extraction over blocks of the beam*V candidates; CUDA, or CPU under TRITON_INTERPRET=1).
"""

from __future__ import annotations

import math

import torch

from speechdecode import _args, _backend, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError


def _impl(device: str, backend: str | None):
    # native is batched torch here: it needs no compiled extension and runs on any device
    return _backend.implementation(__package__, device, backend, torch_native=True)


def _first_bad(bad: torch.Tensor) -> int:
    return int(bad.nonzero()[0, 0])


def beam_search_step(
    log_probs,
    beam_scores,
    beam: int,
    *,
    eos_id: int | None = None,
    length: int | None = None,
    length_penalty: float = 1.0,
    finished=None,
    backend: str | None = None,
):
    """Select the top ``beam`` (parent beam, token) continuations of every batch item.

    Args:
        log_probs: [B*beam, V] float32/float16/bfloat16, rows grouped by batch item
            (row = b*beam + beam_idx). No NaN, no +inf.
        beam_scores: [B*beam] float, the running score of each beam. No NaN, no +inf.
        beam: beams per batch item, 1 <= beam <= beam*V.
        eos_id: token a finished beam emits (default 0), in [0, V).
        length: current length (int >= 0); when given, ranking uses
            ``score / (length + 1) ** length_penalty``.
        length_penalty: finite float exponent.
        finished: None or [B*beam] bool; a finished beam yields one candidate only: itself,
            token ``eos_id``, score unchanged.
        backend: "reference", "native" or "triton" (default: triton on CUDA, else native).

    Returns:
        (next_tokens int64 [B, beam], parent_beams int64 [B, beam] in [0, beam),
        scores float32 [B, beam]) on log_probs' device, best first; scores are the raw sums
        (no length penalty). Ties go to the lower flat index beam_idx*V + v.

    Raises:
        TensorError / InvalidArgumentError naming the argument (and the row for NaN).

    Example:
        >>> lp = torch.log(torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]))
        >>> t, p, s = beam_search_step(lp, torch.tensor([0.0, -1.0]), 2)
        >>> t.tolist(), p.tolist()
        ([[1, 2]], [[0, 0]])
    """
    x = _tensors.scores(log_probs, "log_probs", 2)
    beam = _args.integer(beam, "beam", 1)
    R, V = x.shape
    if R % beam != 0:
        raise TensorError("log_probs", f"a row count divisible by beam={beam}", _tensors._describe(log_probs))
    if beam > V * beam or V < 1:
        raise InvalidArgumentError("beam", f"at most beam*V = {V * beam} candidates per item", beam)
    B = R // beam
    dev = x.device
    s = _tensors.as_tensor(beam_scores, "beam_scores")
    if s.ndim != 1 or s.shape[0] != R:
        raise TensorError(
            "beam_scores", f"shape [{R}] (B*beam, divisible by beam={beam})", _tensors._describe(beam_scores)
        )
    if s.dtype.is_complex or s.dtype == torch.bool or not s.dtype.is_floating_point:
        raise TensorError("beam_scores", "a floating dtype", _tensors._describe(beam_scores))
    s = s.to(device=dev, dtype=torch.float32).contiguous()
    # one reduction in the usual case: a row's max is NaN when it holds a NaN, +inf when it holds +inf
    if not bool((x.amax(dim=1) < float("inf")).all()):
        f = x.float()
        nan = torch.isnan(f).any(dim=1)
        if bool(nan.any()):
            raise TensorError("log_probs", "no NaN", f"NaN in row {_first_bad(nan[:, None])}")
        pinf = (f == float("inf")).any(dim=1)
        raise TensorError("log_probs", "no +inf", f"+inf in row {_first_bad(pinf[:, None])}")
    bad = torch.isnan(s) | (s == float("inf"))
    if bool(bad.any()):
        i = _first_bad(bad[:, None])
        raise TensorError("beam_scores", "no NaN or +inf", f"{s[i].item()} at row {i}")
    eos = 0 if eos_id is None else _tensors.label(eos_id, "eos_id", V)
    if finished is None:
        fin = torch.zeros(R, dtype=torch.bool, device=dev)
    else:
        ft = _tensors.as_tensor(finished, "finished")
        if ft.ndim != 1 or ft.shape[0] != R or ft.dtype != torch.bool:
            raise TensorError("finished", f"a bool tensor of shape [{R}]", _tensors._describe(finished))
        fin = ft.to(dev).contiguous()
    denom = 1.0
    if length is not None:
        length = _args.integer(length, "length", 0)
        length_penalty = _args.real(length_penalty, "length_penalty")
        denom = float((length + 1) ** length_penalty)
        if not (math.isfinite(denom) and denom > 0):
            raise InvalidArgumentError("length_penalty", "a penalty giving a finite positive divisor", length_penalty)
    # round the divisor to float32 once, so every backend divides by the same number
    denom = float(torch.tensor(denom, dtype=torch.float32))
    if B == 0:
        empty = torch.empty((0, beam), dtype=torch.int64, device=dev)
        return empty, empty.clone(), torch.empty((0, beam), dtype=torch.float32, device=dev)
    return _impl(dev.type, backend).beam_search_step(x, s, fin, beam, eos, denom)
