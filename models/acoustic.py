"""The shipped character CTC acoustic model: network, configuration, safetensors loader and writer.

:class:`CharCtcModel` maps 80 log-mel features per 10 ms (:func:`speechdecode.models.audio.log_mel`)
to log-probabilities over :data:`TOKENS` (``<blk>``, ``|``, ``'``, a-z) every 30 ms:
global mean/variance normalisation, S = 3 frames stacked, a causal convolution (kernel 3 over
stacked frames), residual blocks of [LayerNorm, dilated convolution, ReLU, pointwise
convolution], a LayerNorm, a linear head and log-softmax. A block's convolution sees
``lookahead`` of its taps (times its dilation) after the current frame, so output frame i sees the
stacked frames ``[i - R + 1 + D, i + D]`` (R = :attr:`AcousticConfig.receptive_field`,
D = :attr:`AcousticConfig.delay`; D = 0 is a causal model); frames past the end of an utterance
count as zeros after each LayerNorm. :meth:`CharCtcModel.forward_chunk` streams with exactly the
offline arithmetic, holding back D output frames until :meth:`CharCtcModel.flush`. A
convolutional stack rather than a recurrent one because convolutions train several times
faster per parameter on a CPU. :func:`load_acoustic_model` reads the weights in
``models/weights/`` (trained by ``make acoustic-model``; see ``models/weights/MODEL_CARD.md``)
or any file :func:`save_acoustic_model` wrote.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import torch
from torch import nn

from speechdecode import _tensors
from speechdecode._io import atomic_write
from speechdecode.errors import InputFileError, TensorError
from speechdecode.models.audio import HOP, N_MELS, SAMPLE_RATE

__all__ = [
    "TOKENS",
    "WEIGHTS",
    "AcousticConfig",
    "CharCtcModel",
    "encode_batch",
    "load_acoustic_model",
    "save_acoustic_model",
]

TOKENS = ("<blk>", "|", "'", *"abcdefghijklmnopqrstuvwxyz")
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "char_ctc.safetensors")


@dataclass(frozen=True)
class AcousticConfig:
    """Sizes of a :class:`CharCtcModel`; ``tokens`` are its output symbols (blank first)."""

    num_features: int = N_MELS
    # 30 ms output frames: at 40 ms, fast speech leaves a character CTC too few frames (7% of the
    # training utterances had more labels and forced blanks than frames).
    subsampling: int = 3
    channels: int = 256
    front_kernel: int = 3
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 1, 2, 4)
    # Taps of each block's convolution after the current frame (0 .. kernel_size - 1).
    lookahead: int = 0
    dropout: float = 0.1
    tokens: tuple[str, ...] = TOKENS

    def __post_init__(self):
        if not 0 <= self.lookahead < self.kernel_size:
            raise ValueError(
                f"lookahead must be in [0, {self.kernel_size - 1}] (kernel_size - 1), got {self.lookahead}"
            )

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame."""
        return self.subsampling * HOP / SAMPLE_RATE

    @property
    def receptive_field(self) -> int:
        """Stacked input frames an output frame depends on."""
        return self.front_kernel + (self.kernel_size - 1) * sum(self.dilations)

    @property
    def delay(self) -> int:
        """Stacked frames after its own that an output frame depends on (streaming holds it back)."""
        return self.lookahead * sum(self.dilations)


class _Block(nn.Module):
    """x + pointwise(ReLU(dilated conv(LayerNorm(x)))), the conv seeing ``ahead`` frames past x.

    Streams: its state holds the normalised inputs the next outputs' windows still need (``h``)
    and the inputs whose outputs are not out yet (``x``, for the residual).
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, lookahead: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.mix = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)
        self.span = (kernel_size - 1) * dilation  # window frames besides the newest
        self.ahead = lookahead * dilation

    def initial_state(self, batch: int, channels: int, device) -> dict:
        return {
            "h": torch.zeros(batch, self.span - self.ahead, channels, device=device),
            "x": torch.zeros(batch, 0, channels, device=device),
            "seen": 0,  # inputs so far: the frame index of the next one
        }

    def forward(self, x: torch.Tensor, state: dict, valid: torch.Tensor | None, final: bool):
        """Outputs for the new inputs ``x`` [B, n, C] whose windows are complete (all, if ``final``).

        ``valid`` [B] (or None: all) zeroes the normalised inputs at or past each row's end.
        """
        received = x.shape[1]
        h = self.norm(x)
        if valid is not None:
            index = torch.arange(state["seen"], state["seen"] + received, device=x.device)
            h = h * (index < valid[:, None]).unsqueeze(-1).to(h.dtype)
        h = torch.cat([state["h"], h, h.new_zeros(h.shape[0], self.ahead if final else 0, h.shape[2])], dim=1)
        x = torch.cat([state["x"], x], dim=1)
        n = max(0, h.shape[1] - self.span)
        if n:
            y = torch.relu(self.conv(h.transpose(1, 2))).transpose(1, 2)
            out = x[:, :n] + self.dropout(self.mix(y))
        else:
            out = x[:, :0]
        return out, {"h": h[:, n:], "x": x[:, n:], "seen": state["seen"] + received}


class CharCtcModel(nn.Module):
    """Convolutional CTC encoder over characters (see the module docstring).

    ``forward(features [B, T, F], lengths [B] or None) -> (log_probs [B, T // S, V], lengths // S)``
    with S = ``config.subsampling``; output frame i depends on input frames before
    ``S (i + 1 + D)`` only (D = ``config.delay``), so :meth:`initial_state`,
    :meth:`forward_chunk` and :meth:`flush` give the same frames chunk by chunk.

    Example:
        >>> model = CharCtcModel(AcousticConfig(channels=16, dilations=(1, 2))).eval()
        >>> x = torch.randn(2, 41, 80)
        >>> log_probs, lengths = model(x, torch.tensor([41, 30]))
        >>> list(log_probs.shape), lengths.tolist()
        ([2, 13, 29], [13, 10])
        >>> state = model.initial_state(2)
        >>> parts = []
        >>> for start in range(0, 41, 7):
        ...     out, state = model.forward_chunk(x[:, start : start + 7], state)
        ...     parts.append(out)
        >>> out, state = model.flush(state)  # the frames a lookahead holds back (none here)
        >>> torch.allclose(torch.cat([*parts, out], dim=1), log_probs, atol=1e-5)
        True
    """

    def __init__(self, config: AcousticConfig = AcousticConfig()):
        super().__init__()
        self.config = c = config
        self.register_buffer("mean", torch.zeros(c.num_features))
        self.register_buffer("std", torch.ones(c.num_features))
        self.front = nn.Conv1d(c.subsampling * c.num_features, c.channels, c.front_kernel)
        self.blocks = nn.ModuleList(_Block(c.channels, c.kernel_size, d, c.lookahead, c.dropout) for d in c.dilations)
        self.norm = nn.LayerNorm(c.channels)
        self.head = nn.Linear(c.channels, len(c.tokens))

    @property
    def vocab_size(self) -> int:
        return len(self.config.tokens)

    def _check(self, features) -> torch.Tensor:
        x = _tensors.as_tensor(features, "features")
        if x.ndim != 3 or x.shape[2] != self.config.num_features or not x.dtype.is_floating_point:
            raise TensorError(
                "features", f"a float [B, T, {self.config.num_features}] tensor", _tensors._describe(features)
            )
        return x.float()

    def _stack(self, x: torch.Tensor) -> torch.Tensor:
        s = self.config.subsampling
        steps = x.shape[1] // s
        return ((x[:, : steps * s] - self.mean) / self.std).reshape(x.shape[0], steps, s * x.shape[2])

    def _body(self, stacked: torch.Tensor, state: dict, final: bool = False) -> tuple[torch.Tensor, dict]:
        """The layers over new stacked frames, each after its cached history; returns log-probs, new state.

        Stacked frames at or past a row's ``state["valid"]`` are past its end.
        """
        h = torch.cat([state["front"], stacked], dim=1)
        if stacked.shape[1]:
            x = torch.relu(self.front(h.transpose(1, 2))).transpose(1, 2)
        else:  # flush: no new frames, only the blocks' held-back outputs
            x = stacked.new_zeros(stacked.shape[0], 0, self.config.channels)
        new = {**state, "front": h[:, h.shape[1] - (self.config.front_kernel - 1) :], "blocks": []}
        for block, cache in zip(self.blocks, state["blocks"], strict=True):
            x, cache = block(x, cache, state["valid"], final)
            new["blocks"].append(cache)
        # float32 log-softmax under a bfloat16 autocast too (training): bfloat16 keeps 3 digits.
        log_probs = torch.log_softmax(self.head(self.norm(x)).float(), dim=-1)
        return log_probs, new

    def forward(self, features, lengths=None):
        x = self._check(features)
        lens = _tensors.lengths(lengths, "lengths", x.shape[0], x.shape[1], x.device)
        state = self.initial_state(x.shape[0], x.dtype, x.device)
        if lengths is not None and bool((lens < x.shape[1]).any()) and self.config.delay:
            state["valid"] = lens // self.config.subsampling
        log_probs, _ = self._body(self._stack(x), state, final=True)
        return log_probs, lens // self.config.subsampling

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> dict:
        """The streaming state before the first chunk (zeros = the offline left padding)."""
        c = self.config
        return {
            "rest": torch.zeros(batch, 0, c.num_features, device=device),
            "front": torch.zeros(batch, c.front_kernel - 1, c.subsampling * c.num_features, device=device),
            "blocks": [b.initial_state(batch, c.channels, device) for b in self.blocks],
            "consumed": torch.zeros(batch, dtype=torch.int64, device=device),  # valid input frames per row
            "valid": None,  # stacked frames of each row before its end (None: no row has ended)
        }

    @torch.no_grad()
    def forward_chunk(self, features, state: dict, lengths=None):
        """Encode the next chunk [B, n, F] (any n >= 0): returns (log_probs [B, n', V], new state).

        ``lengths`` [B] (default: n each) are the valid frames of each row in this chunk; a row
        with fewer than n has ended (its later frames are ignored). The last ``config.delay``
        output frames come out of :meth:`flush`.
        """
        chunk = self._check(features)
        lens = _tensors.lengths(lengths, "lengths", chunk.shape[0], chunk.shape[1], chunk.device)
        x = torch.cat([state["rest"], chunk], dim=1)
        stacked = self._stack(x)
        rest = x[:, stacked.shape[1] * self.config.subsampling :]
        consumed = state["consumed"] + lens
        ended = self.config.delay > 0 and (state["valid"] is not None or bool((lens < chunk.shape[1]).any()))
        state = {**state, "consumed": consumed, "valid": consumed // self.config.subsampling if ended else None}
        if stacked.shape[1] == 0:
            return x.new_zeros(x.shape[0], 0, self.vocab_size), {**state, "rest": rest}
        log_probs, state = self._body(stacked, state)
        return log_probs, {**state, "rest": rest}

    @torch.no_grad()
    def flush(self, state: dict):
        """The output frames the lookahead held back (``config.delay`` of them), and the spent state."""
        empty = state["rest"].new_zeros(state["rest"].shape[0], 0, self.config.subsampling * self.config.num_features)
        return self._body(empty, state, final=True)


def _expected_shapes(config: AcousticConfig) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in CharCtcModel(config).state_dict().items()}


def save_acoustic_model(model: CharCtcModel, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``model`` to a safetensors file: float16 weights, the config (and ``metadata``) as JSON."""
    from safetensors.torch import save

    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    header = {"config": json.dumps(dataclasses.asdict(model.config)), **(metadata or {})}
    data = save(tensors, metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in header.items()})
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def load_acoustic_model(path: str | os.PathLike = WEIGHTS) -> CharCtcModel:
    """A :class:`CharCtcModel` (in eval mode, float32) from a file :func:`save_acoustic_model` wrote.

    Raises:
        InputFileError: the file is not safetensors, has no or a bad config, its token table does
            not match the head's output size, or a tensor is missing, extra or of another shape
            than the config needs (each names the file and the tensor).
        OSError: the file cannot be read.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = os.fspath(path)
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        tensors = load(data)
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(path, None, f"not a safetensors file ({exc})") from None
    try:
        fields = json.loads(metadata["config"])
        fields["tokens"], fields["dilations"] = tuple(fields["tokens"]), tuple(fields["dilations"])
        config = AcousticConfig(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(path, None, f"no valid acoustic model config in the metadata ({exc!r})") from None
    head = tensors.get("head.weight")
    if head is not None and head.ndim == 2 and head.shape[0] != len(config.tokens):
        raise InputFileError(
            path,
            None,
            f"the token table has {len(config.tokens)} symbols but the model outputs {head.shape[0]} (head.weight)",
        )
    expected = _expected_shapes(config)
    for name, shape in expected.items():
        if name not in tensors:
            raise InputFileError(path, None, f"tensor {name!r} missing (the config needs shape {list(shape)})")
        if tuple(tensors[name].shape) != shape:
            raise InputFileError(
                path,
                None,
                f"tensor {name!r} has shape {list(tensors[name].shape)}, the config "
                f"(channels={config.channels}, {len(config.dilations)} blocks) needs {list(shape)}",
            )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise InputFileError(path, None, f"tensors the config does not have: {', '.join(extra[:5])}")
    model = CharCtcModel(config)
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval()


def encode_batch(model: CharCtcModel, utterances, sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [B, T', V] and lengths [B] of a list of 1-D float audio arrays at ``sample_rate`` Hz."""
    from speechdecode.models.audio import log_mel, resample

    feats = [log_mel(resample(torch.as_tensor(u), sample_rate)) for u in utterances]
    lengths = torch.tensor([f.shape[0] for f in feats])
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    with torch.no_grad():
        log_probs, out = model(x, lengths)
    return log_probs, out
