"""Searches and samplers that users call: CTC greedy, prefix beam and WFST decoding (one
:class:`Decoder` / :class:`DecoderStream` protocol), streaming CTC speech units, error rates."""

from speechdecode.decoding.ctc_greedy import (
    GreedyCtcDecoder,
    GreedyCtcStream,
    GreedyHypothesis,
    ctc_greedy,
    ctc_greedy_packed,
)
from speechdecode.decoding.ctc_prefix_beam_search import CtcPrefixBeamSearch, CtcPrefixBeamSearchStream
from speechdecode.decoding.hypothesis import Hypothesis, WfstHypothesis
from speechdecode.decoding.metrics import char_error_rate, edit_distance, word_error_rate
from speechdecode.decoding.protocol import Decoder, DecoderStream, Stream
from speechdecode.decoding.ras import PRESETS, RepetitionAwareSampler, guided_ras, ras
from speechdecode.decoding.samplers import FilterSampler, RasSampler, Sampler
from speechdecode.decoding.stopping import DurationGuidedStopping
from speechdecode.decoding.unit_streamer import CtcUnitStreamer, UnitCallbackError, UnitChunk
from speechdecode.decoding.wfst_decoder import WfstDecoder, WfstStream
from speechdecode.kernels.beam_search import beam_search_step
from speechdecode.kernels.sampling import guided_sample, sample

__all__ = [
    "PRESETS",
    "CtcPrefixBeamSearch",
    "CtcPrefixBeamSearchStream",
    "CtcUnitStreamer",
    "Decoder",
    "DecoderStream",
    "DurationGuidedStopping",
    "FilterSampler",
    "GreedyCtcDecoder",
    "GreedyCtcStream",
    "GreedyHypothesis",
    "Hypothesis",
    "RasSampler",
    "RepetitionAwareSampler",
    "Sampler",
    "Stream",
    "UnitCallbackError",
    "UnitChunk",
    "WfstDecoder",
    "WfstHypothesis",
    "WfstStream",
    "beam_search_step",
    "char_error_rate",
    "ctc_greedy",
    "ctc_greedy_packed",
    "edit_distance",
    "guided_ras",
    "guided_sample",
    "ras",
    "sample",
    "word_error_rate",
]
