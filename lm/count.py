"""Deprecated: moved to :mod:`speechdecode.lm.counting` (this alias goes in the next release)."""

from speechdecode._deprecation import moved_module

moved_module(__name__, "speechdecode.lm.counting")
