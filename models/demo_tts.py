"""Deprecated: moved to :mod:`speechdecode.demo.tts` (this alias goes in the next release)."""

from speechdecode._deprecation import moved_module

moved_module(__name__, "speechdecode.demo.tts")
