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


def keywords(where: str, args: tuple, options: dict, leading: tuple[str, ...], given: dict) -> tuple[dict, dict]:
    """Positional ``args`` of a signature that is now keyword-only, named in its old order
    (``leading`` options, then the ``given`` keyword parameters), with a warning: returns
    (``options`` with the leading ones added, ``given`` updated)."""
    names = (*leading, *given)
    if len(args) > len(names):
        raise TypeError(f"{where} takes at most {len(names)} positional arguments ({len(args)} given)")
    named = dict(zip(names, args, strict=False))
    twice = sorted(set(named) & set(options))
    if twice:
        raise TypeError(f"{where} got multiple values for {', '.join(twice)}")
    warnings.warn(
        f"positional arguments to {where} are deprecated and will be refused in the next release: "
        f"pass {', '.join(named)} by name",
        DeprecationWarning,
        3,
    )
    options = {**options, **{k: v for k, v in named.items() if k in leading}}
    return options, {**given, **{k: v for k, v in named.items() if k in given}}
