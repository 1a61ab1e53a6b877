"""Old import paths kept for one release: they still work and say where the name went."""

from __future__ import annotations

import importlib
import sys
import warnings


def _warn(old: str, new: str) -> None:
    renamed(old, new, 4)


def moved_module(old: str, new: str) -> None:
    """Make module ``old`` (the caller, while it is being imported) an alias of module ``new``."""
    _warn(old, new)
    sys.modules[old] = importlib.import_module(new)


def moved_names(package: str, names: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that serves ``names`` (name -> new module), warning."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        _warn(f"{package}.{name}", f"{names[name]}.{name}")
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__


def renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` (a name, method or attribute) is deprecated in favour of ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release: use {new}", DeprecationWarning, stacklevel
    )
