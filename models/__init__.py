"""Small reference models and adapters that feed the decoders in ``speechdecode.decoding``.

Adapters for real acoustic and codec models (Hugging Face transformers) land with their issue.
For now this holds :class:`CtcPosteriorSimulator`, a seeded stand-in for a CTC acoustic model
used by tests, the demo and benchmarks.
"""

from speechdecode.models.codec_lm import CodecLM, DelayPatternLM, GenerationOutput, TokenSampler
from speechdecode.models.ctc_asr import AsrStream, CtcAsr, CtcDecoder, CtcDecoderStream, GreedyCtcDecoder
from speechdecode.models.ctc_simulator import CtcPosteriorSimulator
from speechdecode.models.melle import MelleOutput, melle_generate
from speechdecode.models.reference_nets import (
    CausalConvLstmEncoder,
    KVCache,
    TinyMelleLM,
    TinyTransformerLM,
    TinyUnitHead,
)
from speechdecode.models.unit_streamer import UnitStreamer

__all__ = ["CtcPosteriorSimulator"]
__all__ += ["AsrStream", "CtcAsr", "CtcDecoder", "CtcDecoderStream", "GreedyCtcDecoder"]
__all__ += ["CausalConvLstmEncoder", "CodecLM", "DelayPatternLM", "GenerationOutput", "KVCache", "TinyTransformerLM"]
__all__ += ["MelleOutput", "TinyMelleLM", "TinyUnitHead", "TokenSampler", "UnitStreamer", "melle_generate"]

# transformers adapters (models/hf.py), imported on first use: transformers is an optional extra
# and slow to import.
_HF_EXPORTS = ("DurationStoppingProcessor", "SamplingWarper", "ras_generate")
__all__ += list(_HF_EXPORTS)


def __getattr__(name: str):
    if name in _HF_EXPORTS:
        from speechdecode.models import hf

        return getattr(hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
