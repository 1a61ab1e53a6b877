"""End-to-end loops: codec-LM generation and CTC recognition, ours vs the same loop written plainly.

Codec LM (VoiceCraft-style, K = 4 codebooks of 1024 codes, delays 0..3, a 2-layer reference
transformer with a KV cache): every step samples the next delay-pattern column with
repetition-aware sampling (``paper`` preset), RALL-E duration-guided attention masks and
duration-guided stopping. Ours is :class:`speechdecode.models.DelayPatternLM` (batched RAS,
one-hot forcing of the pattern's fixed entries, masks from ``kernels.duration_mask``,
``IncrementalRevert``). The anchor is the loop users write: RAS per row and codebook in
Python (sort, nucleus, count), the delay pattern and its revert by list indexing at every
step, the phoneme windows of the masks found with Python loops, stopping per row. Both loops
call the same model on the same inputs and consume the same uniforms, so they produce the
same codes (checked before timing). Throughput counts generated codes (B x frames x K).

ASR: :class:`speechdecode.models.CtcAsr` (reference conv + LSTM encoder, greedy decoding of
the batch) vs the encoder followed by a per-row, per-frame Python argmax-and-collapse.
"""

from __future__ import annotations

import torch

from speechdecode.bench.bench_masks import SINGLE_THREAD_NOTE, single_thread
from speechdecode.bench.harness import Suite, check_equal
from speechdecode.decoding import GreedyCtcDecoder
from speechdecode.models import CausalConvLstmEncoder, CtcAsr, DelayPatternLM, TinyTransformerLM

CARD, K, PHONEMES, L = 1024, 4, 64, 16
DELAYS = list(range(K))
RAS = {"window": 10, "threshold": 0.1, "top_p": 0.8, "preset": "paper"}
FEATURES, LABELS, SUBSAMPLING = 40, 32, 4


def codec_model(seed: int = 0) -> TinyTransformerLM:
    vocab = DelayPatternLM.input_vocab(CARD, PHONEMES)
    return TinyTransformerLM(vocab, K, CARD + 2, K, dim=64, num_layers=2, num_heads=4, max_context=512, seed=seed)


def codec_inputs(batch: int, frames: int, seed: int = 0):
    """Phonemes [B, L] and durations [B, L] whose rows sum to ``frames - row % 3``."""
    gen = torch.Generator().manual_seed(seed)
    phonemes = torch.randint(0, PHONEMES, (batch, L), generator=gen)
    durations = torch.zeros(batch, L, dtype=torch.int64)
    for b in range(batch):
        cuts = torch.sort(torch.randint(0, frames - b % 3 + 1, (L - 1,), generator=gen)).values
        edges = torch.cat([torch.tensor([0]), cuts, torch.tensor([frames - b % 3])])
        durations[b] = edges[1:] - edges[:-1]
    return phonemes, durations


def ours(lm: DelayPatternLM, phonemes, durations, frames: int, seed: int = 1) -> torch.Tensor:
    out = lm.generate(
        phonemes, max_frames=frames, ras=RAS, durations=durations, generator=torch.Generator().manual_seed(seed)
    )
    return out.codes


def _ras_row(logits_row: torch.Tensor, history: list[int], u0: float, u1: float) -> int:
    """RAS (``paper``) of one row, the plain way."""
    p = torch.softmax(logits_row, dim=-1)
    sorted_p, order = torch.sort(p, descending=True, stable=True)
    inclusive = torch.cumsum(sorted_p, dim=-1)
    kept = torch.zeros_like(p)
    for rank in range(p.shape[0]):
        if float(inclusive[rank] - sorted_p[rank]) >= RAS["top_p"]:
            break
        kept[order[rank]] = p[order[rank]]
    token = _draw(kept, u0)
    recent = history[-RAS["window"] :]
    if recent.count(token) / RAS["window"] > RAS["threshold"]:
        token = _draw(p, u1)
    return token


def _draw(q: torch.Tensor, u: float) -> int:
    c = torch.cumsum(q, dim=-1)
    index = int((c <= u * c[-1]).sum())
    if index >= q.shape[0]:
        index = max(i for i in range(q.shape[0]) if q[i] > 0)
    return index


def frame_owner(row_durations: list[int], frame: int) -> int:
    """The phoneme of speech frame ``frame`` by a Python scan (frames past the total keep the last)."""
    total = sum(row_durations)
    frame = min(frame, max(total - 1, 0))
    edge = 0
    for index, d in enumerate(row_durations):
        edge += d
        if frame < edge:
            return index
    return 0


def _window_row(row_durations: list[int], frame: int, k: int = 1) -> list[bool]:
    owner = frame_owner(row_durations, frame)
    return [abs(ph - owner) <= k for ph in range(len(row_durations))]


@torch.no_grad()
def plain(model: TinyTransformerLM, phonemes, durations, frames: int, seed: int = 1) -> torch.Tensor:
    """The same generation written the plain way (see the module docstring)."""
    empty, eog, pad, offset = CARD, CARD + 1, CARD + 2, CARD + 4 + DelayPatternLM.max_spans
    batch, num_ph = phonemes.shape
    gen = torch.Generator().manual_seed(seed)
    dur = durations.tolist()
    totals = [sum(row) for row in dur]
    history = [[[] for _ in range(K)] for _ in range(batch)]
    columns = [[[empty] for _ in range(K)] for _ in range(batch)]  # the sequence so far, per row and codebook
    ends = [None] * batch
    out = [[[] for _ in range(K)] for _ in range(batch)]
    tokens = [[[offset + p] + [pad] * (K - 1) for p in row] for row in phonemes.tolist()]
    for b in range(batch):
        tokens[b].append([empty] * K)
    size = num_ph + 1
    mask = torch.zeros(batch, size, size, dtype=torch.bool)
    for b in range(batch):
        for q in range(size):
            for key in range(q + 1):
                mask[b, q, key] = key < num_ph if q < num_ph else key >= num_ph
        mask[b, num_ph, :num_ph] = torch.tensor(_window_row(dur[b], 0))
    cache = model.new_cache(batch)
    logits = model(torch.tensor(tokens), cache, mask)[:, -1].float()
    column = 1
    while True:
        u = torch.rand((batch * K, 2), generator=gen)
        new = []
        for b in range(batch):
            row = []
            for k in range(K):
                t = column - 1 - DELAYS[k]
                stop = ends[b] if ends[b] is not None else min(frames, totals[b])
                if t < 0 or t > stop:
                    token = empty
                elif t == stop:
                    token = eog
                else:
                    x = logits[b, k, : CARD + 2].clone()
                    x[empty] = float("-inf")
                    x[eog] = float("-inf")  # codebooks > 0 never end a row; codebook 0 not before its total
                    token = _ras_row(x, history[b][k], float(u[b * K + k, 0]), float(u[b * K + k, 1]))
                history[b][k].append(token)
                if k == 0 and token == eog and ends[b] is None:
                    ends[b] = t
                row.append(token)
                columns[b][k].append(token)
            new.append(row)
        # revert: frame t is complete once codebook K-1 has it
        t = column - 1 - DELAYS[-1]
        if t >= 0:
            for b in range(batch):
                if ends[b] is None or t < ends[b]:
                    for k in range(K):
                        out[b][k].append(columns[b][k][t + 1 + DELAYS[k]])
        if all(e is not None and t >= e - 1 for e in ends):
            break
        step_mask = torch.ones(batch, 1, num_ph + column + 1, dtype=torch.bool)
        for b in range(batch):
            step_mask[b, 0, :num_ph] = torch.tensor(_window_row(dur[b], column))
        logits = model(torch.tensor(new)[:, None], cache, step_mask)[:, 0].float()
        column += 1
    longest = max(len(out[b][0]) for b in range(batch))
    codes = torch.full((batch, K, longest), -1, dtype=torch.int64)
    for b in range(batch):
        for k in range(K):
            codes[b, k, : len(out[b][k])] = torch.tensor(out[b][k], dtype=torch.int64)
    return codes


def asr_setup(batch: int, frames: int, seed: int = 0):
    encoder = CausalConvLstmEncoder(FEATURES, LABELS, hidden=64, subsampling=SUBSAMPLING, seed=seed)
    features = torch.randn(batch, frames, FEATURES, generator=torch.Generator().manual_seed(seed))
    lengths = torch.tensor([frames - (b * 7) % (frames // 2) for b in range(batch)])
    return CtcAsr(encoder, GreedyCtcDecoder(LABELS), subsampling=SUBSAMPLING), features, lengths


def asr_ours(asr: CtcAsr, features, lengths) -> list[list[int]]:
    return [list(h[0].tokens) for h in asr.transcribe(features, lengths)]


def asr_plain(asr: CtcAsr, features, lengths) -> list[list[int]]:
    log_probs, out_lengths = asr.encoder(features, lengths)
    result = []
    for b in range(log_probs.shape[0]):
        tokens, previous = [], -1
        for t in range(int(out_lengths[b])):
            best = int(torch.argmax(log_probs[b, t]))
            if best != 0 and best != previous:
                tokens.append(best)
            previous = best
        result.append(tokens)
    return result


def run(suite: Suite, quick: bool) -> None:
    # On a shared machine a 2-thread OpenMP pool stalls whenever a core is busy (a model step of
    # the B=8 codec LM: 170 ms on 2 threads, 1.6 ms on one); both loops run single-threaded.
    suite.note(SINGLE_THREAD_NOTE)
    with single_thread():
        _run(suite, quick)


def _run(suite: Suite, quick: bool) -> None:
    frames = 12 if quick else 48
    batches = [1, 8] if quick else [1, 8, 32]
    model = codec_model()
    lm = DelayPatternLM(model, card=CARD, num_codebooks=K, delays=DELAYS)
    for batch in batches:
        phonemes, durations = codec_inputs(batch, frames)
        want = plain(model, phonemes, durations, frames)
        case = f"codec LM B={batch}"
        check_equal(case, "DelayPatternLM", [ours(lm, phonemes, durations, frames)], [want], ["codes"])
        items = int((want[:, 0] >= 0).sum()) * K
        params = {"batch": batch, "frames": frames, "K": K, "card": CARD, "phonemes": L, "ras": RAS["preset"]}
        suite.add(
            case,
            "plain loop (Python RAS per row, list delay/revert, Python masks)",
            lambda p=phonemes, d=durations: plain(model, p, d, frames),
            anchor=True,
            items=items,
            item_unit="token",
            params=params,
        )
        suite.add(
            case,
            "DelayPatternLM",
            lambda p=phonemes, d=durations: ours(lm, p, d, frames),
            items=items,
            item_unit="token",
            params=params,
        )
    asr_frames = 200 if quick else 800
    for batch in batches:
        asr, features, lengths = asr_setup(batch, asr_frames)
        if asr_ours(asr, features, lengths) != asr_plain(asr, features, lengths):
            raise RuntimeError("CtcAsr output differs from the plain decode; not timing a wrong result")
        case = f"ASR B={batch}"
        params = {"batch": batch, "frames": asr_frames, "features": FEATURES, "labels": LABELS}
        suite.add(
            case,
            "encoder + per-row Python greedy",
            lambda a=asr, f=features, n=lengths: asr_plain(a, f, n),
            anchor=True,
            items=batch,
            item_unit="utterance",
            params=params,
        )
        suite.add(
            case,
            "CtcAsr (encoder + ctc_greedy)",
            lambda a=asr, f=features, n=lengths: asr_ours(a, f, n),
            items=batch,
            item_unit="utterance",
            params=params,
        )
