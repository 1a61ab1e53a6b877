"""MusicGen / audiocraft delay pattern (``DelayedPatternProvider``) for codec language models.

A codec LM predicts K codebooks per step; delaying codebook k by ``d_k`` steps lets codebook k
of a frame condition on the lower codebooks of the same frame. With codes ``z [B, K, T]``::

    sequence s [B, K, S],  S = T + max(delays) + 1
    s[b, k, t] = z[b, k, t - 1 - d_k]   when 0 <= t - 1 - d_k < T, else ``special``

so step 0 is all special (the LM's start step). The LM's logits at step t predict step t + 1,
hence frame t of codebook k is predicted by the logits at step ``t + d_k`` (:func:`revert_logits`)
and read back from step ``t + 1 + d_k`` (:func:`revert`).

Backends (``speechdecode._backend.select`` semantics, ``backend=`` or ``SPEECHDECODE_BACKEND``):
``reference`` (plain loops, the oracle), ``native`` (vectorized torch slicing on CPU; the op is
a strided copy that torch already does at memory speed, so it has no C++ and needs no extension),
``triton`` (a kernel per (row, codebook, block of steps); CUDA, or CPU under TRITON_INTERPRET=1).
All give identical results.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from speechdecode import _args, _backend, _tensors
from speechdecode._deprecation import renamed
from speechdecode.errors import InvalidArgumentError, TensorError


def _impl(device: str, backend: str | None):
    # native is batched torch here: it needs no compiled extension and runs on any device
    return _backend.implementation(__package__, device, backend, torch_native=True)


def default_delays(num_codebooks: int) -> list[int]:
    """MusicGen's delays 0, 1, ..., K-1."""
    return list(range(num_codebooks))


def _delays(delays, num_codebooks: int) -> list[int]:
    """Validated delays: K sorted non-negative ints (None: 0..K-1)."""
    if num_codebooks < 1:
        raise InvalidArgumentError("K", "at least one codebook", num_codebooks)
    if delays is None:
        return default_delays(num_codebooks)
    if isinstance(delays, torch.Tensor):
        delays = delays.tolist()
    if not isinstance(delays, Sequence) or isinstance(delays, str):
        raise InvalidArgumentError("delays", f"a list of {num_codebooks} integers", repr(delays))
    if len(delays) != num_codebooks:
        raise InvalidArgumentError("delays", f"{num_codebooks} delays (one per codebook)", f"{len(delays)} delays")
    out = [_args.integer(d, f"delays[{k}]") for k, d in enumerate(delays)]
    for k, d in enumerate(out):
        if d < 0:
            raise InvalidArgumentError("delays", "non-negative delays", f"{d} at [{k}]")
        if k > 0 and d < out[k - 1]:
            raise InvalidArgumentError("delays", "delays sorted ascending", f"{d} at [{k}] after {out[k - 1]}")
    return out


def _integer_tensor(x, name: str, ndim: int, what: str) -> torch.Tensor:
    t = _tensors.as_tensor(x, name)
    if t.ndim != ndim:
        raise TensorError(name, f"a {ndim}-D array {what}", _tensors._describe(x))
    if t.dtype != torch.int64:
        raise TensorError(name, "dtype int64", _tensors._describe(x))
    return t


def build(
    codes,
    delays=None,
    *,
    special: int,
    card: int | None = None,
    bos: int | None = None,
    start_step: bool = True,
    backend: str | None = None,
):
    """Lay codes out in the delay pattern.

    Args:
        codes: [B, K, T] int64 codebook ids, numpy or torch, CPU or CUDA, any strides.
        delays: K sorted non-negative ints (None: MusicGen's 0..K-1).
        special: the id written where no code is (step 0 and the delay padding).
        card: codebook size; when given, every code must be in [0, card).
        bos: the id written before each codebook's first code instead of ``special`` (Dia's
            audio BOS; the padding after the last code stays ``special``, Dia's PAD).
        start_step: MusicGen's all-special first step (the LM's start step). False gives Dia's
            layout, with no such step: ``sequence[b, k, t] = codes[b, k, t - delays[k]]``.
        backend: "reference", "native" or "triton" (default: the fastest for the device).

    Returns:
        ``(sequence, valid)``: sequence [B, K, T + max(delays) + 1] int64 with
        ``sequence[b, k, t] = codes[b, k, t - 1 - delays[k]]`` where that index is in range, else
        ``special`` (one step shorter and ``codes[b, k, t - delays[k]]`` without the start step);
        valid [K, same] bool marks the positions holding real codes (for losses).
        numpy in -> numpy out.

    Equal to transformers' ``MusicgenForCausalLM.build_delay_pattern_mask`` (its prompt being the
    start step then the codes, ``max_length`` the sequence length, ``pad_token_id = special``;
    stereo: ``delays = [k // 2 for k in range(K)]``) and to Dia's ``apply_audio_delay`` (with
    ``start_step=False``, ``bos`` and ``special`` Dia's BOS and PAD, on [B, T, K] transposed).

    Raises:
        TensorError: codes not 3-D int64, a code outside [0, card) or equal to ``special`` or
            ``bos`` (with its index [b, k, t]).
        InvalidArgumentError: delays of the wrong length, unsorted or negative; special/card/bos
            not ints.

    Example:
        >>> import torch
        >>> s, valid = build(torch.tensor([[[1, 2], [3, 4]]]), special=9)
        >>> s.tolist()
        [[[9, 1, 2, 9], [9, 9, 3, 4]]]
        >>> build(torch.tensor([[[1, 2], [3, 4]]]), special=9, bos=8, start_step=False)[0].tolist()
        [[[1, 2, 9], [8, 3, 4]]]
    """
    z = _integer_tensor(codes, "codes", 3, "[B, K, T]")
    d = _delays(delays, z.shape[1])
    special = _args.integer(special, "special")
    start_step = _args.boolean(start_step, "start_step")
    bad = z == special
    expected = f"codes different from special={special}"
    if bos is not None:
        bos = _args.integer(bos, "bos")
        bad = bad | (z == bos)
        expected += f" and bos={bos}"
    if card is not None:
        card = _args.integer(card, "card")
        bad = bad | (z < 0) | (z >= card)
        expected = f"codes in [0, {card}) " + expected[len("codes ") :]
    if bool(bad.any()):
        b, k, t = (int(i) for i in bad.nonzero()[0])
        raise TensorError("codes", expected, f"{int(z[b, k, t])} at [{b}, {k}, {t}]")
    batch, num_codebooks, steps = z.shape
    _args.fits_in_memory(
        batch * num_codebooks * (steps + d[-1] + 1) * 9, "delays", "delayed sequence [B, K, T + max(delays) + 1]"
    )
    sequence, valid = _impl(z.device.type, backend).build(z, d, special)
    if not start_step:  # the start step is all special in every row: drop it
        sequence, valid = sequence[..., 1:], valid[:, 1:]
    if bos is not None:  # steps before codebook k's first code: t < d_k (+ 1 with the start step)
        first = torch.tensor(d, device=sequence.device)[:, None] + int(start_step)
        leading = torch.arange(sequence.shape[-1], device=sequence.device)[None, :] < first
        sequence = sequence.masked_fill(leading, bos)
    return _tensors.like_input(sequence.contiguous(), codes), _tensors.like_input(valid.contiguous(), codes)


def _check_steps(name: str, steps: int, d: list[int], start_step: bool = True) -> None:
    if steps < 1 + d[-1]:
        if start_step:
            raise TensorError(name, f"at least 1 + max(delays) = {1 + d[-1]} steps", f"{steps} steps")
        raise TensorError(name, f"at least max(delays) = {d[-1]} steps", f"{steps - 1} steps")


def revert(sequence, delays=None, *, start_step: bool = True, backend: str | None = None):
    """Read codes back from a delay-pattern sequence (inverse of :func:`build`).

    Args:
        sequence: [B, K, S] int64 with S >= 1 + max(delays) (max(delays) without the start
            step), numpy or torch, any strides.
        delays: as in :func:`build`.
        start_step: as in :func:`build`: False for Dia's layout (no all-special first step).

    Returns:
        codes [B, K, S - 1 - max(delays)] int64, ``codes[b, k, t] = sequence[b, k, t + 1 + delays[k]]``
        (``S - max(delays)`` and ``t + delays[k]`` without the start step). Steps past the last
        complete frame are dropped. ``revert(build(z)[0]) == z``.

    Example:
        >>> import torch
        >>> revert(torch.tensor([[[9, 1, 2, 9], [9, 9, 3, 4]]])).tolist()
        [[[1, 2], [3, 4]]]
    """
    s = _integer_tensor(sequence, "sequence", 3, "[B, K, S]")
    d = _delays(delays, s.shape[1])
    start_step = _args.boolean(start_step, "start_step")
    if not start_step:  # put a start step back in front (any value: revert never reads it)
        s = torch.cat([s[..., :1], s], dim=-1)
    _check_steps("sequence", s.shape[2], d, start_step)
    return _tensors.like_input(_impl(s.device.type, backend).revert(s, d), sequence)


def revert_logits(logits, delays=None, *, backend: str | None = None):
    """Align LM logits with frames: ``out[..., k, t, :] = logits[..., k, t + delays[k], :]``.

    The LM's logits at step t predict sequence step t + 1, and frame t of codebook k sits at
    step t + 1 + d_k (:func:`revert`); so ``argmax(revert_logits(l)) == revert(argmax(l) shifted
    one step later)``. The last step's logits predict past the sequence and are dropped.

    Args:
        logits: [B, K, S, V] float (any dtype), S >= 1 + max(delays).
        delays: as in :func:`build`.

    Returns:
        [B, K, S - 1 - max(delays), V], same dtype and device.
    """
    x = _tensors.as_tensor(logits, "logits")
    if x.ndim != 4:
        raise TensorError("logits", "a 4-D array [B, K, S, V]", _tensors._describe(logits))
    if not x.dtype.is_floating_point:
        raise TensorError("logits", "a floating-point dtype", _tensors._describe(logits))
    d = _delays(delays, x.shape[1])
    _check_steps("logits", x.shape[2], d)
    return _tensors.like_input(_impl(x.device.type, backend).revert_logits(x, d), logits)


class IncrementalRevert:
    """Streaming :func:`revert` for generation: accept sequence steps, get frames as they complete.

    Feed the sequence one step (column) at a time, starting with step 0 (the all-special start
    step fed to the LM): ``accept(s[:, :, n])``. Frame t is complete once all K of its codebooks
    are generated, i.e. after step ``t + 1 + max(delays)``; ``accept`` returns those frames
    ([B, K, 0] or [B, K, 1]). Concatenating every call's output gives exactly :func:`revert`
    of the whole sequence. The stream verbs are the decoders' (docs/ARCHITECTURE.md).

    :meth:`finish` ends the stream: it returns the frames started but not complete
    ([B, K, m], entries not yet generated set to ``fill``); the next ``accept`` starts a new one.

    Example:
        >>> import torch
        >>> stream = IncrementalRevert(2)
        >>> [stream.accept(torch.tensor([[c, r]])).tolist() for c, r in [(9, 9), (1, 9), (2, 3), (9, 4)]]
        [[[[], []]], [[[], []]], [[[1], [3]]], [[[2], [4]]]]
    """

    def __init__(self, num_codebooks: int, delays=None):
        self.delays = _delays(delays, _args.integer(num_codebooks, "num_codebooks"))
        self.num_codebooks = len(self.delays)
        self._window: list[torch.Tensor] = []  # the last max(delays) + 1 steps, oldest first
        self._steps = 0

    @property
    def steps(self) -> int:
        """Steps accepted since the stream began."""
        return self._steps

    def accept(self, step_codes) -> torch.Tensor:
        """step_codes [B, K] int64: sequence step number :attr:`steps`. Returns [B, K, 0 or 1]."""
        c = _integer_tensor(step_codes, "step_codes", 2, "[B, K]")
        if c.shape[1] != self.num_codebooks:
            raise TensorError("step_codes", f"shape [B, {self.num_codebooks}]", _tensors._describe(step_codes))
        if self._window and (c.shape[0], c.device) != (self._window[0].shape[0], self._window[0].device):
            first = self._window[0]
            raise TensorError(
                "step_codes",
                f"shape [{first.shape[0]}, {self.num_codebooks}] on {first.device}",
                _tensors._describe(step_codes),
            )
        span = self.delays[-1] + 1
        self._window.append(c.clone())
        if len(self._window) > span:
            self._window.pop(0)
        self._steps += 1
        if self._steps < span + 1:  # frame 0 completes at step 1 + max(delays)
            frame = c.new_empty((c.shape[0], self.num_codebooks, 0))
        else:
            # frame t = steps - 1 - span: codebook k sits at step t + 1 + d_k, window index d_k
            frame = torch.stack([self._window[d][:, k] for k, d in enumerate(self.delays)], dim=1)[..., None]
        return _tensors.like_input(frame, step_codes)

    def finish(self, fill: int = -1) -> torch.Tensor:
        """End the stream: the incomplete frames [B, K, m] (missing entries = ``fill``); then reset."""
        fill = _args.integer(fill, "fill")
        if not self._window:
            out = torch.empty((0, self.num_codebooks, 0), dtype=torch.int64)
        else:
            # frames t >= first_incomplete that have at least one generated codebook (t + 1 + d_0 < steps)
            first = max(0, self._steps - self.delays[-1] - 1)
            last = self._steps - 1 - self.delays[0]  # exclusive
            old = self._steps - len(self._window)  # step number of window[0]
            w = self._window[0]
            out = torch.full(
                (w.shape[0], self.num_codebooks, max(0, last - first)), fill, dtype=w.dtype, device=w.device
            )
            for t in range(first, last):
                for k, d in enumerate(self.delays):
                    step = t + 1 + d
                    if step < self._steps:
                        out[:, k, t - first] = self._window[step - old][:, k]
        self._window = []
        self._steps = 0
        return out

    def push(self, step_codes) -> torch.Tensor:
        """Deprecated name of :meth:`accept`."""
        renamed("IncrementalRevert.push()", "accept()")
        return self.accept(step_codes)

    def flush(self, fill: int = -1) -> torch.Tensor:
        """Deprecated name of :meth:`finish`."""
        renamed("IncrementalRevert.flush()", "finish()")
        return self.finish(fill)
