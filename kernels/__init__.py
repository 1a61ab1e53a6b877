"""One folder per hot op: its checked API and backend choice (``api.py``), the plain-torch oracle
(``reference.py``), the C++ wrapper or batched torch (``native.py``) and the Triton kernel
(``triton.py``); ``__init__.py`` only re-exports. Importing this package does not import triton:
a Triton wrapper is imported only when the triton backend is chosen. See docs/ARCHITECTURE.md.
"""
