"""RALL-E duration-guided stopping: no EOS before the predicted length, forced EOS at it.

With per-phoneme durations d_b, row b of a batch should emit D_b = sum(d_b) speech tokens and
then EOS. Steps count generated tokens from 0: steps 0 .. D_b - 1 produce speech, step D_b
produces EOS.
"""

from __future__ import annotations

import torch

from speechdecode import _args, _tensors
from speechdecode.errors import TensorError

__all__ = ["DurationGuidedStopping"]


class DurationGuidedStopping:
    """Logits processor for duration-guided inference (RALL-E, docs/DEFINITIONS.md section 6).

    Args:
        durations: [B, L] integer frames per phoneme, or [B] integer totals D_b; values >= 0.
            numpy, torch or a list.
        eos_id: the EOS token id.

    Calling ``processor(step, logits)`` with logits [B, V] returns a new tensor (the input is
    not modified) where, per row b:

    * ``step < D_b``: the EOS logit is -inf (no early stop);
    * ``step >= D_b``: every logit but EOS is -inf and EOS is 0, so EOS has probability 1
      (even if an earlier processor had set it to -inf).

    Raises:
        TensorError: durations not 1-D/2-D, not integer, or negative (with its index); logits
            not [B, V] floating point with the processor's B, or EOS outside [0, V).
        InvalidArgumentError: eos_id or step not an integer >= 0.

    Example:
        >>> stop = DurationGuidedStopping(torch.tensor([[1, 1], [0, 1]]), eos_id=0)
        >>> stop(1, torch.zeros(2, 3))
        tensor([[-inf, 0., 0.],
                [0., -inf, -inf]])
        >>> stop.done(1)
        tensor([False,  True])
    """

    def __init__(self, durations, eos_id: int):
        d = _tensors.counts(durations, "durations", (1, 2), "a 2-D [B, L] or 1-D [B] array")
        self.totals = d.sum(dim=1) if d.ndim == 2 else d.clone()
        self.eos_id = _args.integer(eos_id, "eos_id", 0)

    def done(self, step: int) -> torch.Tensor:
        """bool [B]: rows whose EOS is forced at ``step`` (``step >= D_b``)."""
        return _args.integer(step, "step", 0) >= self.totals

    def __call__(self, step: int, logits: torch.Tensor) -> torch.Tensor:
        x = _tensors.as_tensor(logits, "logits")
        batch = self.totals.shape[0]
        if x.ndim != 2 or x.shape[0] != batch:
            raise TensorError("logits", f"shape [{batch}, V]", _tensors._describe(logits))
        if not x.dtype.is_floating_point:
            raise TensorError("logits", "a floating-point dtype", _tensors._describe(logits))
        if self.eos_id >= x.shape[1]:
            raise TensorError("logits", f"more than eos_id={self.eos_id} columns", _tensors._describe(logits))
        forced = self.done(step).to(x.device)
        is_eos = torch.arange(x.shape[1], device=x.device) == self.eos_id
        blocked = torch.where(forced[:, None], ~is_eos[None, :], is_eos[None, :])
        out = x.masked_fill(blocked, float("-inf"))
        out[:, self.eos_id] = torch.where(forced, torch.zeros_like(out[:, self.eos_id]), out[:, self.eos_id])
        return out
