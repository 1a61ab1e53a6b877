"""Checks of scalar options (search widths, weights, thresholds) shared by the public APIs.

Each returns the value as a plain int / float or raises
:class:`~speechdecode.errors.InvalidArgumentError` naming the option, what it expects and what
it got.
"""

from __future__ import annotations

import math
import numbers

from speechdecode.errors import InvalidArgumentError


def integer(value, name: str, low: int) -> int:
    """``value`` as an int >= ``low`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidArgumentError(name, f"an integer >= {low}", repr(value))
    return int(value)


def real(value, name: str, *, low: float = -math.inf, strict: bool = False, finite: bool = True) -> float:
    """``value`` as a float >= ``low`` (> with ``strict``), not NaN, and finite unless ``finite=False``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    ok = ok and (not finite or math.isfinite(value)) and (value > low if strict else value >= low)
    if not ok:
        what = "a finite number" if finite else "a number (not NaN)"
        if low > -math.inf:
            what += f" {'>' if strict else '>='} {low}"
        raise InvalidArgumentError(name, what, repr(value))
    return float(value)
