"""The layout rules the code keeps (docs/ARCHITECTURE.md): who may import what, old names that still work."""

from __future__ import annotations

import ast
import importlib
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENGINE = ("decoding", "lm", "graphs", "models", "kernels")


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in ``path``, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_engine_never_imports_test_or_demo_aids():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for folder in ENGINE
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, module in _imports(path)
        if module.startswith(("speechdecode.testing", "speechdecode.demo"))
    ]
    assert bad == []


def test_only_kernels_import_a_reference_at_run_time():
    """A reference is an op's oracle and backend: outside kernels/ code calls the op's package."""
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for folder in ("decoding", "lm", "graphs", "models", "speechdecode")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, module in _imports(path)
        if module.startswith("speechdecode.kernels.") and ".reference" in module
    ]
    assert bad == []


MOVED_MODULES = {
    "speechdecode.lm.synthetic": "speechdecode.testing.sentences",
    "speechdecode.lm.corpora": "speechdecode.testing.corpora",
    "speechdecode.models.ctc_simulator": "speechdecode.testing.ctc_simulator",
    "speechdecode.models.synth": "speechdecode.testing.speech",
    "speechdecode.models.demo_asr": "speechdecode.demo.asr",
    "speechdecode.models.demo_tts": "speechdecode.demo.tts",
}


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_moved_module_is_an_alias_that_warns(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated .* use {MOVED_MODULES[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED_MODULES[old])


MOVED_NAMES = [
    ("speechdecode.lm", "SentenceGenerator"),
    ("speechdecode.lm", "write_corpus"),
    ("speechdecode.lm", "MIN_WORDS"),
    ("speechdecode.lm", "MAX_WORDS"),
    ("speechdecode.models", "CtcPosteriorSimulator"),
]


@pytest.mark.parametrize(("package", "name"), MOVED_NAMES)
def test_moved_name_is_an_alias_that_warns(package, name):
    with pytest.warns(DeprecationWarning, match=rf"{package}\.{name} is deprecated .* speechdecode\.testing\.{name}"):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module("speechdecode.testing"), name)


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        importlib.import_module("speechdecode.lm").NoSuchName  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        importlib.import_module("speechdecode.models").NoSuchName  # noqa: B018


def test_every_package_folder_is_installed():
    """A wheel holds only the packages pyproject.toml lists: every folder with an __init__.py is one."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *parts)))
    assert found - listed == set()
    assert listed - found == set()


def test_op_folders_keep_the_layout():
    """kernels/<op>/__init__.py only re-exports (imports and __all__): the code is in api.py and beside it."""
    for init in sorted((ROOT / "kernels").glob("*/__init__.py")):
        tree = ast.parse(init.read_text())
        body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        kinds = {type(node).__name__ for node in body}
        assert kinds <= {"ImportFrom", "Assign"}, f"{init.relative_to(ROOT)} holds {sorted(kinds)}"
        assigned = [t.id for node in body if isinstance(node, ast.Assign) for t in node.targets]
        assert assigned in ([], ["__all__"]), f"{init.relative_to(ROOT)} assigns {assigned}"
