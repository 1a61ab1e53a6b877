"""speechdecode: decoding and language-model inference for speech.

The front door: version, errors and the public entry points of the components
(``speechdecode.decoding``, ``speechdecode.lm``, ``speechdecode.graphs``,
``speechdecode.models``, ``speechdecode.kernels``). No algorithms live here.
"""

from speechdecode import errors
from speechdecode._version import __version__

__all__ = ["__version__", "errors"]
