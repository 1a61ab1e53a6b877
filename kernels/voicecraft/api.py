"""VoiceCraft token rearrangement (Peng et al. 2024, section 3.1), its inverse, span sampling, edit spans.

VoiceCraft trains a codec LM to fill masked spans of a recording causally: the spans are cut out,
a mask token ``<M_i>`` is left where span i was, and the spans are appended at the end, each after
its mask token again ("causal masking"); then every segment is laid out in the delay pattern
separately ("delayed stacking"). For one row with spans S_1..S_n (0-based below) and unmasked
stretches U_0..U_n between them::

    U_0  <M_0>  U_1  <M_1> ... <M_{n-1}>  U_n+[eos]  <M_0>  S_0+[eog]  <M_1> ... <M_{n-1}>  S_{n-1}+[eog]

where each segment ``c`` ([K, L], with its end token where shown) becomes [K, L + K] as in
audiocraft's ``DelayedPatternProvider``: ``s[k, t] = c[k, t - 1 - k]`` where that is in range,
else ``empty`` (one all-empty first step, codebook k delayed by k). A mask column holds the mask
id in all K codebooks. End tokens follow the released VoiceCraft code (``reduced_eog``): each
span ends with end-of-generation, the last unmasked stretch (where the utterance really ends)
with end-of-sentence, or with end-of-generation when ``eos=None``; the other unmasked stretches
get none. A row with n spans is ``T + (n + 1) + (2n + 1) K + 2n`` steps long; rows of a batch
are padded with ``pad``.

Ids of the K=4 recipe (a 2048-entry codebook): empty 2048, end-of-generation 2049, pad 2050,
end-of-sentence 2051; mask tokens here are separate ids, ``2052 + i`` for span i by default
(VoiceCraft itself embeds masks separately; :attr:`VoiceCraftLayout.mask_positions` gives their
steps for that).

Speech editing at inference: feed ``sequence[b, :, :layout.prompt_lengths[b]]`` (everything up
to the first tail mask and the all-empty step after it), generate the span until end-of-generation
has passed through all K codebooks, and read its frames back with :func:`revert_segments`.

Backends for the rearrangement and its inverse (``backend=`` or ``SPEECHDECODE_BACKEND``):
``reference`` (loops per row, segment and frame; the oracle) and ``native`` (batched torch: one
index for the whole batch, one scatter of the codes through it; any device). There is no Triton
kernel: the op is a fill plus that one scatter (a gather for the inverse), which torch runs at
memory speed; ``SPEECHDECODE_BACKEND=triton`` runs ``native`` here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch

from speechdecode import _args, _backend, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError

EMPTY, EOG, PAD, EOS, MASK_BASE = 2048, 2049, 2050, 2051, 2052


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Special ids of a rearranged sequence; ``masks[i]`` is the mask token of span i."""

    empty: int
    eog: int
    pad: int
    eos: int | None
    masks: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class VoiceCraftLayout:
    """What :func:`causal_mask_inverse` needs, and where things sit in the sequence.

    Attributes:
        tokens: the special ids used.
        num_codebooks: K.
        frames: T of the input codes.
        batched: whether the input was [B, K, T] (else [K, T]).
        lengths: frames per row (B ints).
        spans: per row, the ``(start, end)`` frame intervals masked, sorted.
        sequence_lengths: [B] int64, steps of each row before padding.
        segment_starts: [B, 2N+1] int64, the step where each delayed segment begins (its all-empty
            step), in sequence order U_0..U_n, S_0..S_{n-1}; -1 past a row's 2n+1 segments.
        mask_positions: [B, 2N] int64, steps of the mask columns in sequence order; -1 past 2n.
        prompt_lengths: [B] int64, steps to feed before generating span 0 at inference (through
            the first tail mask and the all-empty step after it); the row length when n = 0.
    """

    tokens: Tokens
    num_codebooks: int
    frames: int
    batched: bool
    lengths: tuple[int, ...]
    spans: tuple[tuple[tuple[int, int], ...], ...]
    sequence_lengths: torch.Tensor
    segment_starts: torch.Tensor
    mask_positions: torch.Tensor
    prompt_lengths: torch.Tensor


def _impl(device: str, backend: str | None):
    # no Triton kernel (the op is one scatter); native is batched torch, on any device
    return _backend.implementation(__package__, device, backend, torch_native=True, implemented=_backend.NO_KERNEL)


def _tokens(empty, eog, pad, eos, mask_tokens, most: int) -> Tokens:
    ids = {"empty": _args.integer(empty, "empty"), "eog": _args.integer(eog, "eog"), "pad": _args.integer(pad, "pad")}
    if eos is not None:
        ids["eos"] = _args.integer(eos, "eos")
    if mask_tokens is None:
        masks = tuple(MASK_BASE + i for i in range(most))
    else:
        if isinstance(mask_tokens, torch.Tensor):
            mask_tokens = mask_tokens.tolist()
        if not isinstance(mask_tokens, Sequence) or isinstance(mask_tokens, str):
            raise InvalidArgumentError("mask_tokens", "a list of integer ids", repr(mask_tokens))
        masks = tuple(_args.integer(m, f"mask_tokens[{i}]") for i, m in enumerate(mask_tokens))
        if len(masks) < most:
            raise InvalidArgumentError("mask_tokens", f"at least {most} ids (one per span)", f"{len(masks)} ids")
    named = list(ids.items()) + [(f"mask_tokens[{i}]", m) for i, m in enumerate(masks)]
    seen: dict[int, str] = {}
    for name, value in named:
        if value in seen:
            raise InvalidArgumentError(name, f"an id different from {seen[value]}={value}", value)
        seen[value] = name
    return Tokens(ids["empty"], ids["eog"], ids["pad"], ids.get("eos"), masks)


def _row_spans(spans, length: int, name: str) -> tuple[tuple[int, int], ...]:
    if isinstance(spans, (torch.Tensor, np.ndarray)):
        spans = spans.tolist()
    if not isinstance(spans, Sequence) or isinstance(spans, str):
        raise InvalidArgumentError(name, "a list of (start, end) frame pairs", repr(spans))
    out = []
    for i, pair in enumerate(spans):
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise InvalidArgumentError(f"{name}[{i}]", "a (start, end) pair", repr(pair))
        start, end = _args.integer(pair[0], f"{name}[{i}][0]"), _args.integer(pair[1], f"{name}[{i}][1]")
        if not 0 <= start < end <= length:
            raise InvalidArgumentError(f"{name}[{i}]", f"0 <= start < end <= {length} (the row's length)", (start, end))
        if out and start < out[-1][1]:
            raise InvalidArgumentError(
                f"{name}[{i}]",
                f"a span starting at or after the previous end {out[-1][1]} (sorted, disjoint)",
                (start, end),
            )
        out.append((start, end))
    return tuple(out)


def _check_codes(z: torch.Tensor, lens: torch.Tensor, tokens: Tokens, card: int | None, batched: bool) -> None:
    """Codes inside the rows must differ from every special/mask id (and lie in [0, card))."""
    reserved = [tokens.empty, tokens.eog, tokens.pad, *tokens.masks] + ([] if tokens.eos is None else [tokens.eos])
    frames = z.shape[2]
    inside = (torch.arange(frames, device=z.device)[None, :] < lens[:, None])[:, None, :]
    if z.numel():
        # one pass in the usual case: every code below the smallest special id (and in range)
        lo, hi = torch.aminmax(z if int(lens.min()) == frames else torch.where(inside, z, 0))
        lo, hi = int(lo), int(hi)
        if hi < min(reserved) and (card is None or (lo >= 0 and hi < card)):
            return
    bad = torch.isin(z, torch.tensor(reserved, dtype=torch.int64, device=z.device))
    expected = "codes different from the special and mask ids"
    if card is not None:
        bad = bad | (z < 0) | (z >= card)
        expected = f"codes in [0, {card}) different from the special and mask ids"
    bad = bad & inside
    if bool(bad.any()):
        b, k, t = (int(i) for i in bad.nonzero()[0])
        where = f"[{b}, {k}, {t}]" if batched else f"[{k}, {t}]"
        raise TensorError("codes", expected, f"{int(z[b, k, t])} at {where}")


def causal_mask_rearrange(
    codes,
    spans,
    *,
    lengths=None,
    empty: int = EMPTY,
    eog: int = EOG,
    pad: int = PAD,
    eos: int | None = EOS,
    mask_tokens=None,
    card: int | None = None,
    backend: str | None = None,
):
    """VoiceCraft's causal masking + delayed stacking of codec codes (see the module docstring).

    Args:
        codes: [K, T] or [B, K, T] int64 codec codes, numpy or torch, any device and strides.
        spans: for [K, T] codes, a list of ``(start, end)`` half-open frame intervals to mask; for
            [B, K, T], a list of B such lists. Sorted, disjoint (touching is fine), non-empty,
            inside the row; spans at the very start or end are allowed (U_0 or U_n is then empty).
            Zero spans gives the plain delayed sequence ``U_0 + [eos]``.
        lengths: [B] frames per row for ragged batches (default T each); frames past a row's
            length are ignored. Only with [B, K, T] codes.
        empty, eog, pad, eos: special ids (VoiceCraft's K=4 recipe by default); ``eos=None``
            ends the last unmasked stretch with ``eog``.
        mask_tokens: ids of the mask tokens, one per span (default ``2052 + i``).
        card: codebook size; when given, every code must be in [0, card).
        backend: "reference" or "native" (default).

    Returns:
        ``(sequence, layout)``: sequence [B, K, S] int64 (``[K, S]`` for 2-D codes; numpy in ->
        numpy out), S the longest row, padded with ``pad``; ``layout`` a :class:`VoiceCraftLayout`
        (tensors on the codes' device) for :func:`causal_mask_inverse` and for inference.

    Raises:
        TensorError: codes not 2-/3-D int64 or without rows, a code equal to a special or mask id
            or outside [0, card) (with its index), lengths of the wrong shape, past T or 0.
        InvalidArgumentError: a span out of order, overlapping, empty or outside its row (naming
            ``spans[b][i]``), ids not integers or not distinct, too few mask ids, a bad backend.

    Example:
        >>> z = torch.tensor([[1, 2, 3], [4, 5, 6]])  # K=2, T=3
        >>> s, layout = causal_mask_rearrange(z, [(1, 2)], empty=0, eog=8, pad=9, eos=7, mask_tokens=[10])
        >>> s.tolist()
        [[0, 1, 0, 10, 0, 3, 7, 0, 10, 0, 2, 8, 0], [0, 0, 4, 10, 0, 0, 6, 7, 10, 0, 0, 5, 8]]
        >>> causal_mask_inverse(s, layout).tolist()
        [[1, 2, 3], [4, 5, 6]]
    """
    z = _tensors.as_tensor(codes, "codes")
    if z.ndim not in (2, 3):
        raise TensorError("codes", "a 2-D [K, T] or 3-D [B, K, T] array", _tensors._describe(codes))
    if z.dtype != torch.int64:
        raise TensorError("codes", "dtype int64", _tensors._describe(codes))
    batched = z.ndim == 3
    if not batched:
        if lengths is not None:
            raise InvalidArgumentError("lengths", "None for [K, T] codes (the row is T frames)", repr(lengths))
        z, spans = z[None], [spans]
    batch, num_k, frames = z.shape
    if batch < 1 or num_k < 1:
        raise TensorError("codes", "at least one row and one codebook", _tensors._describe(codes))
    lens = _tensors.lengths(lengths, "lengths", batch, frames, z.device)
    row_lengths = [int(v) for v in lens.tolist()]
    if row_lengths and min(row_lengths) < 1:
        b = row_lengths.index(min(row_lengths))
        raise TensorError("lengths" if batched else "codes", "at least one frame per row", f"0 frames in row [{b}]")
    if isinstance(spans, (torch.Tensor, np.ndarray)) and batched:
        spans = list(spans)
    if not isinstance(spans, Sequence) or isinstance(spans, str) or len(spans) != batch:
        raise InvalidArgumentError("spans", f"a list of {batch} span lists (one per row)", repr(spans))
    names = [f"spans[{b}]" if batched else "spans" for b in range(batch)]
    rows = tuple(_row_spans(spans[b], row_lengths[b], names[b]) for b in range(batch))
    most = max((len(r) for r in rows), default=0)
    tokens = _tokens(empty, eog, pad, eos, mask_tokens, most)

    if card is not None:
        card = _args.integer(card, "card")
    _check_codes(z, lens, tokens, card, batched)

    sequence, seq_lengths, segment_starts, mask_positions = _impl(z.device.type, backend).rearrange(
        z, row_lengths, [list(r) for r in rows], tokens
    )
    counts = torch.tensor([len(r) for r in rows], dtype=torch.int64, device=z.device)
    if most:  # the first tail mask is mask column n of the row
        tail = mask_positions.gather(1, counts.clamp(max=2 * most - 1)[:, None])[:, 0]
        prompt = torch.where(counts > 0, tail + 2, seq_lengths)
    else:
        prompt = seq_lengths.clone()
    layout = VoiceCraftLayout(
        tokens=tokens,
        num_codebooks=num_k,
        frames=frames,
        batched=batched,
        lengths=tuple(row_lengths),
        spans=rows,
        sequence_lengths=seq_lengths,
        segment_starts=segment_starts,
        mask_positions=mask_positions,
        prompt_lengths=prompt,
    )
    return _tensors.like_input(sequence if batched else sequence[0], codes), layout


def causal_mask_inverse(sequence, layout: VoiceCraftLayout, *, backend: str | None = None):
    """Read the original codes back from a rearranged sequence (inverse of :func:`causal_mask_rearrange`).

    Frame f of segment c (unmasked stretch or span) is read from codebook k at step
    ``segment_start + 1 + k + (f - first frame of c)``; special and mask tokens are ignored, so a
    sequence whose spans were regenerated with the same lengths (teacher forcing, or a model's
    greedy re-prediction) gives the codes with those spans replaced.

    Args:
        sequence: [B, K, S] (or [K, S] when the codes were 2-D) int64, at least as long as
            ``layout.sequence_lengths``.
        layout: the :class:`VoiceCraftLayout` that :func:`causal_mask_rearrange` returned.
        backend: "reference" or "native" (default).

    Returns:
        codes [B, K, T] (or [K, T]) int64; frames past a row's length hold ``layout.tokens.pad``.
        ``causal_mask_inverse(*causal_mask_rearrange(z, spans)) == z``.

    Raises:
        TensorError: sequence of the wrong rank, dtype, batch, K, or shorter than the layout.
    """
    if not isinstance(layout, VoiceCraftLayout):
        raise InvalidArgumentError("layout", "the VoiceCraftLayout returned by causal_mask_rearrange", repr(layout))
    s = _tensors.as_tensor(sequence, "sequence")
    want = 3 if layout.batched else 2
    shape = "[B, K, S]" if layout.batched else "[K, S]"
    if s.ndim != want or s.dtype != torch.int64:
        raise TensorError("sequence", f"a {want}-D int64 array {shape}", _tensors._describe(sequence))
    if not layout.batched:
        s = s[None]
    batch = len(layout.lengths)
    longest = int(layout.sequence_lengths.max()) if batch else 0
    if s.shape[0] != batch or s.shape[1] != layout.num_codebooks or s.shape[2] < longest:
        expected = (
            f"shape [{batch}, {layout.num_codebooks}, >= {longest}]"
            if layout.batched
            else (f"shape [{layout.num_codebooks}, >= {longest}]")
        )
        raise TensorError("sequence", expected, _tensors._describe(sequence))
    starts = layout.segment_starts.to(s.device)
    codes = _impl(s.device.type, backend).inverse(
        s, list(layout.lengths), [list(r) for r in layout.spans], starts, layout.frames, layout.tokens.pad
    )
    return _tensors.like_input(codes if layout.batched else codes[0], sequence)


def revert_segments(segments, *, backend: str | None = None):
    """Undo the per-segment delay of generated spans at inference: ``out[..., k, t] = s[..., k, t + k]``.

    VoiceCraft generates a span after its mask token and the all-empty step; the generated steps
    (without that first empty step, with end-of-generation) form a [K, L] segment where codebook
    k keeps ``s[k][k : L - (K - k)]``: L - K frames, end-of-generation and delay padding dropped.

    Args:
        segments: [..., K, L] int64 (one generated span [K, L], or a batch of equal-length ones),
            L >= K.
        backend: "reference" or "native" (default).

    Returns:
        [..., K, L - K] int64, same device; numpy in -> numpy out.

    Raises:
        TensorError: fewer than 2 dimensions, not int64, or L < K.

    Example:
        >>> revert_segments(torch.tensor([[1, 2, 9, 0], [0, 3, 4, 9]])).tolist()  # K=2, eog=9, empty=0
        [[1, 2], [3, 4]]
    """
    s = _tensors.as_tensor(segments, "segments")
    if s.ndim < 2 or s.dtype != torch.int64:
        raise TensorError("segments", "an int64 array [..., K, L]", _tensors._describe(segments))
    num_k, length = s.shape[-2:]
    if length < num_k:
        raise TensorError("segments", f"at least K = {num_k} steps", _tensors._describe(segments))
    return _tensors.like_input(_impl(s.device.type, backend).revert_segments(s), segments)


def sample_mask_spans(
    length: int,
    generator: torch.Generator | None = None,
    *,
    poisson_lambda: float = 1.0,
    max_spans: int = 3,
    max_len: int | None = None,
) -> list[tuple[int, int]]:
    """Draw VoiceCraft's training spans for a row of ``length`` frames.

    count = clamp(Poisson(poisson_lambda), 1, max_spans), further capped at ``length``; each span
    length ~ Uniform{1, ..., cap} with ``cap = min(max_len, length // count)`` (so the spans always
    fit, no resampling); the spans are then placed in the gaps: uniformly among all placements
    that keep them in draw order without overlap (stars and bars over the ``length - sum``
    free frames). Spans may touch each other and the row's ends. Every draw comes from
    ``generator`` (default torch's global one): the same seed gives the same spans.

    Args:
        length: frames in the row, >= 1.
        generator: a CPU ``torch.Generator``.
        poisson_lambda: the Poisson rate, > 0.
        max_spans: the most spans, >= 1.
        max_len: the longest span in frames (>= 1; None: no limit but the row).

    Returns:
        sorted disjoint ``(start, end)`` half-open intervals, usable as ``spans`` of
        :func:`causal_mask_rearrange`.

    Example:
        >>> spans = sample_mask_spans(100, torch.Generator().manual_seed(0), max_len=20)
        >>> all(0 <= s < e <= 100 and e - s <= 20 for s, e in spans)
        True
    """
    length = _args.integer(length, "length", 1)
    poisson_lambda = _args.real(poisson_lambda, "poisson_lambda", low=0.0, strict=True)
    max_spans = _args.integer(max_spans, "max_spans", 1)
    max_len = _args.optional_integer(max_len, "max_len", 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidArgumentError("generator", "a torch.Generator or None", repr(generator))
    drawn = int(torch.poisson(torch.tensor([float(poisson_lambda)]), generator=generator).item())
    count = min(max(drawn, 1), max_spans, length)
    cap = min(max_len or length, length // count)
    sizes = torch.randint(1, cap + 1, (count,), generator=generator).tolist()
    free = length - sum(sizes)
    # stars and bars: `count` distinct slots among free + count give nondecreasing gap offsets
    slots = sorted(torch.randperm(free + count, generator=generator)[:count].tolist())
    spans, used = [], 0
    for i, (slot, size) in enumerate(zip(slots, sizes, strict=True)):
        start = slot - i + used
        spans.append((start, start + size))
        used += size
    return spans


def _alignment(alignment) -> list[tuple[float, float]]:
    if not isinstance(alignment, Sequence) or isinstance(alignment, str) or not alignment:
        raise InvalidArgumentError("alignment", "a non-empty list of (word, start_s, end_s)", repr(alignment))
    times: list[tuple[float, float]] = []
    for i, item in enumerate(alignment):
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 3:
            raise InvalidArgumentError(f"alignment[{i}]", "a (word, start_s, end_s) triple", repr(item))
        start, end = item[1], item[2]
        for value in (start, end):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise InvalidArgumentError(f"alignment[{i}]", "finite start and end times in seconds", repr(item))
        if not 0 <= start <= end:
            raise InvalidArgumentError(f"alignment[{i}]", "0 <= start_s <= end_s", repr(item))
        if times and start < times[-1][1]:
            raise InvalidArgumentError(
                f"alignment[{i}]", f"a word starting at or after the previous word's end {times[-1][1]}", repr(item)
            )
        times.append((float(start), float(end)))
    return times


def select_edit_span(
    alignment, edit_word_range, epsilon: float, frame_rate: float, *, duration: float | None = None
) -> tuple[int, int]:
    """The frame span to mask for a speech edit of some words (VoiceCraft's inference).

    The edited words' time span (start of the first, end of the last) is widened by ``epsilon``
    seconds on each side, clamped to [0, duration], and turned into codec frames with
    ``round(seconds * frame_rate)`` (as VoiceCraft's demo scripts; unlike them the start is not
    kept off frame 0). An empty word range ``(i, i)`` is an insertion before word i: the span is
    the pause between word i-1's end (0 for i = 0) and word i's start (the duration for i = n).
    The span is at least one frame.

    Args:
        alignment: [(word, start_s, end_s)] in time order (e.g. from a forced aligner), words
            not overlapping.
        edit_word_range: ``(first, stop)``, half-open word indices, 0 <= first <= stop <= n.
        epsilon: margin in seconds, >= 0.
        frame_rate: codec frames per second (50 for VoiceCraft's Encodec), > 0.
        duration: the utterance's length in seconds (default: the last word's end), >= it.

    Returns:
        ``(start_frame, end_frame)``, half-open, 0 <= start < end <= round(duration * frame_rate).

    Raises:
        InvalidArgumentError: an empty or malformed alignment (naming ``alignment[i]``), words
            out of order, a bad range, epsilon < 0, frame_rate <= 0, a duration before the last
            word's end or shorter than one frame.

    Example:
        >>> words = [("a", 0.0, 0.30), ("cat", 0.30, 0.72), ("sat", 0.80, 1.20)]
        >>> select_edit_span(words, (1, 2), epsilon=0.08, frame_rate=50)
        (11, 40)
    """
    times = _alignment(alignment)
    n = len(times)
    if not isinstance(edit_word_range, Sequence) or isinstance(edit_word_range, str) or len(edit_word_range) != 2:
        raise InvalidArgumentError("edit_word_range", "a (first, stop) pair of word indices", repr(edit_word_range))
    first, stop = (
        _args.integer(edit_word_range[0], "edit_word_range[0]"),
        _args.integer(edit_word_range[1], "edit_word_range[1]"),
    )
    if not 0 <= first <= stop <= n:
        raise InvalidArgumentError("edit_word_range", f"0 <= first <= stop <= {n} (the number of words)", (first, stop))
    epsilon = _args.real(epsilon, "epsilon", low=0.0)
    frame_rate = _args.real(frame_rate, "frame_rate", low=0.0, strict=True)
    last_end = times[-1][1]
    if duration is None:
        duration = last_end
    elif isinstance(duration, bool) or not isinstance(duration, numbers.Real) or not duration >= last_end:
        raise InvalidArgumentError("duration", f"a number >= the last word's end {last_end}", repr(duration))
    total = round(float(duration) * frame_rate)
    if total < 1:
        raise InvalidArgumentError("duration", f"at least one frame at frame_rate={frame_rate}", duration)
    if first < stop:
        begin, end = times[first][0], times[stop - 1][1]
    else:
        begin = times[first - 1][1] if first > 0 else 0.0
        end = times[first][0] if first < n else float(duration)
    start_f = min(max(round(max(begin - epsilon, 0.0) * frame_rate), 0), total - 1)
    end_f = min(round(min(end + epsilon, float(duration)) * frame_rate), total)
    return start_f, max(end_f, start_f + 1)
