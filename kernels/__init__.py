"""GPU kernels in Triton, one op per folder, each beside its plain-torch reference.

``kernels/<op>/reference.py`` is the oracle (never edited to match a kernel) and
``kernels/<op>/triton.py`` the kernel with its host wrapper. Importing this package does not
import triton; the wrappers are imported only when the triton backend is chosen.
"""
