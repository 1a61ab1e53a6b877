"""CodecLM (VALL-E AR + NAR) and DelayPatternLM (MusicGen / VoiceCraft) generation loops.

The oracles are plain loops that recompute the whole sequence at every step (no KV cache),
lay the delay pattern out by hand and build duration masks with Python loops.
"""

import pytest
import torch

from speechdecode.bench.bench_e2e import frame_owner
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.models import CodecLM, DelayPatternLM, TinyTransformerLM

CARD, PHONEMES = 24, 9


def _ar(G=1, max_context=96, seed=0):
    vocab = CodecLM.input_vocab(CARD, PHONEMES)
    return TinyTransformerLM(vocab, G, CARD + 1, G, dim=32, max_context=max_context, seed=seed)


def _nar(K, seed=1):
    vocab = CodecLM.input_vocab(CARD, PHONEMES)
    return TinyTransformerLM(vocab, K, CARD, 1, dim=32, causal=False, num_stages=K, max_context=96, seed=seed)


def _delay_net(K, max_context=96, seed=2):
    vocab = DelayPatternLM.input_vocab(CARD, PHONEMES)
    return TinyTransformerLM(vocab, K, CARD + 2, K, dim=32, max_context=max_context, seed=seed)


def _window(durations, frames, k):
    """Phonemes visible to a query predicting ``frames`` (a list of frame indices)."""
    owners = [frame_owner(durations, f) for f in frames]
    return [any(abs(ph - o) <= k for o in owners) for ph in range(len(durations))]


def _ar_oracle(model, phonemes, prompt0, G, max_frames, durations=None, k=1):
    """Greedy VALL-E AR for one utterance, whole sequence recomputed each step."""
    pad, offset, eos = CARD + 1, CARD + 2, CARD
    prompt0 = prompt0[len(prompt0) % G :]
    rows = [[offset + p] + [pad] * (G - 1) for p in phonemes]
    rows += [prompt0[i : i + G] for i in range(0, len(prompt0), G)]
    num_ph, out = len(phonemes), []
    while len(out) < max_frames:
        size = len(rows)
        mask = None
        if durations is not None:
            mask = torch.zeros(1, size, size, dtype=torch.bool)
            for q in range(size):
                for key in range(q + 1):
                    if q < num_ph:
                        mask[0, q, key] = key < num_ph
                    elif key >= num_ph:
                        mask[0, q, key] = True
                if q >= num_ph:
                    group = q - num_ph + 1  # the group this query predicts
                    mask[0, q, :num_ph] = torch.tensor(_window(durations, range(group * G, group * G + G), k))
        logits = model(torch.tensor([rows]), None, mask)[0, -1, :, : CARD + 1]
        group = []
        for j in range(G):
            x = logits[j].clone()
            frame = len(out) + j
            if durations is not None:
                if frame < sum(durations) - len(prompt0):
                    x[eos] = float("-inf")
                else:
                    return (out + group)[:max_frames]
            token = int(x.argmax())
            if token == eos:
                return (out + group)[:max_frames]
            group.append(token)
        out += group
        rows.append(group)
    return out[:max_frames]


@pytest.mark.parametrize("G", [1, 2, 3])
@pytest.mark.parametrize("with_durations", [False, True])
def test_ar_matches_recomputing_oracle(G, with_durations):
    gen = torch.Generator().manual_seed(G)
    batch, L, P = 3, 5, 7
    phonemes = torch.randint(0, PHONEMES, (batch, L), generator=gen)
    prompt = torch.randint(0, CARD, (batch, 1, P), generator=gen)
    durations = (
        torch.randint(0, 5, (batch, L), generator=gen) + torch.tensor([[3], [1], [2]]) if with_durations else None
    )
    lm = CodecLM(_ar(G), card=CARD, group_size=G)
    out = lm.generate(phonemes, prompt, max_frames=13, temperature=0, durations=durations, duration_window=1)
    for b in range(batch):
        d = durations[b].tolist() if with_durations else None
        want = _ar_oracle(lm.ar_model, phonemes[b].tolist(), prompt[b, 0].tolist(), G, 13, d, 1)
        got = out.codes[b, 0, : out.lengths[b]].tolist()
        assert got == want
        assert (out.codes[b, 0, out.lengths[b] :] == -1).all()
        if with_durations:
            assert int(out.lengths[b]) == min(13, max(0, sum(d) - (P - P % G)))


def test_duration_stopping_with_sampling_and_ras():
    gen = torch.Generator().manual_seed(3)
    durations = torch.tensor([[2, 3, 0, 4], [1, 1, 1, 1], [6, 6, 6, 6]])
    lm = CodecLM(_ar(2), _nar(3), card=CARD, num_codebooks=3, group_size=2)
    phonemes = torch.randint(0, PHONEMES, (3, 4), generator=gen)
    prompt = torch.randint(0, CARD, (3, 3, 3), generator=gen)  # trimmed to 2 frames (G = 2)
    for ras in (None, {"preset": "cosyvoice", "window": 5}):
        out = lm.generate(phonemes, prompt, max_frames=30, durations=durations, ras=ras, generator=gen)
        assert out.lengths.tolist() == [7, 2, 22]
        assert out.finished.tolist() == [True, True, True]
        assert out.codes.shape == (3, 3, 22)
        valid = torch.arange(22)[None, :] < out.lengths[:, None]
        for k in range(3):
            assert ((out.codes[:, k] >= 0) & (out.codes[:, k] < CARD))[valid].all()
            assert (out.codes[:, k][~valid] == -1).all()


def test_nar_fills_codebooks_like_a_per_stage_argmax():
    gen = torch.Generator().manual_seed(4)
    K, L, P = 3, 4, 5
    lm = CodecLM(_ar(), _nar(K), card=CARD, num_codebooks=K)
    phonemes = torch.randint(0, PHONEMES, (2, L), generator=gen)
    prompt = torch.randint(0, CARD, (2, K, P), generator=gen)
    durations = torch.tensor([[2, 2, 2, 4], [3, 3, 3, 3]])
    out = lm.generate(phonemes, prompt, max_frames=9, temperature=0, durations=durations)
    assert out.lengths.tolist() == [5, 7]
    for b in range(2):  # one utterance at a time: no padding, full attention
        n = int(out.lengths[b])
        tokens = torch.full((1, L + P + n, K), CARD + 1)
        tokens[0, :L, 0] = phonemes[b] + CARD + 2
        tokens[0, L : L + P] = prompt[b].T
        tokens[0, L + P :, 0] = out.codes[b, 0, :n]
        for j in range(1, K):
            want = lm.nar_model(tokens, None, None, stage=j)[0, L + P :, 0, :CARD].argmax(-1)
            assert out.codes[b, j, :n].tolist() == want.tolist()
            tokens[0, L + P :, j] = want


def test_generation_is_reproducible_from_the_generator():
    lm = CodecLM(_ar(), card=CARD)
    phonemes, prompt = torch.tensor([[1, 2, 3]] * 4), torch.zeros(4, 1, 2, dtype=torch.int64)

    def run(seed):
        return lm.generate(phonemes, prompt, max_frames=12, generator=torch.Generator().manual_seed(seed)).codes

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def _delay_oracle(model, phonemes, prompt, delays, max_frames):
    """Greedy delay-pattern generation of one utterance, pattern laid out by hand, no cache."""
    K, P = len(delays), prompt.shape[1]
    empty, eog, pad, offset = CARD, CARD + 1, CARD + 2, CARD + 4 + DelayPatternLM.max_spans
    rows = [[offset + p] + [pad] * (K - 1) for p in phonemes]
    frames = {}  # (k, t) -> code, prompt frames first

    for k in range(K):
        for t in range(P):
            frames[k, t] = int(prompt[k, t])
    column, end = 0, None

    def entry(k, col):
        t = col - 1 - delays[k]
        return empty if t < 0 else frames[k, t]

    for column in range(P + 1):
        rows.append([entry(k, column) for k in range(K)])
    column = P + 1
    while True:
        logits = model(torch.tensor([rows]), None, None)[0, -1]
        col = []
        for k in range(K):
            t = column - 1 - delays[k]
            if t < 0:
                col.append(empty)
            elif t < P:
                col.append(frames[k, t])
            elif t - P >= (end if end is not None else max_frames):
                col.append(eog if t - P == (end if end is not None else max_frames) else empty)
            else:
                allowed = logits[k, : CARD + 2].clone() if k == 0 else logits[k, :CARD]
                if k == 0:
                    allowed[empty] = float("-inf")
                token = int(allowed.argmax())
                if token == eog:
                    end = t - P
                col.append(token)
                if token != eog:
                    frames[k, t] = token
        rows.append(col)
        stop = end if end is not None else max_frames
        if column - 1 - delays[-1] - P >= stop - 1:
            break
        column += 1
    return [[frames[k, P + t] for t in range(stop)] for k in range(K)]


@pytest.mark.parametrize("delays", [[0, 1, 2], [0, 0, 3], [1, 2, 2]])
@pytest.mark.parametrize("P", [0, 1, 4])
def test_delay_pattern_matches_hand_laid_oracle(delays, P):
    gen = torch.Generator().manual_seed(P)
    K = len(delays)
    lm = DelayPatternLM(_delay_net(K), card=CARD, num_codebooks=K, delays=delays)
    phonemes = torch.randint(0, PHONEMES, (2, 3), generator=gen)
    prompt = torch.randint(0, CARD, (2, K, P), generator=gen)
    out = lm.generate(phonemes, prompt, max_frames=11, temperature=0)
    for b in range(2):
        want = _delay_oracle(lm.model, phonemes[b].tolist(), prompt[b], delays, 11)
        n = int(out.lengths[b])
        assert out.codes[b, :, :n].tolist() == want
        assert bool(out.finished[b]) == (n < 11)


def test_frames_stream_out_as_soon_as_complete():
    K, delays = 4, [0, 1, 2, 3]
    net = _delay_net(K)
    calls = []

    class Counting(torch.nn.Module):
        max_context = net.max_context

        def new_cache(self, batch):
            return net.new_cache(batch)

        def forward(self, *args, **kwargs):
            calls.append(1)
            return net(*args, **kwargs)

    seen = []
    lm = DelayPatternLM(Counting(), card=CARD, num_codebooks=K, delays=delays)
    durations = torch.tensor([[3, 4, 5], [2, 2, 2]])
    out = lm.generate(
        torch.tensor([[1, 2, 3], [4, 5, 6]]),
        max_frames=20,
        durations=durations,
        ras={"preset": "paper"},
        generator=torch.Generator().manual_seed(0),
        on_frame=lambda t, codes, valid: seen.append((t, len(calls), codes.clone(), valid.clone())),
    )
    assert out.lengths.tolist() == [12, 6] and out.finished.all()
    assert [s[0] for s in seen] == list(range(12))
    for t, made, codes, valid in seen:
        assert made == 1 + t + delays[-1]  # the prefill, then one call per column before frame t's last one
        assert valid.tolist() == [True, t < 6]
        assert torch.equal(codes, out.codes[:, :, t])


def test_delay_pattern_batch_equals_single_rows_with_duration_masks():
    K = 3
    lm = DelayPatternLM(_delay_net(K), card=CARD, num_codebooks=K)
    phonemes = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    durations = torch.tensor([[1, 5, 0, 2], [3, 3, 3, 3]])
    prompt = torch.randint(0, CARD, (2, K, 3), generator=torch.Generator().manual_seed(7))
    both = lm.generate(phonemes, prompt, max_frames=15, temperature=0, durations=durations, duration_window=0)
    assert both.lengths.tolist() == [5, 9]
    for b in range(2):
        one = lm.generate(
            phonemes[b : b + 1],
            prompt[b : b + 1],
            max_frames=15,
            temperature=0,
            durations=durations[b : b + 1],
            duration_window=0,
        )
        n = int(one.lengths[0])
        assert torch.equal(one.codes[0, :, :n], both.codes[b, :, :n])
    free = lm.generate(phonemes, prompt, max_frames=15, temperature=0)
    assert not torch.equal(free.codes[:, :, :5], both.codes[:, :, :5])  # the masks change the model's input


def test_context_limits_and_bad_inputs():
    lm = CodecLM(_ar(max_context=12), card=CARD)
    with pytest.raises(InvalidArgumentError, match=r"prompt: expected .* at most max_context - 1 = 11 positions"):
        lm.generate(torch.zeros(1, 6, dtype=torch.int64), torch.zeros(1, 1, 6, dtype=torch.int64), max_frames=4)
    out = lm.generate(torch.zeros(1, 4, dtype=torch.int64), torch.zeros(1, 1, 4, dtype=torch.int64), max_frames=50)
    assert int(out.lengths[0]) <= 12 - 8
    with pytest.raises(TensorError, match=r"prompt_codes: expected ids in \[0, 24\), got 24 at \[0, 0, 1\]"):
        lm.generate(torch.zeros(1, 2, dtype=torch.int64), torch.tensor([[[1, CARD]]]), max_frames=4)
    with pytest.raises(TensorError, match=r"prompt_codes: expected \[B=1, K=1, P\]"):
        lm.generate(torch.zeros(1, 2, dtype=torch.int64), torch.zeros(1, 2, 3, dtype=torch.int64), max_frames=4)
    with pytest.raises(TensorError, match=r"phonemes: expected ids in \[0, 9\), got 9 at \[0, 1\]"):
        lm.generate(torch.tensor([[0, PHONEMES]]), torch.zeros(1, 1, 1, dtype=torch.int64), max_frames=4)
    with pytest.raises(InvalidArgumentError, match="nar_model"):
        CodecLM(_ar(), card=CARD, num_codebooks=2)
    wrong = CodecLM(_ar(), card=CARD + 3)  # the model's heads have CARD + 1 logits, not CARD + 4
    with pytest.raises(TensorError, match=r"model output \(logits\): expected float \[B=1, S=3, 1, 28\]"):
        wrong.generate(torch.zeros(1, 2, dtype=torch.int64), torch.zeros(1, 1, 1, dtype=torch.int64), max_frames=4)
    delayed = DelayPatternLM(_delay_net(2, max_context=10), card=CARD, num_codebooks=2)
    with pytest.raises(InvalidArgumentError, match="prompt"):
        delayed.generate(torch.zeros(1, 5, dtype=torch.int64), torch.zeros(1, 2, 5, dtype=torch.int64), max_frames=3)
    with pytest.raises(TensorError, match=r"durations: expected \[B=1, L=5\]"):
        delayed.generate(
            torch.zeros(1, 5, dtype=torch.int64), max_frames=3, durations=torch.ones(1, 4, dtype=torch.int64)
        )
    with pytest.raises(InvalidArgumentError, match="ras"):
        delayed.generate(torch.zeros(1, 5, dtype=torch.int64), max_frames=3, ras={"windw": 3})


def test_infill_keeps_the_context_and_follows_the_voicecraft_layout():
    from speechdecode.kernels.voicecraft import causal_mask_rearrange

    K = 4
    lm = DelayPatternLM(_delay_net(K, seed=SPAN_SEED), card=CARD, num_codebooks=K)
    gen = torch.Generator().manual_seed(11)
    phonemes = torch.randint(0, PHONEMES, (2, 5), generator=gen)
    codes = torch.randint(0, CARD, (2, K, 14), generator=gen)
    spans = [(3, 7), (0, 2)]
    out = lm.infill(phonemes, codes, spans, max_frames=9, temperature=0)
    for b, (start, end) in enumerate(spans):
        n = int(out.lengths[b]) - (14 - (end - start))
        assert 3 <= n <= 9 and bool(out.finished[b]) == (n < 9)
        edited = out.codes[b, :, : int(out.lengths[b])]
        assert torch.equal(edited[:, :start], codes[b, :, :start])
        assert torch.equal(edited[:, start + n :], codes[b, :, end:])
        # teacher forcing: the edited utterance laid out by VoiceCraft's rearrangement, read by the
        # model in one pass, must predict every generated entry as its argmax
        sequence, layout = causal_mask_rearrange(
            edited, [(start, start + n)], empty=CARD, eog=CARD + 1, pad=CARD + 2, eos=CARD + 3, mask_tokens=[CARD + 4]
        )
        head = torch.full((1, 5, K), CARD + 2)
        head[0, :, 0] = phonemes[b] + lm.phoneme_offset
        logits = lm.model(torch.cat([head, sequence.T[None]], dim=1), None, None)[0, 5 - 1 :]  # [j]: predicts step j
        first = int(layout.prompt_lengths[0]) - 1  # the span segment's all-empty step
        for k in range(K):
            for t in range(n + 1 if k == 0 else n):
                step = first + 1 + k + t
                allowed = logits[step, k, : CARD + 2].clone()
                allowed[CARD] = float("-inf")
                if k > 0:
                    allowed[CARD + 1] = float("-inf")
                if t == n and not out.finished[b]:
                    continue
                assert int(allowed.argmax()) == int(sequence[k, step]), (b, k, t, n)


SPAN_SEED = 3


def test_e2e_benchmark_loops_agree():
    """The benchmark's plain loop (its anchor) generates exactly what DelayPatternLM does."""
    from speechdecode.bench import bench_e2e as e2e

    model = e2e.codec_model()
    lm = DelayPatternLM(model, card=e2e.CARD, num_codebooks=e2e.K, delays=e2e.DELAYS)
    phonemes, durations = e2e.codec_inputs(3, 7)
    want = e2e.plain(model, phonemes, durations, 7)
    assert torch.equal(e2e.ours(lm, phonemes, durations, 7), want)
    assert ((want[:, 0] >= 0).sum(dim=1)).tolist() == [7, 6, 5]  # rows end at their duration totals


def test_repetition_rate_and_tts_demo(tmp_path):
    import numpy as np

    from speechdecode.demo.tts import repetition_rate, tts_demo

    codes = torch.tensor([[[1, 2, 1, 1, 9]], [[3, 3, 3, 4, -1]]])
    # row 0: the 3rd (1 seen) and 4th (1 seen) repeat; row 1: the 2nd and 3rd; 4 of 9 codes
    assert repetition_rate(codes, torch.tensor([5, 4])) == pytest.approx(4 / 9)
    assert repetition_rate(codes, torch.tensor([5, 4]), window=1) == pytest.approx(3 / 9)
    report = tts_demo(tmp_path, batch=2, frames=16, phonemes=6)
    rows = report["rows"]
    assert [r["what"] for r in rows] == ["nucleus top_p=0.8", "RAS paper top_p=0.8"]
    saved = np.load(report["files"]["tts_codes.npz"])
    for row, name in zip(rows, ["nucleus", "ras"], strict=True):
        lengths = saved[f"{name}_lengths"]
        assert 12 <= lengths.min() and lengths.max() <= 16  # durations: between 3/4 of frames and frames
        assert row["tokens"] == int(lengths.sum()) * 4
        assert row["rtf"] == pytest.approx(row["seconds"] * 75 / int(lengths.sum()))
        assert row["repetition_rate"] == pytest.approx(
            repetition_rate(torch.from_numpy(saved[name]), torch.from_numpy(lengths))
        )
