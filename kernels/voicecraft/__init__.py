"""VoiceCraft's token rearrangement, its inverse, span sampling and edit spans. The API, checks and
backend choice are in ``api.py``; ``reference.py`` is the oracle, ``native.py`` batched torch.
"""

from speechdecode.kernels.voicecraft.api import (
    EMPTY,
    EOG,
    EOS,
    MASK_BASE,
    PAD,
    Tokens,
    VoiceCraftLayout,
    causal_mask_inverse,
    causal_mask_rearrange,
    revert_segments,
    sample_mask_spans,
    select_edit_span,
)

__all__ = [
    "EMPTY",
    "EOG",
    "EOS",
    "MASK_BASE",
    "PAD",
    "Tokens",
    "VoiceCraftLayout",
    "causal_mask_inverse",
    "causal_mask_rearrange",
    "revert_segments",
    "sample_mask_spans",
    "select_edit_span",
]
