"""Frame-rate transforms of codec codes and mel frames (VALL-E 2 grouping, VALL-E R merging, MELLE
reduction). One implementation in torch, in ``api.py`` (the ops are reshapes and one gather).
"""

from speechdecode.kernels.code_transforms.api import (
    expand_frames,
    group_codes,
    merge_residual,
    reduce_frames,
    ungroup_codes,
)

__all__ = ["expand_frames", "group_codes", "merge_residual", "reduce_frames", "ungroup_codes"]
