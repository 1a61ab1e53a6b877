"""CtcAsr: offline and streaming recognition agree, output checks name the model output."""

import itertools

import numpy as np
import pytest
import torch

from speechdecode.decoding import Decoder, GreedyCtcDecoder
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.models import CausalConvLstmEncoder, CtcAsr

SYMBOLS = ["<b>", "a", "b", "c", "|", "d", "e"]
V = len(SYMBOLS)


class ForwardOnly(torch.nn.Module):
    """Hides forward_chunk: CtcAsr must stream it by re-encoding left context."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, features, lengths):
        return self.encoder(features, lengths)


def _features(batch, frames, seed=0):
    return torch.randn(batch, frames, 5, generator=torch.Generator().manual_seed(seed))


def _stream(asr, feats, lengths, chunk):
    stream = asr.stream(batch_size=feats.shape[0])
    partials = []
    for start in range(0, feats.shape[1], chunk):
        n = min(chunk, feats.shape[1] - start)
        stream.accept(feats[:, start : start + n], (lengths - start).clamp(0, n))
        partials.append([() if p is None else p.tokens for p in stream.partial()])
    return stream.finish(), partials


def _same(a, b):
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]
    assert [h[0].token_frames for h in a] == [h[0].token_frames for h in b]
    assert [h[0].words for h in a] == [h[0].words for h in b]
    assert [h[0].score for h in a] == pytest.approx([h[0].score for h in b], rel=1e-5)


@pytest.mark.parametrize("subsampling", [1, 3])
@pytest.mark.parametrize("chunk", [1, 4, 7, 50])
def test_streaming_equals_offline_stateful_encoder(subsampling, chunk):
    enc = CausalConvLstmEncoder(5, V, hidden=32, subsampling=subsampling, seed=1)
    asr = CtcAsr(enc, GreedyCtcDecoder(SYMBOLS), subsampling=subsampling)
    feats, lengths = _features(3, 41), torch.tensor([41, 17, 0])
    offline = asr.transcribe(feats, lengths)
    online, partials = _stream(asr, feats, lengths, chunk)
    _same(online, offline)
    assert sum(len(h[0].tokens) for h in offline) >= 4
    for row in range(3):  # greedy partial results only ever grow
        for before, after in itertools.pairwise(partials):
            assert after[row][: len(before[row])] == before[row]


@pytest.mark.parametrize("chunk", [2, 5, 11])
def test_streaming_equals_offline_left_context(chunk):
    enc = CausalConvLstmEncoder(5, V, hidden=32, subsampling=2, kernel_size=4, lstm_layers=0, seed=2)
    asr = CtcAsr(ForwardOnly(enc), GreedyCtcDecoder(SYMBOLS), subsampling=2, left_context=enc.left_context)
    feats, lengths = _features(2, 37, seed=3), torch.tensor([37, 30])
    online, _ = _stream(asr, feats, lengths, chunk)
    _same(online, asr.transcribe(feats, lengths))


def test_too_little_left_context_changes_the_result():
    """The left-context path really depends on the context (the check above is not vacuous)."""
    enc = CausalConvLstmEncoder(5, V, hidden=32, subsampling=1, kernel_size=6, lstm_layers=0, seed=2)
    feats = _features(1, 60, seed=4)
    exact = CtcAsr(ForwardOnly(enc), GreedyCtcDecoder(V), left_context=5)
    short = CtcAsr(ForwardOnly(enc), GreedyCtcDecoder(V), left_context=0)
    offline = exact.transcribe(feats)[0][0].score
    assert _stream(exact, feats, torch.tensor([60]), 3)[0][0][0].score == pytest.approx(offline, rel=1e-5)
    assert _stream(short, feats, torch.tensor([60]), 3)[0][0][0].score != pytest.approx(offline, rel=1e-3)


def test_chunked_encoder_matches_offline_forward():
    enc = CausalConvLstmEncoder(5, V, hidden=32, subsampling=4, kernel_size=3, seed=5)
    feats = _features(2, 53)
    full, lengths = enc(feats, torch.tensor([53, 53]))
    assert lengths.tolist() == [13, 13] and full.shape == (2, 13, V)
    state, parts = enc.initial_state(2), []
    for start in range(0, 53, 6):
        out, state = enc.forward_chunk(feats[:, start : start + 6], state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)


def test_batch_equals_single_utterances():
    enc = CausalConvLstmEncoder(5, V, hidden=32, subsampling=2, seed=6)
    asr = CtcAsr(enc, GreedyCtcDecoder(SYMBOLS), subsampling=2)
    feats, lengths = _features(3, 29, seed=7), torch.tensor([29, 12, 21])
    batch = asr.transcribe(feats, lengths)
    single = [asr.transcribe(feats[b : b + 1, : int(lengths[b])])[0] for b in range(3)]
    _same(batch, single)


def test_greedy_decoder_against_numpy():
    rng = np.random.default_rng(8)
    x = torch.log_softmax(torch.from_numpy(rng.standard_normal((2, 23, V)).astype(np.float32) * 3), dim=-1)
    lengths = torch.tensor([23, 9])
    hyps = GreedyCtcDecoder(SYMBOLS, blank=0)(x, lengths)
    for b in range(2):
        best = x[b, : lengths[b]].numpy().argmax(-1)
        ids = [int(c) for i, c in enumerate(best) if c != 0 and (i == 0 or c != best[i - 1])]
        text = "".join(SYMBOLS[i] for i in ids).replace("|", " ").split()
        hyp = hyps[b][0]
        assert list(hyp.tokens) == ids and list(hyp.words) == text
        assert hyp.score == pytest.approx(float(x[b, : lengths[b]].max(-1).values.double().sum()), rel=1e-6)
        assert len(hyp.word_frames) == len(hyp.words)
    assert isinstance(GreedyCtcDecoder(V), Decoder)


def test_bad_model_output_names_it():
    class Wrong(torch.nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, features, lengths):
            return self.out

    feats = _features(2, 8)
    cases = [torch.zeros(2, 8), torch.zeros(3, 8, V), torch.zeros(2, 8, V, dtype=torch.float64)]
    for out in cases:
        with pytest.raises(TensorError, match=r"encoder output \(log_probs\): expected .*\[B=2, T', 7\]"):
            CtcAsr(Wrong(out), GreedyCtcDecoder(SYMBOLS)).transcribe(feats)
    with pytest.raises(TensorError, match=r"encoder output \(log_probs\): expected \[B, T', 7\] \(V = the decoder"):
        CtcAsr(Wrong(torch.zeros(2, 8, V + 1)), GreedyCtcDecoder(SYMBOLS)).transcribe(feats)
    with pytest.raises(TensorError, match=r"at least T' = lengths // subsampling = 8 frames"):
        CtcAsr(Wrong(torch.zeros(2, 5, V)), GreedyCtcDecoder(SYMBOLS)).transcribe(feats)


def test_bad_arguments():
    enc = CausalConvLstmEncoder(5, V, hidden=8, subsampling=2, lstm_layers=0)
    with pytest.raises(InvalidArgumentError, match="left_context"):
        CtcAsr(ForwardOnly(enc), GreedyCtcDecoder(V), subsampling=2).stream()
    with pytest.raises(InvalidArgumentError, match="left_context: expected None or an integer >= 0 divisible"):
        CtcAsr(enc, GreedyCtcDecoder(V), subsampling=2, left_context=3)
    with pytest.raises(InvalidArgumentError, match="decoder"):
        CtcAsr(enc, object())
    stream = CtcAsr(enc, GreedyCtcDecoder(V), subsampling=2).stream(2)
    stream.accept(_features(2, 4), torch.tensor([4, 2]))
    with pytest.raises(InvalidArgumentError, match="lengths: expected 0 for row 1"):
        stream.accept(_features(2, 4), torch.tensor([4, 1]))
    with pytest.raises(TensorError, match="features"):
        stream.accept(_features(3, 4))


def _token_graph(vocab):
    """A CTC token topology as WfstDecoder arrays: every token is a word (word id = token id).

    State 0 (start) has read a blank or nothing; state v has just read token v. Input labels are
    token + 1 (0 is epsilon); all states are final.
    """
    arcs = {0: [(1, 0, 0)] + [(v + 1, v, v) for v in range(1, vocab)]}
    for v in range(1, vocab):
        arcs[v] = sorted([(1, 0, 0), (v + 1, 0, v)] + [(u + 1, u, u) for u in range(1, vocab) if u != v])
    offsets, ilabels, olabels, nextstates = [0], [], [], []
    for state in range(vocab):
        for ilabel, olabel, nextstate in arcs[state]:
            ilabels.append(ilabel)
            olabels.append(olabel)
            nextstates.append(nextstate)
        offsets.append(len(ilabels))
    return {
        "start": 0,
        "final_weights": np.zeros(vocab, np.float32),
        "arc_offsets": np.array(offsets),
        "ilabels": np.array(ilabels, np.int32),
        "olabels": np.array(olabels, np.int32),
        "weights": np.zeros(len(ilabels), np.float32),
        "nextstates": np.array(nextstates, np.int32),
        "num_tokens": vocab,
        "blank": 0,
    }


@pytest.mark.parametrize("kind", ["prefix", "wfst"])
def test_prefix_beam_and_wfst_decoders_stream_like_offline(kind):
    from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder

    if kind == "prefix":
        # the reference search: this test is about CtcAsr's plumbing, tests/decoding checks the backends agree
        decoder = CtcPrefixBeamSearch(SYMBOLS, blank=0, beam=8, nbest=2, backend="reference")
    else:
        decoder = WfstDecoder(_token_graph(V), words=["<eps>", *SYMBOLS[1:]])
    enc = CausalConvLstmEncoder(5, V, hidden=32, subsampling=2, seed=9)
    asr = CtcAsr(enc, decoder, subsampling=2)
    feats, lengths = _features(2, 45, seed=10), torch.tensor([45, 26])
    offline = asr.transcribe(feats, lengths)
    online, _ = _stream(asr, feats, lengths, 6)
    greedy = CtcAsr(enc, GreedyCtcDecoder(SYMBOLS), subsampling=2).transcribe(feats, lengths)
    for row in range(2):
        assert [h.tokens for h in online[row]] == [h.tokens for h in offline[row]]
        assert [h.words for h in online[row]] == [h.words for h in offline[row]]
        assert online[row][0].score == pytest.approx(offline[row][0].score, rel=1e-5)
        assert len(offline[row][0].tokens) >= 3
    if kind == "wfst":  # without an LM the best path of the token topology is the greedy path
        assert [h[0].tokens for h in offline] == [h[0].tokens for h in greedy]
    with pytest.raises(TensorError, match=r"\(V = the decoder's tokens\)"):
        CtcAsr(CausalConvLstmEncoder(5, V + 1, hidden=8), decoder).transcribe(feats)
