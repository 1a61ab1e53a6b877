"""Generation loops of codec language models (TTS) on top of the samplers, patterns and masks.

Two families, each around a user's decoder-only model:

* :class:`CodecLM` -- VALL-E: an AR model generates the first codebook (optionally VALL-E 2
  groups of G codes per step) after the prompt ``[phonemes | acoustic prompt codes]``, then a
  NAR model fills codebooks 2..K one stage at a time (greedy per stage).
* :class:`DelayPatternLM` -- MusicGen / VoiceCraft: one model predicts all K codebooks per step
  over the delay pattern (:mod:`speechdecode.kernels.delay_pattern`); frames reach the caller
  (``on_frame``) as soon as all their codebooks exist (:class:`IncrementalRevert`);
  :meth:`DelayPatternLM.infill` edits speech (VoiceCraft: regenerate a span given the rest).

Both sample with :func:`speechdecode.decoding.sample` (temperature / top-k / top-p), with
repetition-aware sampling (``ras={...}``), or with any user sampler (``sampler=``, the protocol of
:mod:`speechdecode.decoding.samplers`: ``sampler(logits [N, V], history [N, L]) -> tokens [N]``
and ``reset(rows)``), can restrict attention with RALL-E duration-guided masks and stop with
:class:`~speechdecode.decoding.DurationGuidedStopping` (``durations=``).

Model contract (what :class:`~speechdecode.models.reference_nets.TinyTransformerLM` implements):
``model(tokens [B, S, C] int64, cache, attn_mask=None) -> logits [B, S, C_out, V]``, where C
input streams are embedded and summed, ``cache = model.new_cache(B)`` is appended to by each
call, ``attn_mask`` is bool [B, S, cached + S] (True = may attend) and ``model.max_context`` is
the longest sequence. The NAR model is called as ``nar_model(tokens [B, S, K], None,
attn_mask, stage=j)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from speechdecode import _args, _tensors
from speechdecode.decoding.samplers import FilterSampler, RasSampler, check_sampler, draw
from speechdecode.decoding.stopping import DurationGuidedStopping
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels.code_transforms import group_codes
from speechdecode.kernels.delay_pattern import IncrementalRevert, build
from speechdecode.kernels.duration_mask import dense_mask

__all__ = ["CodecLM", "DelayPatternLM", "GenerationOutput", "TokenSampler"]

_NEG_INF = float("-inf")


class GenerationOutput(NamedTuple):
    """Generated codes of a batch.

    codes: int64 [B, K, T] (T = the longest row), -1 past each row's length.
    lengths: int64 [B] frames per row.
    finished: bool [B] rows that ended with EOS/EOG (False: stopped by ``max_frames`` or the
        model's context).
    steps: model calls made after the prompt (AR steps).
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    finished: torch.Tensor
    steps: int


def _codes(x, name: str, ndim: int, what: str, high: int) -> torch.Tensor:
    t = _tensors.as_tensor(x, name)
    if t.ndim != ndim or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TensorError(name, f"an integer array {what}", _tensors._describe(x))
    t = t.to(torch.int64)
    bad = (t < 0) | (t >= high)
    if bool(bad.any()):
        index = [int(i) for i in bad.nonzero()[0]]
        raise TensorError(name, f"ids in [0, {high})", f"{int(t[tuple(index)])} at {index}")
    return t


class TokenSampler:
    """The loops' default sampler: :func:`~speechdecode.decoding.sample` or RAS (a
    :class:`~speechdecode.decoding.samplers.Sampler`).

    Args:
        rows: R, the rows sampled together at each call.
        temperature, top_k, top_p: as for :func:`~speechdecode.decoding.sample` (temperature 0
            is greedy). With ``ras`` the logits are divided by ``temperature`` (when > 0) and
            ``top_k`` / ``top_p`` go to RAS unless ``ras`` sets them.
        ras: None, or keyword options of :class:`~speechdecode.decoding.samplers.RasSampler`
            (``window``, ``threshold``, ``top_k``, ``top_p``, ``preset``).
        generator: torch.Generator of the draws (reproducible generation).
    """

    def __init__(self, rows: int, *, temperature=1.0, top_k=None, top_p=None, ras=None, generator=None):
        self.rows = _args.integer(rows, "rows", 1)
        if ras is None:
            self.sampler = FilterSampler(temperature, top_k, top_p, generator=generator)
            return
        if not isinstance(ras, dict):
            raise InvalidArgumentError("ras", "None or a dict of RasSampler options", repr(ras))
        options = dict(ras)
        if top_k is not None:
            options.setdefault("top_k", top_k)
        if top_p is not None:
            options.setdefault("top_p", top_p)
        allowed = {"window", "threshold", "top_k", "top_p", "preset"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InvalidArgumentError("ras", f"options among {sorted(allowed)}", unknown)
        scale = temperature if isinstance(temperature, numbers.Real) and temperature > 0 else 1.0
        self.sampler = RasSampler(**options, temperature=scale, generator=generator)

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        if logits.shape[0] != self.rows:
            raise TensorError("logits", f"[{self.rows}, V]", _tensors._describe(logits))
        return self.sampler(logits, history)

    def reset(self, rows=None) -> None:
        self.sampler.reset(rows)


def _sampler(sampler, rows: int, temperature, top_k, top_p, ras, generator):
    """The sampler a loop uses: the user's (checked, with no sampling options beside it) or ours."""
    if sampler is None:
        return TokenSampler(rows, temperature=temperature, top_k=top_k, top_p=top_p, ras=ras, generator=generator)
    given = {"temperature": temperature != 1.0, "top_k": top_k is not None, "top_p": top_p is not None}
    given.update({"ras": ras is not None, "generator": generator is not None})
    if any(given.values()):
        options = ", ".join(k for k, v in given.items() if v)
        raise InvalidArgumentError(
            "sampler", f"either sampler= or sampling options, not both (also given: {options})", type(sampler).__name__
        )
    return check_sampler(sampler)


class _Draws:
    """Draws through a sampler, keeping each row's tokens (its history) since the start."""

    def __init__(self, sampler, rows: int, device):
        self.sampler = sampler
        self.history = torch.full((rows, 16), -1, dtype=torch.int64, device=device)
        self.count = 0
        sampler.reset(None)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        tokens = draw(self.sampler, logits, self.history[:, : self.count])
        if self.count == self.history.shape[1]:
            self.history = torch.cat([self.history, torch.full_like(self.history, -1)], dim=1)
        self.history[:, self.count] = tokens
        self.count += 1
        return tokens


def _check_logits(logits, batch: int, steps: int, streams: int, vocab: int, what: str) -> torch.Tensor:
    expected = f"float [B={batch}, S={steps}, {streams}, {vocab}] ({what})"
    if not isinstance(logits, torch.Tensor):
        raise TensorError("model output (logits)", expected, type(logits).__name__)
    if (
        logits.ndim != 4
        or not logits.dtype.is_floating_point
        or tuple(logits.shape[:2]) != (batch, steps)
        or logits.shape[2] < streams
        or logits.shape[3] < vocab
    ):
        raise TensorError("model output (logits)", expected, _tensors._describe(logits))
    return logits[:, :, :streams, :vocab].float()


def _phoneme_count(model, offset: int) -> int:
    """Phoneme ids the model's input vocabulary holds after ``offset`` (unbounded if unknown)."""
    vocab = getattr(model, "vocab_size", None)
    return vocab - offset if isinstance(vocab, numbers.Integral) else 1 << 62


def _check_context(model, positions: int, what: str) -> int:
    limit = getattr(model, "max_context", None)
    if not isinstance(limit, numbers.Integral):
        raise InvalidArgumentError("model", "a model with an integer max_context", type(model).__name__)
    if positions + 1 > limit:
        raise InvalidArgumentError(
            "prompt", f"{what} of at most max_context - 1 = {limit - 1} positions", f"{positions} positions"
        )
    return int(limit)


class _Durations:
    """Duration-guided masks and stopping for one generation (RALL-E, docs/DEFINITIONS.md section 6)."""

    def __init__(self, durations, k: int, phonemes: int, batch: int, frames: int, prompt_frames: int, eos: int, device):
        if isinstance(durations, (list, tuple)):
            durations = np.asarray(durations)
        d = _tensors.as_tensor(durations, "durations").to(device)
        if d.ndim != 2 or tuple(d.shape) != (batch, phonemes):
            raise TensorError(
                "durations", f"[B={batch}, L={phonemes}] (one per phoneme)", _tensors._describe(durations)
            )
        total = int(d.sum(dim=1).max()) if d.numel() else 0
        # [B, F, L] phoneme windows of every speech frame (frames past D_b keep the last window)
        self.window = dense_mask(d, k, num_frames=max(total, frames))
        self.stop = DurationGuidedStopping((d.sum(dim=1) - prompt_frames).clamp(min=0), eos_id=eos)


class CodecLM:
    """VALL-E generation: AR first codebook (optionally grouped), NAR codebooks 2..K.

    Token layout of both models' inputs (ids per stream): codes ``[0, card)``, ``eos = card``,
    ``pad = card + 1``, phoneme p at ``card + 2 + p`` (``input_vocab(card, num_phonemes)`` ids).
    The AR model has ``G`` input streams (one VALL-E 2 group per position; phoneme positions put
    the phoneme in stream 0 and ``pad`` elsewhere) and ``G`` output heads over ``card + 1``
    (codes and EOS). The NAR model has K input streams (phoneme positions as above; prompt
    frames with all K codebooks; target frames with codebooks < j and ``pad``) and predicts
    codebook j from head 0 over ``card`` logits, for ``stage = j`` in 1..K-1; its attention
    ignores the padding of shorter rows.

    Args:
        ar_model, nar_model: see the module docstring (``nar_model`` None: AR only, K = 1).
        card: codes per codebook.
        num_codebooks: K.
        group_size: G, codes per AR step (VALL-E 2 grouped code modeling; 1 = plain VALL-E).

    Example:
        >>> from speechdecode.models.reference_nets import TinyTransformerLM
        >>> card, K, P = 16, 2, 5
        >>> ar = TinyTransformerLM(CodecLM.input_vocab(card, P), 1, card + 1, 1, max_context=64)
        >>> nar = TinyTransformerLM(CodecLM.input_vocab(card, P), K, card, 1, causal=False, num_stages=K)
        >>> lm = CodecLM(ar, nar, card=card, num_codebooks=K)
        >>> out = lm.generate(torch.tensor([[1, 2, 3]]), torch.zeros(1, K, 4, dtype=torch.int64),
        ...                   max_frames=6, generator=torch.Generator().manual_seed(0))
        >>> out.codes.shape[:2], int(out.lengths[0]) <= 6
        (torch.Size([1, 2]), True)
    """

    def __init__(self, ar_model, nar_model=None, *, card: int, num_codebooks: int = 1, group_size: int = 1):
        self.ar_model = ar_model
        self.nar_model = nar_model
        self.card = _args.integer(card, "card", 1)
        self.num_codebooks = _args.integer(num_codebooks, "num_codebooks", 1)
        self.group_size = _args.integer(group_size, "group_size", 1)
        if nar_model is None and self.num_codebooks > 1:
            raise InvalidArgumentError("nar_model", f"a NAR model for codebooks 2..{self.num_codebooks}", None)
        self.eos, self.pad, self.phoneme_offset = self.card, self.card + 1, self.card + 2

    @staticmethod
    def input_vocab(card: int, num_phonemes: int) -> int:
        """Input ids per stream the models need: card codes, EOS, pad, phonemes."""
        return card + 2 + num_phonemes

    def _phoneme_tokens(self, phonemes: torch.Tensor, streams: int) -> torch.Tensor:
        tokens = torch.full((*phonemes.shape, streams), self.pad, dtype=torch.int64, device=phonemes.device)
        tokens[..., 0] = phonemes + self.phoneme_offset
        return tokens

    @torch.no_grad()
    def generate(
        self,
        phonemes,
        prompt_codes,
        *,
        max_frames: int,
        temperature=1.0,
        top_k=None,
        top_p=None,
        ras: dict | None = None,
        durations=None,
        duration_window: int = 1,
        generator: torch.Generator | None = None,
        sampler=None,
    ) -> GenerationOutput:
        """Generate the speech codes of a batch: AR codebook 1, then the NAR stages.

        Args:
            phonemes: [B, L] integer phoneme ids (the prompt's transcript followed by the
                target text), shared length L.
            prompt_codes: [B, K, P] integer codes of the acoustic prompt (P may be 0). With
                G > 1 its first ``P % G`` frames are trimmed (VALL-E 2).
            max_frames: the most frames generated per row (rounded up to whole groups).
            temperature, top_k, top_p, ras, generator: sampling, see :class:`TokenSampler`.
            sampler: any :class:`~speechdecode.decoding.samplers.Sampler` instead (rows: the
                batch; history: each row's AR tokens so far), with no sampling option beside it.
            durations: [B, L] integer frames per phoneme covering the (trimmed) prompt frames
                and then the frames to generate, or None. Speech positions attend only to
                phonemes within ``duration_window`` of their own (RALL-E), and EOS is masked
                before and forced at frame ``sum(durations) - P`` (DurationGuidedStopping).
            duration_window: k of the duration mask.

        Returns:
            :class:`GenerationOutput` with codes [B, K, T].

        Raises:
            TensorError: wrong shapes/dtypes or ids; model output not
                [B, S, G, card + 1] (AR) / [B, S, 1, card] (NAR).
            InvalidArgumentError: the prompt does not fit the AR model's max_context; bad options.
        """
        ph = _codes(phonemes, "phonemes", 2, "[B, L]", _phoneme_count(self.ar_model, self.phoneme_offset))
        batch = ph.shape[0]
        prompt = _codes(prompt_codes, "prompt_codes", 3, f"[B={batch}, K={self.num_codebooks}, P]", self.card)
        if tuple(prompt.shape[:2]) != (batch, self.num_codebooks):
            raise TensorError(
                "prompt_codes", f"[B={batch}, K={self.num_codebooks}, P]", _tensors._describe(prompt_codes)
            )
        max_frames = _args.integer(max_frames, "max_frames", 1)
        G = self.group_size
        prompt = prompt[..., prompt.shape[2] % G :]
        draws = _Draws(_sampler(sampler, batch, temperature, top_k, top_p, ras, generator), batch, ph.device)
        first, lengths, finished, steps = self._ar(ph, prompt, max_frames, draws, durations, duration_window)
        codes = self._nar(ph, prompt, first, lengths)
        return GenerationOutput(codes, lengths, finished, steps)

    def _ar(self, ph, prompt, max_frames, draws, durations, duration_window):
        G, batch, num_ph, dev = self.group_size, ph.shape[0], ph.shape[1], ph.device
        grouped = group_codes(prompt[:, 0], G)  # [B, N_p, G]
        prefix = num_ph + grouped.shape[1]
        limit = _check_context(self.ar_model, prefix, "phonemes + prompt groups")
        max_groups = min(-(-max_frames // G), limit - prefix)
        guide = None
        if durations is not None:
            k = _args.integer(duration_window, "duration_window", 0)
            groups = grouped.shape[1] + max_groups + 1
            guide = _Durations(durations, k, num_ph, batch, groups * G, prompt.shape[2], self.eos, dev)
            # the query predicting group i attends to the union of group i's frame windows: [B, N, L]
            windows = guide.window[:, : groups * G].reshape(batch, groups, G, num_ph).any(dim=2)
        tokens = torch.cat([self._phoneme_tokens(ph, G), grouped], dim=1)
        cache = self.ar_model.new_cache(batch)
        mask = None
        if guide is not None:
            mask = torch.ones(batch, prefix, prefix, dtype=torch.bool, device=dev).tril()
            mask[:, :num_ph, num_ph:] = False
            mask[:, num_ph:, :num_ph] = windows[:, 1 : grouped.shape[1] + 1]
        logits = _check_logits(self.ar_model(tokens, cache, mask), batch, prefix, G, self.card + 1, "AR")[:, -1]
        out = torch.full((batch, max_groups * G), -1, dtype=torch.int64, device=dev)
        lengths = torch.full((batch,), max_groups * G, dtype=torch.int64, device=dev)
        finished = torch.zeros(batch, dtype=torch.bool, device=dev)
        step_mask = torch.ones(batch, 1, limit, dtype=torch.bool, device=dev)
        steps = 0
        for g in range(max_groups):
            group = torch.empty(batch, G, dtype=torch.int64, device=dev)
            for j in range(G):
                x = logits[:, j]
                if guide is not None:
                    x = guide.stop(g * G + j, x)
                token = draws(x)
                ended = (token == self.eos) & ~finished
                lengths = torch.where(ended, g * G + j, lengths)
                finished |= ended
                group[:, j] = torch.where(token == self.eos, self.pad, token)
            out[:, g * G : (g + 1) * G] = group
            if bool(finished.all()) or g + 1 == max_groups:
                break
            position = prefix + g
            mask = None
            if guide is not None:
                step_mask[:, 0, :num_ph] = windows[:, grouped.shape[1] + g + 1]
                mask = step_mask[:, :, : position + 1]
            logits = _check_logits(self.ar_model(group[:, None], cache, mask), batch, 1, G, self.card + 1, "AR")
            logits = logits[:, 0]
            steps += 1
        lengths = lengths.clamp(max=max_frames)
        frames = int(lengths.max())
        out = out[:, :frames]
        out[torch.arange(frames, device=dev)[None, :] >= lengths[:, None]] = -1
        return out, lengths, finished, steps + 1

    def _nar(self, ph, prompt, first, lengths):
        (batch, num_ph), dev = ph.shape, ph.device
        K, P, T = self.num_codebooks, prompt.shape[2], first.shape[1]
        codes = torch.full((batch, K, T), -1, dtype=torch.int64, device=dev)
        codes[:, 0] = first
        if K == 1:
            return codes
        _check_context(self.nar_model, num_ph + P + T - 1, "phonemes + prompt + generated frames")
        valid = torch.arange(T, device=dev)[None, :] < lengths[:, None]
        keys = torch.cat([torch.ones(batch, num_ph + P, dtype=torch.bool, device=dev), valid], dim=1)
        size = keys.shape[1]
        mask = keys[:, None, :].expand(batch, size, size) | torch.eye(size, dtype=torch.bool, device=dev)
        target = torch.full((batch, T, K), self.pad, dtype=torch.int64, device=dev)
        tokens = torch.cat([self._phoneme_tokens(ph, K), prompt.transpose(1, 2), target], dim=1)
        for j in range(1, K):
            tokens[:, num_ph + P :, j - 1] = torch.where(valid, codes[:, j - 1], self.pad)
            logits = _check_logits(self.nar_model(tokens, None, mask, stage=j), batch, size, 1, self.card, "NAR")
            codes[:, j] = torch.where(valid, logits[:, num_ph + P :, 0].argmax(dim=-1), -1)
        return codes


class DelayPatternLM:
    """MusicGen / VoiceCraft single-stage generation of K codebooks over the delay pattern.

    Token layout (VoiceCraft; with card = 2048 the K = 4 recipe's ids): codes ``[0, card)``,
    ``empty = card`` (the delay pattern's special token), ``eog = card + 1`` (end of
    generation), ``pad = card + 2``, ``eos = card + 3`` (end of sentence), the mask token of
    editing span i at ``card + 4 + i`` (i < :attr:`max_spans`), phoneme p at
    ``card + 4 + max_spans + p``. The model has K input streams (phoneme positions: the
    phoneme in stream 0, ``pad`` elsewhere) and K output heads over ``card + 2`` logits
    (codes, empty, eog).

    Generation: after ``[phonemes | build(prompt_codes)[:, :, :P + 1]]`` each step samples the
    next sequence column. Codebook k's entry at column n is frame ``t = n - 1 - d_k``: the
    ``empty`` token for t < 0, the prompt's code for t < P (teacher forcing), sampled for
    later frames (codes only; codebook 0 may also end the row with ``eog``); once a row has
    ended at frame e (``eog`` sampled, or e = ``max_frames``), every codebook takes ``eog`` at
    frame e and ``empty`` after it, as VoiceCraft lays out a segment that ends with ``eog``.
    A frame is passed to ``on_frame`` as soon as its last codebook exists.
    :meth:`infill` edits speech (VoiceCraft): it regenerates a span given the rest.

    Args:
        model: see the module docstring.
        card, num_codebooks: codes per codebook and K.
        delays: K sorted delays (None: 0..K-1).

    Example:
        >>> from speechdecode.models.reference_nets import TinyTransformerLM
        >>> card, K = 16, 3
        >>> net = TinyTransformerLM(DelayPatternLM.input_vocab(card, 4), K, card + 2, K, max_context=64)
        >>> lm = DelayPatternLM(net, card=card, num_codebooks=K)
        >>> out = lm.generate(torch.tensor([[0, 1, 2]]), max_frames=5, generator=torch.Generator().manual_seed(0))
        >>> out.codes.shape[:2]
        torch.Size([1, 3])
    """

    def __init__(self, model, *, card: int, num_codebooks: int, delays=None):
        self.model = model
        self.card = _args.integer(card, "card", 1)
        self.num_codebooks = _args.integer(num_codebooks, "num_codebooks", 1)
        self.revert = IncrementalRevert(self.num_codebooks, delays)
        self.delays = self.revert.delays
        self.empty, self.eog, self.pad, self.eos = self.card, self.card + 1, self.card + 2, self.card + 3
        self.masks = [self.card + 4 + i for i in range(self.max_spans)]
        self.phoneme_offset = self.card + 4 + self.max_spans

    max_spans = 3  # VoiceCraft masks at most 3 spans

    @classmethod
    def input_vocab(cls, card: int, num_phonemes: int) -> int:
        """Input ids per stream the model needs: codes, 4 special tokens, mask tokens, phonemes."""
        return card + 4 + cls.max_spans + num_phonemes

    @torch.no_grad()
    def generate(
        self,
        phonemes,
        prompt_codes=None,
        *,
        max_frames: int,
        temperature=1.0,
        top_k=None,
        top_p=None,
        ras: dict | None = None,
        durations=None,
        duration_window: int = 1,
        generator: torch.Generator | None = None,
        on_frame: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        sampler=None,
    ) -> GenerationOutput:
        """Generate up to ``max_frames`` new frames per row after an optional prompt.

        Args:
            phonemes: [B, L] integer phoneme ids (shared length L).
            prompt_codes: [B, K, P] integer codes to continue (None: P = 0).
            max_frames: the most new frames per row (a row that reaches it ends unfinished).
            temperature, top_k, top_p, ras, generator: sampling, see :class:`TokenSampler`
                (RAS keeps one history per (row, codebook)).
            sampler: any :class:`~speechdecode.decoding.samplers.Sampler` instead, called on
                [B * K, V] logits (row b * K + k: codebook k of row b) with each such row's
                tokens so far; no sampling option beside it.
            durations: [B, L] frames per phoneme covering the prompt and the new frames, or
                None; speech positions attend to phonemes within ``duration_window`` of the
                frame they predict (RALL-E) and codebook 0's ``eog`` is masked before and
                forced at frame ``sum(durations) - P``.
            on_frame: called as ``on_frame(t, codes [B, K], valid [B])`` for every new frame t
                as soon as it is complete; ``valid`` marks rows that have it.

        Returns:
            :class:`GenerationOutput`: codes [B, K, T] of the new frames (prompt excluded).

        Raises:
            TensorError: wrong shapes/dtypes or ids; model output not [B, S, K, card + 2].
            InvalidArgumentError: the prompt does not fit the model's max_context; bad options.
        """
        K = self.num_codebooks
        ph = _codes(phonemes, "phonemes", 2, "[B, L]", _phoneme_count(self.model, self.phoneme_offset))
        batch = ph.shape[0]
        if prompt_codes is None:
            prompt = torch.zeros(batch, K, 0, dtype=torch.int64, device=ph.device)
        else:
            prompt = _codes(prompt_codes, "prompt_codes", 3, f"[B={batch}, K={K}, P]", self.card)
            if tuple(prompt.shape[:2]) != (batch, K):
                raise TensorError("prompt_codes", f"[B={batch}, K={K}, P]", _tensors._describe(prompt_codes))
        max_frames = _args.integer(max_frames, "max_frames", 1)
        chosen = _sampler(sampler, batch * K, temperature, top_k, top_p, ras, generator)
        head = self._phoneme_tokens(ph)
        draws = _Draws(chosen, batch * K, ph.device)
        return self._loop(head, prompt, max_frames, draws, durations, duration_window, on_frame)

    @torch.no_grad()
    def infill(
        self,
        phonemes,
        codes,
        spans,
        *,
        max_frames: int,
        temperature=1.0,
        top_k=None,
        top_p=None,
        ras: dict | None = None,
        generator: torch.Generator | None = None,
        sampler=None,
    ) -> GenerationOutput:
        """VoiceCraft speech editing: regenerate one span of each row given the rest.

        Each row is rearranged with :func:`speechdecode.kernels.voicecraft.causal_mask_rearrange`
        (the span cut out, its mask token left in place, the rest delayed segment by segment);
        the model reads ``[phonemes | the rearranged sequence up to the span's tail mask and
        the all-empty step after it]`` and generates the span over the delay pattern until
        codebook 0 emits ``eog`` (or ``max_frames``). Rows are edited one after the other.

        Args:
            phonemes: [B, L] integer phoneme ids of the edited transcript.
            codes: [B, K, T] integer codes of the original utterances.
            spans: B ``(start, end)`` frame intervals to replace, one per row.
            max_frames: the most frames generated for a span.
            temperature, top_k, top_p, ras, generator: sampling, see :class:`TokenSampler`.
            sampler: any :class:`~speechdecode.decoding.samplers.Sampler` instead ([K, V] per
                call: one row per codebook; reset before each edited row).

        Returns:
            :class:`GenerationOutput` whose codes [B, K, T'] are the edited utterances
            (``codes[:, :, :start]``, the new span, ``codes[:, :, end:]``; -1 past a row's
            length), ``finished`` the rows whose span ended with ``eog``.

        Raises:
            InvalidArgumentError: delays other than 0..K-1 (VoiceCraft's delayed stacking), bad
                spans (from ``causal_mask_rearrange``), a prompt longer than max_context.
            TensorError: wrong shapes, ids or model output.
        """
        from speechdecode.kernels.voicecraft import causal_mask_rearrange

        K = self.num_codebooks
        if self.delays != list(range(K)):
            raise InvalidArgumentError("delays", f"0..{K - 1} for editing (VoiceCraft's delayed stacking)", self.delays)
        ph = _codes(phonemes, "phonemes", 2, "[B, L]", _phoneme_count(self.model, self.phoneme_offset))
        batch = ph.shape[0]
        z = _codes(codes, "codes", 3, f"[B={batch}, K={K}, T]", self.card)
        if tuple(z.shape[:2]) != (batch, K):
            raise TensorError("codes", f"[B={batch}, K={K}, T]", _tensors._describe(codes))
        if not isinstance(spans, (list, tuple)) or len(spans) != batch:
            raise InvalidArgumentError("spans", f"a list of {batch} (start, end) pairs, one per row", repr(spans))
        max_frames = _args.integer(max_frames, "max_frames", 1)
        chosen = _sampler(sampler, K, temperature, top_k, top_p, ras, generator)
        edited, finished, steps = [], [], 0
        for b in range(batch):
            sequence, layout = causal_mask_rearrange(
                z[b],
                [spans[b]],
                empty=self.empty,
                eog=self.eog,
                pad=self.pad,
                eos=self.eos,
                mask_tokens=self.masks[:1],
                card=self.card,
            )
            prompt = sequence[:, : int(layout.prompt_lengths[0]) - 1]  # the all-empty step is the loop's column 0
            head = torch.cat([self._phoneme_tokens(ph[b : b + 1]), prompt.T[None]], dim=1)
            out = self._loop(head, z[b : b + 1, :, :0], max_frames, _Draws(chosen, K, z.device), None, 0, None)
            start, end = layout.spans[0][0]
            span = out.codes[0, :, : int(out.lengths[0])]
            edited.append(torch.cat([z[b, :, :start], span, z[b, :, end:]], dim=1))
            finished.append(bool(out.finished[0]))
            steps += out.steps
        lengths = torch.tensor([e.shape[1] for e in edited], dtype=torch.int64, device=z.device)
        result = torch.full((batch, K, int(lengths.max())), -1, dtype=torch.int64, device=z.device)
        for b, e in enumerate(edited):
            result[b, :, : e.shape[1]] = e
        return GenerationOutput(result, lengths, torch.tensor(finished, device=z.device), steps)

    def _loop(self, head, prompt, max_frames, draws, durations, duration_window, on_frame):
        """Generate after ``head`` [B, H, K] (phonemes, or an editing prompt) and ``prompt``'s columns."""
        K, dev = self.num_codebooks, head.device
        batch, num_ph = head.shape[:2]
        P = prompt.shape[2]
        seq, _ = build(prompt, self.delays, special=self.empty)
        columns = seq[:, :, : P + 1]  # the all-empty start column and every column up to frame P - 1 of codebook 0
        prefix = num_ph + P + 1
        limit = _check_context(self.model, prefix - 1, "phonemes + prompt frames")
        # new frames t < max_frames; the last one's codebook K-1 sits at column P + t + 1 + d_max
        last_column = min(P + max_frames + self.delays[-1], limit - num_ph)
        guide = None
        if durations is not None:
            guide = _Durations(
                durations,
                _args.integer(duration_window, "duration_window", 0),
                num_ph,
                batch,
                last_column + 1,
                P,
                self.eog,
                dev,
            )
        tokens = torch.cat([head, columns.transpose(1, 2)], dim=1)
        mask = None
        if guide is not None:
            mask = torch.ones(batch, prefix, prefix, dtype=torch.bool, device=dev).tril()
            mask[:, :num_ph, num_ph:] = False
            predicted = (torch.arange(P + 1, device=dev) - self.delays[0]).clamp(
                min=0
            )  # codebook-0 frame each position predicts
            mask[:, num_ph:, :num_ph] = guide.window[:, predicted]
        cache = self.model.new_cache(batch)
        vocab = self.card + 2
        logits = _check_logits(self.model(tokens, cache, mask), batch, prefix, K, vocab, "delay pattern")[:, -1]
        self.revert.finish()
        for n in range(P + 1):
            self.revert.accept(columns[:, :, n])
        ends = torch.full((batch,), -1, dtype=torch.int64, device=dev)  # new-frame count once a row emitted eog
        frames_out: list[torch.Tensor] = []
        blocked = torch.arange(vocab, device=dev)[None, :] >= self.card  # [K, V]: codebooks > 0 sample codes only
        blocked = blocked.expand(K, vocab).clone()
        blocked[0, self.eog] = False
        step_mask = torch.ones(batch, 1, limit, dtype=torch.bool, device=dev)
        all_valid = torch.ones(batch, dtype=torch.bool, device=dev)
        any_ended = False  # Python mirror of (ends >= 0).any(): the common path skips the row checks
        column = P + 1
        steps = 0
        while True:
            t = [column - 1 - dk for dk in self.delays]  # frame of each codebook in this column (prompt included)
            x = logits.masked_fill(blocked, _NEG_INF)
            if guide is not None and t[0] >= P:
                stopped = guide.stop(t[0] - P, x[:, 0])
                x[:, 0] = torch.where((ends < 0)[:, None], stopped, x[:, 0]) if any_ended else stopped
            forced = self._forced(t, prompt, ends, max_frames, any_ended)
            if forced is not None:  # the fixed entries become one-hot logits, so samplers record them
                rows, cols = (forced >= 0).nonzero(as_tuple=True)
                x[rows, cols] = _NEG_INF
                x[rows, cols, forced[rows, cols]] = 0.0
            new = draws(x.reshape(batch * K, vocab)).view(batch, K)
            if t[0] >= P:
                ended = (new[:, 0] == self.eog) & (ends < 0)
                if bool(ended.any()):
                    any_ended = True
                    ends = torch.where(ended, t[0] - P, ends)
                    # codebooks with codebook 0's delay reach the end frame in this same column
                    same = torch.tensor([tk == t[0] for tk in t], device=dev)
                    new = torch.where(ended[:, None] & same[None, :], self.eog, new)
            frame = self.revert.accept(new)
            index = t[-1] - P
            if frame.shape[2] and index >= 0:
                valid = ((ends < 0) | (index < ends)) if any_ended else all_valid
                codes = torch.where(valid[:, None], frame[:, :, 0], -1) if any_ended else frame[:, :, 0]
                frames_out.append(codes)
                if on_frame is not None:
                    on_frame(index, codes, valid)
            if column == last_column or (any_ended and bool(((ends >= 0) & (index >= ends - 1)).all())):
                break
            mask = None
            if guide is not None:
                step_mask[:, 0, :num_ph] = guide.window[:, max(column - self.delays[0], 0)]
                mask = step_mask[:, :, : num_ph + column + 1]
            logits = _check_logits(self.model(new[:, None], cache, mask), batch, 1, K, vocab, "delay pattern")[:, 0]
            column += 1
            steps += 1
        self.revert.finish()
        produced = len(frames_out)
        lengths = torch.where(ends >= 0, ends, produced).clamp(max=produced)
        finished = (ends >= 0) & (ends < max_frames)
        codes = (
            torch.stack(frames_out, dim=2) if frames_out else torch.zeros(batch, K, 0, dtype=torch.int64, device=dev)
        )
        return GenerationOutput(codes[:, :, : int(lengths.max())], lengths, finished, steps + 1)

    def _forced(self, t: list[int], prompt: torch.Tensor, ends: torch.Tensor, max_frames: int, any_ended: bool):
        """[B, K] the token each entry of the column must take (-1: sampled), per the class
        docstring; None when every entry is sampled."""
        batch, P = prompt.shape[0], prompt.shape[2]
        past_end = any_ended or t[0] - P >= max_frames
        if not past_end and t[-1] >= P:
            return None
        forced = torch.full((batch, self.num_codebooks), -1, dtype=torch.int64, device=ends.device)
        for k, tk in enumerate(t):
            if tk < 0:
                forced[:, k] = self.empty
            elif tk < P:
                forced[:, k] = prompt[:, k, tk]
        if past_end:
            new = torch.tensor(t, device=ends.device)[None, :] - P
            stop = torch.where(ends >= 0, ends, max_frames)[:, None]
            forced = torch.where(new == stop, self.eog, torch.where(new > stop, self.empty, forced))
        return forced

    def _phoneme_tokens(self, phonemes: torch.Tensor) -> torch.Tensor:
        tokens = torch.full((*phonemes.shape, self.num_codebooks), self.pad, dtype=torch.int64, device=phonemes.device)
        tokens[..., 0] = phonemes + self.phoneme_offset
        return tokens
