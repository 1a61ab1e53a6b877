"""Deprecated: moved to :mod:`speechdecode.testing.sentences` (this alias goes in the next release)."""

from speechdecode._deprecation import moved_module

moved_module(__name__, "speechdecode.testing.sentences")
