"""Small seeded reference networks that make the model wrappers runnable without downloads.

Their weights are random (seeded), so they produce plumbing-realistic tensors, not speech:

* :class:`CausalConvLstmEncoder` -- a CTC acoustic encoder (frame stacking by the subsampling
  factor, a causal convolution, an optional LSTM, a log-softmax head) that runs chunk by chunk
  with exactly the arithmetic of its offline forward (:meth:`~CausalConvLstmEncoder.forward_chunk`).
* :class:`TinyTransformerLM` -- a pre-LayerNorm decoder-only transformer over ``C`` parallel
  token streams (their embeddings are summed, MusicGen-style) with a KV cache, an optional
  boolean attention mask per query, and ``C_out`` output heads. With ``causal=False`` it is the
  bidirectional NAR model of VALL-E (plus a stage embedding).
* :class:`TinyUnitHead` -- LLaMA-Omni's CTC unit decoder in miniature (upsampled hidden states
  to unit logits).
* :class:`TinyMelleLM` -- a continuous-token AR transformer (MELLE: Gaussian latent + stop head).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.nn import functional as F

from speechdecode import _args, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["CausalConvLstmEncoder", "KVCache", "TinyMelleLM", "TinyTransformerLM", "TinyUnitHead"]


@contextlib.contextmanager
def _seeded(seed: int):
    """Initialise weights from ``seed`` without disturbing torch's global generator."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


class CausalConvLstmEncoder(nn.Module):
    """CTC encoder: stack ``subsampling`` frames, causal Conv1d + ReLU, LSTM, log-softmax.

    Args:
        num_features: F, input features per frame.
        vocab_size: V, output labels (blank included).
        hidden: channels of the convolution and size of the LSTM.
        subsampling: s; output frame i sees input frames [0, (i + 1) s). T' = T // s (the last
            ``T % s`` frames complete no output frame and are dropped).
        kernel_size: taps of the causal convolution over stacked frames.
        lstm_layers: 0 makes the encoder convolutional only, with a finite left context of
            :attr:`left_context` input frames.
        seed: seeds the weight initialisation.

    ``forward(features [B, T, F], lengths [B] or None) -> (log_probs [B, T // s, V], lengths // s)``.
    :meth:`initial_state` / :meth:`forward_chunk` give the same outputs chunk by chunk.

    Example:
        >>> enc = CausalConvLstmEncoder(num_features=8, vocab_size=5, subsampling=2)
        >>> log_probs, out_lengths = enc(torch.randn(1, 9, 8), torch.tensor([9]))
        >>> list(log_probs.shape), out_lengths.tolist()
        ([1, 4, 5], [4])
    """

    def __init__(
        self,
        num_features: int,
        vocab_size: int,
        hidden: int = 64,
        subsampling: int = 4,
        kernel_size: int = 3,
        lstm_layers: int = 1,
        seed: int = 0,
    ):
        super().__init__()
        self.num_features = _args.integer(num_features, "num_features", 1)
        self.vocab_size = _args.integer(vocab_size, "vocab_size", 2)
        self.subsampling = _args.integer(subsampling, "subsampling", 1)
        self.kernel_size = _args.integer(kernel_size, "kernel_size", 1)
        lstm_layers = _args.integer(lstm_layers, "lstm_layers", 0)
        with _seeded(seed):
            self.conv = nn.Conv1d(self.subsampling * self.num_features, hidden, self.kernel_size)
            self.lstm = nn.LSTM(hidden, hidden, lstm_layers, batch_first=True) if lstm_layers else None
            self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
            self.head = nn.Linear(hidden, self.vocab_size)
            with torch.no_grad():  # peaky, varied posteriors like a trained model's, not all blank
                self.head.weight.normal_(0.0, 3.0 / math.sqrt(hidden))
        self.eval()

    @property
    def left_context(self) -> int | None:
        """Input frames of history an output depends on (None when an LSTM makes it unbounded)."""
        return None if self.lstm is not None else (self.kernel_size - 1) * self.subsampling

    def _stack(self, features: torch.Tensor) -> torch.Tensor:
        batch, frames, dims = features.shape
        steps = frames // self.subsampling
        return features[:, : steps * self.subsampling].reshape(batch, steps, self.subsampling * dims)

    def _check(self, features) -> torch.Tensor:
        x = _tensors.as_tensor(features, "features")
        if x.ndim != 3 or x.shape[2] != self.num_features or not x.dtype.is_floating_point:
            raise TensorError("features", f"a float [B, T, {self.num_features}] tensor", _tensors._describe(features))
        return x

    def _body(self, stacked: torch.Tensor, conv_cache: torch.Tensor, lstm_state):
        """Conv over [cache | stacked] (no padding) then LSTM from ``lstm_state``."""
        x = torch.cat([conv_cache, stacked], dim=1)
        y = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        if self.lstm is not None:
            y, lstm_state = self.lstm(y, lstm_state)
        return (
            torch.log_softmax(self.head(self.norm(y)), dim=-1),
            x[:, x.shape[1] - (self.kernel_size - 1) :],
            lstm_state,
        )

    @torch.no_grad()
    def forward(self, features, lengths=None):
        x = self._check(features)
        lens = _tensors.lengths(lengths, "lengths", x.shape[0], x.shape[1], x.device)
        state = self.initial_state(x.shape[0], x.dtype, x.device)
        log_probs, _, _ = self._body(self._stack(x), state["conv"], state["lstm"])
        return log_probs, lens // self.subsampling

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> dict:
        """The streaming state before the first chunk (zeros = the offline left padding)."""
        width = self.subsampling * self.num_features
        return {
            "rest": torch.zeros(batch, 0, self.num_features, dtype=dtype, device=device),
            "conv": torch.zeros(batch, self.kernel_size - 1, width, dtype=dtype, device=device),
            "lstm": None,
        }

    @torch.no_grad()
    def forward_chunk(self, features, state: dict):
        """Encode the next chunk [B, n, F] (any n >= 0): returns (log_probs [B, n', V], new state).

        Frames that do not complete an output frame are carried in the state; concatenating the
        outputs of successive chunks gives the offline ``forward`` output.
        """
        x = torch.cat([state["rest"], self._check(features)], dim=1)
        stacked = self._stack(x)
        rest = x[:, stacked.shape[1] * self.subsampling :]
        if stacked.shape[1] == 0:
            empty = x.new_zeros(x.shape[0], 0, self.vocab_size)
            return empty, {"rest": rest, "conv": state["conv"], "lstm": state["lstm"]}
        log_probs, conv, lstm = self._body(stacked, state["conv"], state["lstm"])
        return log_probs, {"rest": rest, "conv": conv, "lstm": lstm}


class KVCache:
    """Keys and values of every layer for the positions seen so far (preallocated to max_context)."""

    def __init__(self, num_layers: int, batch: int, heads: int, head_dim: int, capacity: int, dtype, device):
        shape = (batch, heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.length = 0
        self.capacity = capacity

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, mask, cache: KVCache | None, layer: int, start: int):
        batch, steps, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, steps, 3, self.heads, dim // self.heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            cache.keys[layer][:, :, start : start + steps] = k
            cache.values[layer][:, :, start : start + steps] = v
            k = cache.keys[layer][:, :, : start + steps]
            v = cache.values[layer][:, :, : start + steps]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(a.transpose(1, 2).reshape(batch, steps, dim))
        return x + self.mlp(self.norm2(x))


class TinyTransformerLM(nn.Module):
    """A small decoder-only transformer over ``num_streams`` parallel token streams.

    Args:
        vocab_size: input ids per stream, [0, vocab_size).
        num_streams: C, the parallel input streams (their embeddings are summed).
        out_vocab: logits per output head.
        out_streams: C_out, the output heads.
        dim, num_layers, num_heads: width, depth, attention heads (dim % num_heads == 0).
        max_context: the most positions a sequence may have (learned position embeddings).
        causal: False makes attention bidirectional by default (the VALL-E NAR model).
        num_stages: > 0 adds a stage embedding chosen by ``forward(..., stage=j)``.
        tie_weights: output head k is stream k's input embedding (its first ``out_vocab`` rows;
            needs ``out_streams == num_streams`` and ``out_vocab <= vocab_size``). The residual
            stream then favours the tokens just read, so the random model repeats itself the
            way codec LMs fall into loops.
        seed: seeds the weight initialisation.

    ``forward(tokens [B, S, C] int64, cache=None, attn_mask=None, stage=None)`` returns logits
    [B, S, C_out, out_vocab] (float32). With a :class:`KVCache` from :meth:`new_cache`, the S
    new positions follow the cached ones and are appended to the cache. ``attn_mask`` is bool
    [B, S, cached + S] (True = may attend); None means causal (or full when ``causal=False``).

    Raises:
        TensorError: tokens not [B, S, C] integer or outside [0, vocab_size); the sequence
            would exceed max_context; a mask of the wrong shape.

    Example:
        >>> lm = TinyTransformerLM(vocab_size=10, num_streams=2, out_vocab=7, out_streams=2, max_context=16)
        >>> cache = lm.new_cache(1)
        >>> lm(torch.zeros(1, 3, 2, dtype=torch.int64), cache).shape, cache.length
        (torch.Size([1, 3, 2, 7]), 3)
    """

    def __init__(
        self,
        vocab_size: int,
        num_streams: int = 1,
        out_vocab: int | None = None,
        out_streams: int = 1,
        dim: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        max_context: int = 1024,
        causal: bool = True,
        num_stages: int = 0,
        tie_weights: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.vocab_size = _args.integer(vocab_size, "vocab_size", 1)
        self.num_streams = _args.integer(num_streams, "num_streams", 1)
        self.out_vocab = _args.integer(out_vocab if out_vocab is not None else vocab_size, "out_vocab", 1)
        self.out_streams = _args.integer(out_streams, "out_streams", 1)
        self.max_context = _args.integer(max_context, "max_context", 1)
        self.causal = bool(causal)
        dim, num_heads = _args.integer(dim, "dim", 1), _args.integer(num_heads, "num_heads", 1)
        if dim % num_heads:
            raise InvalidArgumentError("num_heads", f"a divisor of dim={dim}", num_heads)
        if tie_weights and (self.out_streams != self.num_streams or self.out_vocab > self.vocab_size):
            raise InvalidArgumentError(
                "tie_weights", "out_streams == num_streams and out_vocab <= vocab_size", repr(tie_weights)
            )
        self.tie_weights = bool(tie_weights)
        # the tokens just read lead by a few nats: sampling often, not always, repeats them
        self.logit_scale = 1.6 / math.sqrt(dim)
        self.num_heads = num_heads
        with _seeded(seed):
            self.embed = nn.Embedding(self.num_streams * self.vocab_size, dim)
            self.position = nn.Embedding(self.max_context, dim)
            self.stage = nn.Embedding(num_stages, dim) if num_stages else None
            self.blocks = nn.ModuleList(
                _Block(dim, num_heads) for _ in range(_args.integer(num_layers, "num_layers", 1))
            )
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, self.out_streams * self.out_vocab)
            with torch.no_grad():  # larger logits make the random model's distributions peaky, like a trained LM
                self.head.weight.mul_(math.sqrt(dim))
        self.register_buffer("_offsets", torch.arange(self.num_streams) * self.vocab_size, persistent=False)
        self.eval()

    def new_cache(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> KVCache:
        """An empty KV cache for ``batch`` sequences of up to :attr:`max_context` positions."""
        dim = self.position.embedding_dim
        heads = self.num_heads
        return KVCache(len(self.blocks), batch, heads, dim // heads, self.max_context, dtype, device)

    @torch.no_grad()
    def forward(self, tokens, cache: KVCache | None = None, attn_mask=None, stage: int | None = None):
        t = _tensors.as_tensor(tokens, "tokens")
        if t.ndim != 3 or t.shape[2] != self.num_streams or t.dtype != torch.int64:
            raise TensorError("tokens", f"int64 [B, S, {self.num_streams}]", _tensors._describe(tokens))
        batch, steps, _ = t.shape
        start = cache.length if cache is not None else 0
        if start + steps > self.max_context:
            raise TensorError(
                "tokens", f"at most max_context={self.max_context} positions in all", f"{start + steps} positions"
            )
        if cache is not None and cache.batch_size != batch:
            raise TensorError("tokens", f"batch size {cache.batch_size} (the cache's)", _tensors._describe(tokens))
        if steps and (int(t.min()) < 0 or int(t.max()) >= self.vocab_size):
            raise TensorError("tokens", f"ids in [0, {self.vocab_size})", f"ids in [{int(t.min())}, {int(t.max())}]")
        x = self.embed(t + self._offsets).sum(dim=2)
        x = x + self.position(torch.arange(start, start + steps, device=t.device))
        if self.stage is not None and stage is not None:
            x = x + self.stage.weight[stage]
        mask = self._mask(attn_mask, batch, steps, start, t.device)
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer, start)
        if cache is not None:
            cache.length = start + steps
        h = self.norm(x)
        if self.tie_weights:
            table = self.embed.weight.view(self.num_streams, self.vocab_size, -1)[:, : self.out_vocab]
            return torch.einsum("bsd,cvd->bscv", h, table) * self.logit_scale
        return self.head(h).view(batch, steps, self.out_streams, self.out_vocab)

    def _mask(self, attn_mask, batch: int, steps: int, start: int, device):
        total = start + steps
        if attn_mask is None:
            if not self.causal or steps == 1:
                return None
            return torch.ones(steps, total, dtype=torch.bool, device=device).tril(start)
        m = _tensors.as_tensor(attn_mask, "attn_mask")
        if m.dtype != torch.bool or tuple(m.shape) != (batch, steps, total):
            raise TensorError("attn_mask", f"bool [{batch}, {steps}, {total}]", _tensors._describe(attn_mask))
        return m[:, None]


class TinyUnitHead(nn.Module):
    """LLaMA-Omni's unit decoder in miniature: upsampled hidden states [B, n * lambda, D] -> unit logits.

    The ``lambda`` copies of each hidden state are told apart by a learned embedding of their
    index within the copy group (LLaMA-Omni uses transformer layers for this); a LayerNorm and a
    linear layer give ``num_units + 1`` logits per frame, the blank last.

    Example:
        >>> head = TinyUnitHead(dim=8, num_units=10, upsample=3)
        >>> head(torch.randn(2, 6, 8)).shape
        torch.Size([2, 6, 11])
    """

    def __init__(self, dim: int, num_units: int, upsample: int = 25, seed: int = 0):
        super().__init__()
        self.upsample = _args.integer(upsample, "upsample", 1)
        self.num_units = _args.integer(num_units, "num_units", 1)
        with _seeded(seed):
            self.copy = nn.Embedding(self.upsample, _args.integer(dim, "dim", 1))
            self.norm = nn.LayerNorm(dim, elementwise_affine=False)
            self.head = nn.Linear(dim, self.num_units + 1)
            with torch.no_grad():
                self.copy.weight.mul_(2.0)
                self.head.weight.normal_(0.0, 4.0 / math.sqrt(dim))
        self.eval()

    @torch.no_grad()
    def forward(self, upsampled: torch.Tensor) -> torch.Tensor:
        frames = upsampled.shape[1]
        index = torch.arange(frames, device=upsampled.device) % self.upsample
        return self.head(self.norm(upsampled + self.copy(index)))


class TinyMelleLM(nn.Module):
    """A small continuous-token AR transformer for MELLE-style generation (random weights).

    Input: [B, S, r * D] reduced mel steps; output ``(mu, logvar, stop_logits)`` with mu and
    logvar [B, S, r * D] (the latent sampling module's Gaussian) and stop_logits [B, S].
    Uses a :class:`KVCache` like :class:`TinyTransformerLM` (``new_cache``, ``max_context``).

    Example:
        >>> lm = TinyMelleLM(mel_dim=4, r=2, max_context=8)
        >>> mu, logvar, stop = lm(torch.zeros(1, 3, 8), lm.new_cache(1))
        >>> mu.shape, stop.shape
        (torch.Size([1, 3, 8]), torch.Size([1, 3]))
    """

    def __init__(
        self,
        mel_dim: int,
        r: int = 1,
        dim: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        max_context: int = 512,
        stop_bias: float = -2.0,
        seed: int = 0,
    ):
        super().__init__()
        width = _args.integer(mel_dim, "mel_dim", 1) * _args.integer(r, "r", 1)
        self.max_context = _args.integer(max_context, "max_context", 1)
        self.num_heads = _args.integer(num_heads, "num_heads", 1)
        with _seeded(seed):
            self.inp = nn.Linear(width, dim)
            self.position = nn.Embedding(self.max_context, dim)
            self.blocks = nn.ModuleList(
                _Block(dim, num_heads) for _ in range(_args.integer(num_layers, "num_layers", 1))
            )
            self.norm = nn.LayerNorm(dim)
            self.mu = nn.Linear(dim, width)
            self.logvar = nn.Linear(dim, width)
            self.stop = nn.Linear(dim, 1)
            with torch.no_grad():
                self.stop.bias.fill_(stop_bias)
        self.eval()

    def new_cache(self, batch: int, dtype: torch.dtype = torch.float32, device=None) -> KVCache:
        """An empty KV cache for ``batch`` sequences of up to :attr:`max_context` steps."""
        dim = self.position.embedding_dim
        return KVCache(len(self.blocks), batch, self.num_heads, dim // self.num_heads, self.max_context, dtype, device)

    @torch.no_grad()
    def forward(self, steps: torch.Tensor, cache: KVCache | None = None):
        count = steps.shape[1]
        start = cache.length if cache is not None else 0
        if start + count > self.max_context:
            raise TensorError("steps", f"at most max_context={self.max_context} steps in all", f"{start + count}")
        x = self.inp(steps) + self.position(torch.arange(start, start + count, device=steps.device))
        mask = None if count == 1 else torch.ones(count, start + count, dtype=torch.bool).tril(start)
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer, start)
        if cache is not None:
            cache.length = start + count
        h = self.norm(x)
        return self.mu(h), self.logvar(h) - 2.0, self.stop(h)[..., 0]
