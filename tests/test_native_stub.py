"""speechdecode/_native.pyi matches the built module: every function and class the extension
defines has a stub, every stub has something behind it, class by class and method by method."""

import ast
import inspect
from pathlib import Path

import pytest

from speechdecode import _backend

pytestmark = pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")

STUB = Path(__file__).resolve().parents[1] / "speechdecode" / "_native.pyi"


def stub_members() -> dict[str, set[str] | None]:
    """Top-level stubbed names: classes map to their member names (methods, properties, annotated
    fields), functions to None."""
    out: dict[str, set[str] | None] = {}
    for node in ast.parse(STUB.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = None
        elif isinstance(node, ast.ClassDef):
            out[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            out[node.name] |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}  # fields
    return out


def public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def test_every_native_function_and_class_has_a_stub_and_back():
    native = _backend.native()
    stubs = stub_members()
    defined = {n for n in public(dir(native)) if callable(getattr(native, n)) or inspect.isclass(getattr(native, n))}
    assert sorted(defined - stubs.keys()) == [], "names the extension defines without a stub"
    assert sorted(stubs.keys() - defined) == [], "stubs of names the extension does not define"


def test_every_class_member_matches():
    native = _backend.native()
    for name, members in stub_members().items():
        if members is None:
            continue
        cls = getattr(native, name)
        defined = {n for n in public(vars(cls)) if not n.startswith("__")}
        assert sorted(defined - members) == [], f"{name}: members without a stub"
        assert sorted(public(members) - defined) == [], f"{name}: stubs of members it does not have"
