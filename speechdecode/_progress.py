"""Progress bars for long work: on stderr, and only when stderr is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr that is disabled (prints nothing) when stderr is not a TTY."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        leave=False,
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
