"""Checks of scalar options (search widths, weights, thresholds) shared by the public APIs.

Each returns the value as a plain int / float or raises
:class:`~speechdecode.errors.InvalidArgumentError` naming the option, what it expects and what
it got.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

from speechdecode.errors import InvalidArgumentError


def integer(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (>= ``low`` and <= ``high`` when given; bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (low is not None and value < low):
        raise InvalidArgumentError(name, "an integer" if low is None else f"an integer >= {low}", repr(value))
    if high is not None and value > high:
        raise InvalidArgumentError(name, f"an integer in [{low}, {high:,}]", repr(value))
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


def optional_integer(value, name: str, low: int) -> int | None:
    """None, or ``value`` as an int >= ``low`` (bools refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidArgumentError(name, f"None or an integer >= {low}", repr(value))
    return int(value)


def interval(value, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    """``value`` as a float in [low, high], or (low, high] with ``open_low`` (NaN and bools refused)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and (low < value if open_low else low <= value) and value <= high):
        raise InvalidArgumentError(name, f"a number in {'(' if open_low else '['}{low:g}, {high:g}]", repr(value))
    return float(value)


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable, capped by an address-space limit."""
    import resource

    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return available if soft == resource.RLIM_INFINITY else min(available, soft)


def peak_memory() -> int:
    """This process's peak resident memory in bytes since it started its program.

    Linux's VmHWM: ``ru_maxrss`` also counts the parent's pages a child shared before it
    exec'ed, so a command started from a large process (a test runner) would report that size.
    """
    import resource

    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_ALWAYS_FITS = 1 << 26  # 64 MiB: results this small are never refused


def fits_in_memory(nbytes: int, name: str, what: str) -> None:
    """Refuse, before allocating, a result of ``nbytes`` that cannot fit in the memory available.

    Raises:
        InvalidArgumentError: naming ``name`` (the argument that sets the size), the size ``what``
            would need and the limit.
    """
    if nbytes <= _ALWAYS_FITS:  # per-step calls pay no /proc read
        return
    limit = available_memory()
    if nbytes > limit:
        raise InvalidArgumentError(
            name, f"a size whose {what} fits in the {_gib(limit)} of memory available", f"{_gib(nbytes)} needed"
        )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def boolean(value, name: str) -> bool:
    """``value`` as a bool: True or False (numpy's bools too; 0, 1 and other truthy values refused)."""
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgumentError(name, "True or False", repr(value))
    return bool(value)


def native_options(struct: str, **values):
    """An options struct of the native module (``_native.<struct>``) holding ``values``, checked by its
    ``validate()``: the one place a native search's option ranges are checked.

    Here only the Python types are checked (what the struct cannot see): a bool where the field is
    one, an integer for integer fields, a real number for the others; each error names the option.
    Without the extension, a namespace of the values (the reference searches read the same fields;
    ranges are then not checked).
    """
    import types

    from speechdecode import _backend

    if not _backend.HAS_NATIVE:
        return types.SimpleNamespace(**values)
    options = getattr(_backend.native(), struct)()
    for name, value in values.items():
        default = getattr(options, name)
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "a bool"
        elif isinstance(default, int):
            ok, expected = isinstance(value, numbers.Integral) and not isinstance(value, bool), "a 64-bit integer"
        else:
            ok, expected = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
        try:
            if ok:
                setattr(options, name, value)
        except TypeError:
            ok = False
        if not ok:
            raise InvalidArgumentError(name, expected, repr(value))
    options.validate()
    return options
