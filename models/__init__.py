"""Model loops and adapters that feed the decoders and kernels of ``speechdecode.decoding``.

ASR: :class:`CtcAsr` (any encoder to log-probs, any decoder, offline and streaming).
TTS: :class:`CodecLM` (VALL-E AR + NAR), :class:`DelayPatternLM` (MusicGen / VoiceCraft, with
infilling), :class:`CodecStream` (codes to waveform chunk by chunk with a transformers codec),
:class:`UnitStreamer` (LLaMA-Omni units), :func:`melle_generate` (MELLE). Small
random-weight reference networks make every loop runnable (a stand-in acoustic model,
``CtcPosteriorSimulator``, is in :mod:`speechdecode.testing`). Hugging Face ``generate()``
adapters (:class:`SamplingWarper`, :class:`SamplerProcessor`, :class:`RepetitionAwareProcessor`,
:class:`DurationStoppingProcessor`, :func:`ras_generate`) load on first use.
"""

from speechdecode._deprecation import moved_names
from speechdecode.models import ctc_asr
from speechdecode.models.codec_lm import CodecLM, DelayPatternLM, GenerationOutput, TokenSampler
from speechdecode.models.codec_stream import CodecStream
from speechdecode.models.ctc_asr import AsrStream, CtcAsr
from speechdecode.models.melle import GaussianSampler, MelleOutput, melle_generate
from speechdecode.models.reference_nets import (
    CausalConvLstmEncoder,
    KVCache,
    TinyMelleLM,
    TinyTransformerLM,
    TinyUnitHead,
)
from speechdecode.models.unit_streamer import UnitStreamer

__all__ = ["AsrStream", "CtcAsr"]
__all__ += [
    "CausalConvLstmEncoder",
    "CodecLM",
    "CodecStream",
    "DelayPatternLM",
    "GenerationOutput",
    "KVCache",
    "TinyTransformerLM",
]
__all__ += [
    "GaussianSampler",
    "MelleOutput",
    "TinyMelleLM",
    "TinyUnitHead",
    "TokenSampler",
    "UnitStreamer",
    "melle_generate",
]

# transformers adapters (models/hf.py), imported on first use: transformers is an optional extra
# and slow to import.
_HF_EXPORTS = (
    "DurationStoppingProcessor",
    "RepetitionAwareProcessor",
    "SamplerProcessor",
    "SamplingWarper",
    "added_logits_processors",
    "ras_generate",
)
__all__ += list(_HF_EXPORTS)


_MOVED = moved_names(__name__, {"CtcPosteriorSimulator": "speechdecode.testing"})


def __getattr__(name: str):
    if name in ctc_asr.MOVED:  # the decoder protocol and the greedy decoder, now in speechdecode.decoding
        return getattr(ctc_asr, name)
    if name not in _HF_EXPORTS:
        return _MOVED(name)
    from speechdecode.models import hf

    return getattr(hf, name)
