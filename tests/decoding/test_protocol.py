"""Every decoder keeps one contract (decoding/protocol.py): the protocol, the stream verbs, and
the deprecated names that still work (with a DeprecationWarning) for one release."""

from __future__ import annotations

import numpy as np
import pytest

from speechdecode import _backend
from speechdecode.decoding import (
    CtcPrefixBeamSearch,
    CtcUnitStreamer,
    Decoder,
    DecoderStream,
    GreedyCtcDecoder,
    Stream,
    WfstDecoder,
    ctc_greedy,
)
from speechdecode.errors import InvalidArgumentError

TOKENS = ["-", "|", "a", "b"]
GRAPH = {  # one word "a" (id 1): token 1 at least once, blanks (token 0) around it
    "start": 0,
    "final_weights": np.array([np.inf, 0.0], np.float32),
    "arc_offsets": np.array([0, 2, 4]),
    "ilabels": np.array([1, 2, 1, 2], np.int32),
    "olabels": np.array([0, 1, 0, 0], np.int32),
    "weights": np.zeros(4, np.float32),
    "nextstates": np.array([0, 1, 1, 1], np.int32),
    "num_tokens": 2,
    "blank": 0,
}


def _log_probs(seed: int, frames: int, vocab: int) -> np.ndarray:
    x = np.random.default_rng(seed).random((1, frames, vocab)).astype(np.float32) + 0.05
    return np.log(x / x.sum(-1, keepdims=True))


def _decoders():
    yield GreedyCtcDecoder(TOKENS), 4
    yield CtcPrefixBeamSearch(TOKENS, beam=4), 4
    yield WfstDecoder(GRAPH, words=["<eps>", "a"]), 2


@pytest.mark.parametrize("index", range(3))
def test_every_decoder_keeps_the_protocol(index):
    decoder, vocab = list(_decoders())[index]
    assert isinstance(decoder, Decoder)
    x = _log_probs(index, 11, vocab)
    offline = decoder(x)[0]
    stream = decoder.stream()
    assert isinstance(stream, DecoderStream)
    stream.accept(x[0, :4])
    stream.accept(x[0, 4:])
    assert stream.partial() is not None
    assert stream.finish() == offline
    for call in (lambda: stream.accept(x[0, :1]), stream.partial, stream.finish):
        with pytest.raises(InvalidArgumentError, match="finished"):
            call()


def test_the_unit_streamer_is_a_stream():
    assert isinstance(CtcUnitStreamer(blank=0), Stream)


def test_deprecated_names_warn_and_still_work():
    x = _log_probs(1, 9, 4)
    hyp = ctc_greedy(x)[0]
    with pytest.warns(DeprecationWarning, match="token_frames"):
        assert hyp.frames is hyp.token_frames
    search = CtcPrefixBeamSearch(TOKENS, beam=4)
    stream = search.stream()
    stream.accept(x[0])
    with pytest.warns(DeprecationWarning, match="finish"):
        assert stream.finalize() == search(x)[0]
    stream.accept(x[0, :0])  # finalize() let the stream go on, as before
    wfst = WfstDecoder(GRAPH, words=["<eps>", "a"]).stream()
    with pytest.warns(DeprecationWarning, match="finish"):
        wfst.finalize()
    greedy = GreedyCtcDecoder(TOKENS).stream()
    greedy.accept(x[0])
    with pytest.warns(DeprecationWarning, match="finish"):
        assert greedy.finalize() == GreedyCtcDecoder(TOKENS)(x)[0]
    greedy.accept(x[0])  # finalize() started a new utterance, as before
    units = CtcUnitStreamer(blank=0, chunk_size=1)
    with pytest.warns(DeprecationWarning, match="accept"):
        assert len(units.push(np.eye(3, dtype=np.float32)[[1, 2]][None])) == 2
    with pytest.warns(DeprecationWarning, match="speechdecode.decoding.GreedyCtcDecoder"):
        from speechdecode.models.ctc_asr import GreedyCtcDecoder as old
    assert old is GreedyCtcDecoder
    with pytest.warns(DeprecationWarning, match="speechdecode.decoding.Decoder"):
        from speechdecode.models import CtcDecoder
    assert CtcDecoder is Decoder


@pytest.mark.skipif(not _backend.HAS_NATIVE, reason="the native extension is not built")
def test_one_options_object_per_search_checked_once():
    from speechdecode.kernels import ctc_prefix_beam, wfst_decode

    search = CtcPrefixBeamSearch(TOKENS, beam=5, alpha=0.25)
    assert isinstance(search.options, _backend.native().CtcPrefixBeamSearchOptions)
    assert (search.beam, search.alpha, search.options.blank) == (5, 0.25, 0)
    decoder = WfstDecoder(GRAPH, words=["<eps>", "a"], nbest=2)
    assert isinstance(decoder.options, _backend.native().WfstOptions) and decoder.nbest == 2
    for build, name, value in [
        (ctc_prefix_beam.options, "beam", 0),
        (ctc_prefix_beam.options, "beam_threshold", -1.0),
        (ctc_prefix_beam.options, "viterbi", 1),
        (wfst_decode.options, "lattice_beam", float("nan")),
        (wfst_decode.options, "max_active", 2.5),
    ]:
        with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
            build(**{name: value})
    options = ctc_prefix_beam.options()
    options.token_topk = 0  # set behind the checks: validate() still names it
    with pytest.raises(InvalidArgumentError, match="token_topk: expected an integer >= 1, got 0"):
        options.validate()
