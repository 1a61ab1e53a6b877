"""Loaded at start-up by every python that `make test-sanitize` runs (PYTHONPATH points here).

Makes ``import speechdecode._native`` load the AddressSanitizer/UBSan build in
``$SPEECHDECODE_SANITIZED_LIB/speechdecode/`` instead of the in-place one, which other users of
the checkout keep running normally. Worker processes inherit the environment, so they load it too.
"""

import glob
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_LIB = os.environ.get("SPEECHDECODE_SANITIZED_LIB")


class _SanitizedNative(importlib.abc.MetaPathFinder):
    def __init__(self, path: str):
        self.path = path

    def find_spec(self, name, path=None, target=None):
        if name != "speechdecode._native":
            return None
        loader = importlib.machinery.ExtensionFileLoader(name, self.path)
        return importlib.util.spec_from_file_location(name, self.path, loader=loader)


if _LIB:
    _found = sorted(glob.glob(os.path.join(_LIB, "speechdecode", "_native*.so")))
    if not _found:
        raise ImportError(
            f"SPEECHDECODE_SANITIZED_LIB={_LIB}: no speechdecode/_native*.so there (run make test-sanitize)"
        )
    sys.meta_path.insert(0, _SanitizedNative(_found[0]))
