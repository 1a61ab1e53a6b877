"""Small reference models and adapters that feed the decoders in ``speechdecode.decoding``.

Adapters for real acoustic and codec models (Hugging Face transformers) land with their issue.
For now this holds :class:`CtcPosteriorSimulator`, a seeded stand-in for a CTC acoustic model
used by tests, the demo and benchmarks.
"""

from speechdecode.models.ctc_simulator import CtcPosteriorSimulator

__all__ = ["CtcPosteriorSimulator"]
