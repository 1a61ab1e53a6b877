"""docs/API.md names one place to import every public name from; the packages' __all__ agree."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Op packages whose public names are documented where users import them (speechdecode.decoding).
OP_PACKAGES = ("speechdecode.kernels.sampling", "speechdecode.kernels.beam_search", "speechdecode.kernels.ras")


def _documented() -> dict[str, list[str]]:
    rows = re.findall(r"^\| `([\w.]+)` \| [^|]+ \| (.+) \|$", (ROOT / "docs" / "API.md").read_text(), re.M)
    assert rows, "docs/API.md has no table rows"
    return {module: re.findall(r"`(\w+)`", names) for module, names in rows}


DOCUMENTED = _documented()


def _key(module: str, name: str):
    """What a name stands for: the object, or for a constant (equal ints share objects) its place."""
    value = getattr(importlib.import_module(module), name)
    return (module, name) if isinstance(value, (int, float, str)) else id(value)


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_documented_names_import_from_their_place(module):
    imported = importlib.import_module(module)
    for name in DOCUMENTED[module]:
        assert name in imported.__all__, f"{module}.{name} is documented but not in __all__"
        getattr(imported, name)


def test_each_object_has_one_place():
    seen: dict[int, str] = {}
    for module, names in DOCUMENTED.items():
        for name in names:
            key = _key(module, name)
            assert key not in seen, f"{module}.{name} is also documented as {seen.get(key)}"
            seen[key] = f"{module}.{name}"


@pytest.mark.parametrize("module", sorted(set(DOCUMENTED) | set(OP_PACKAGES)))
def test_every_exported_name_is_documented(module):
    imported = importlib.import_module(module)
    documented = {_key(place, name) for place, names in DOCUMENTED.items() for name in names}
    missing = [name for name in imported.__all__ if _key(module, name) not in documented]
    assert missing == [], f"{module} exports {missing}, which docs/API.md does not list"
