"""Every example in a docstring runs and prints what it shows (the API docs are tested as code)."""

import doctest
import importlib
import importlib.util
import pathlib
import pkgutil
import re
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The packages of pyproject's [tool.setuptools.package-dir] ("speechdecode.lm" = "lm", ...).
PACKAGES = re.findall(r'^"(speechdecode[\w.]*)" = "', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)


def _modules_with_examples() -> list[str]:
    names = set()
    for package in PACKAGES:
        names.add(package)
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            names.add(info.name)
    found = []
    for name in sorted(names):
        origin = importlib.util.find_spec(name).origin
        if not (origin and origin.endswith(".py") and ">>> " in pathlib.Path(origin).read_text(encoding="utf-8")):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            tests = doctest.DocTestFinder().find(importlib.import_module(name))
        if any(not e.options.get(doctest.SKIP) for test in tests for e in test.examples):
            found.append(name)
    return found


MODULES = _modules_with_examples()


def test_the_api_has_examples():
    # every package directory was walked (a change to the mapping would otherwise drop a whole
    # package's examples without a failure)
    walked = {name.split(".")[1] for name in MODULES if name.count(".")}
    assert walked >= {"decoding", "kernels", "lm", "graphs", "models"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch, tmp_path):
    # examples read the repository's test data by relative path and may write files
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (printed above)"
