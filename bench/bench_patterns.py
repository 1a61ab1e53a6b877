"""Delay-pattern build / revert (MusicGen) against an audiocraft-style index-gather.

The anchor follows audiocraft's DelayedPatternProvider as its code runs: every call walks the
pattern layout in Python to build a [K, S] table of flat source positions (with one extra
position holding the special token), then gathers ``cat([codes, special])[..., index]``; revert
builds the inverse table the same way and gathers. Ours: :mod:`speechdecode.kernels.delay_pattern`
(``native`` = strided copies per codebook on CPU). Outputs are checked equal before timing. The
anchor's time is mostly its Python index loop; a row with the index built once shows the gather
alone.
"""

from __future__ import annotations

import torch

from speechdecode.bench.harness import Suite
from speechdecode.kernels import delay_pattern

SPECIAL = 2048


def _build_index(num_codebooks: int, frames: int, delays: list[int]) -> tuple[torch.Tensor, int]:
    steps = frames + max(delays) + 1
    index = torch.full((num_codebooks, steps), frames, dtype=torch.long)  # `frames` = the special slot
    for step in range(steps):
        for k, d in enumerate(delays):
            t = step - 1 - d
            if 0 <= t < frames:
                index[k, step] = t
    return index, steps


def gather_build(codes: torch.Tensor, delays: list[int]) -> torch.Tensor:
    batch, num_codebooks, frames = codes.shape
    index, _ = _build_index(num_codebooks, frames, delays)
    values = torch.cat([codes, codes.new_full((batch, num_codebooks, 1), SPECIAL)], dim=-1)
    return values.gather(2, index.expand(batch, -1, -1))


def gather_revert(sequence: torch.Tensor, delays: list[int]) -> torch.Tensor:
    batch, num_codebooks, steps = sequence.shape
    frames = steps - max(delays) - 1
    index = torch.empty((num_codebooks, frames), dtype=torch.long)
    for t in range(frames):
        for k, d in enumerate(delays):
            index[k, t] = t + 1 + d
    return sequence.gather(2, index.expand(batch, -1, -1))


def run(suite: Suite, quick: bool) -> None:
    sizes = [(1, 4, 300), (16, 4, 1500)] if quick else [(1, 4, 3000), (16, 4, 3000), (64, 8, 3000), (256, 4, 750)]
    for batch, num_codebooks, frames in sizes:
        delays = list(range(num_codebooks))
        codes = torch.randint(0, 2048, (batch, num_codebooks, frames), generator=torch.Generator().manual_seed(0))
        sequence, _ = delay_pattern.build(codes, delays, special=SPECIAL, backend="native")
        if not torch.equal(sequence, gather_build(codes, delays)):
            raise RuntimeError("build differs from the index-gather anchor")
        if not torch.equal(delay_pattern.revert(sequence, delays, backend="native"), gather_revert(sequence, delays)):
            raise RuntimeError("revert differs from the index-gather anchor")
        params = {"batch": batch, "codebooks": num_codebooks, "frames": frames, "delays": "0..K-1"}
        nbytes = codes.numel() * codes.element_size()
        case = f"build B={batch} K={num_codebooks} T={frames}"
        suite.add(
            case,
            "index-gather (audiocraft-style)",
            lambda c=codes, d=delays: gather_build(c, d),
            anchor=True,
            bytes_processed=nbytes,
            params=params,
        )
        suite.add(
            case,
            "delay_pattern.build (native)",
            lambda c=codes, d=delays: delay_pattern.build(c, d, special=SPECIAL, backend="native"),
            bytes_processed=nbytes,
            params=params,
        )
        index = _build_index(num_codebooks, frames, delays)[0].expand(batch, -1, -1)
        suite.add(
            case,
            "index-gather, index built once (outside the timing)",
            lambda c=codes, i=index: torch.cat([c, c.new_full((*c.shape[:2], 1), SPECIAL)], dim=-1).gather(2, i),
            bytes_processed=nbytes,
            params=params,
        )
        case = f"revert B={batch} K={num_codebooks} T={frames}"
        suite.add(
            case,
            "index-gather (audiocraft-style)",
            lambda s=sequence, d=delays: gather_revert(s, d),
            anchor=True,
            bytes_processed=nbytes,
            params=params,
        )
        suite.add(
            case,
            "delay_pattern.revert (native)",
            lambda s=sequence, d=delays: delay_pattern.revert(s, d, backend="native"),
            bytes_processed=nbytes,
            params=params,
        )
