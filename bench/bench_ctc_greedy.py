"""Benchmark of greedy CTC decoding (:func:`speechdecode.decoding.ctc_greedy.ctc_greedy_packed`).

Anchor: numpy's ``argmax(-1)`` plus a vectorized numpy collapse on the same array, the target
of the issue ("at least as fast as numpy's argmax(-1) plus a vectorized numpy collapse on the
same [64, 2000, 512] float32 input"). Cases:

* ``fp32``: float32 [64, 2000, 512], every utterance T frames long;
* ``fp16``: the same scores in float16 (anchor: numpy on the float16 array);
* ``bf16``: the same scores in bfloat16 (numpy has no bfloat16: the anchor runs on the
  float32 upcast of the same values, which gives the same argmax);
* ``fp32 ragged``: float32 with lengths drawn from [T/2, T]; throughput counts valid frames only.

Implementations: reference (torch), native on one thread and on every core, and Triton when
CUDA is available (inputs moved to the GPU before timing). The ``fp32`` case adds the native
float32 argmax forced to each other CPU path this machine has (``SPEECHDECODE_CPU_ISA``), and
``numpy.sum`` of the same array: one thread streaming the array once, the speed a memory-bound
single-thread greedy decode can reach (not a decoder; its ratio is the bound's). Every implementation's output is
checked against the anchor's before it is timed. Quick mode uses [4, 200, 64].
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from speechdecode import _backend
from speechdecode.bench.harness import Suite, check_equal, usable_cores
from speechdecode.decoding.ctc_greedy import ctc_greedy_packed

FULL_SHAPE = (64, 2000, 512)
QUICK_SHAPE = (4, 200, 64)
BLANK = 0
OUTPUTS = ("tokens", "frames", "offsets")


def make_log_probs(batch: int, frames: int, vocab: int, *, blank: int = BLANK, seed: int = 0) -> torch.Tensor:
    """Peaky CTC-like log-probabilities, float32 [batch, frames, vocab].

    Gaussian logits plus a boost of 6 on one label per frame; that label is the blank 60% of
    the time and labels come in runs of two frames, so the collapse has repeats to merge.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, vocab, generator=gen)
    half = (frames + 1) // 2
    labels = torch.randint(0, vocab, (batch, half), generator=gen)
    labels[torch.rand(batch, half, generator=gen) < 0.6] = blank
    labels = labels.repeat_interleave(2, dim=1)[:, :frames]
    logits.scatter_add_(2, labels[..., None], torch.full((batch, frames, 1), 6.0))
    return torch.log_softmax(logits, dim=-1).contiguous()


def numpy_greedy(x: np.ndarray, blank: int = BLANK, lengths: np.ndarray | None = None):
    """The anchor: numpy argmax(-1) and a vectorized collapse -> packed (tokens, frames, offsets)."""
    best = x.argmax(axis=-1)
    keep = best != blank
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    if lengths is not None:
        keep &= np.arange(best.shape[1]) < lengths[:, None]
    _, frames = np.nonzero(keep)
    offsets = np.zeros(best.shape[0] + 1, dtype=np.int64)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return best[keep], frames, offsets


def cpu_isas() -> list[str]:
    """The float32 argmax paths this CPU can run, fastest first (see decoding/ctc_greedy.py)."""
    flags = set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return [isa for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2")) if flag in flags] + ["portable"]


@contextlib.contextmanager
def forced_isa(isa: str | None):
    """SPEECHDECODE_CPU_ISA=isa while the block runs (None: the automatic choice)."""
    before = os.environ.get("SPEECHDECODE_CPU_ISA")
    if isa is not None:
        os.environ["SPEECHDECODE_CPU_ISA"] = isa
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SPEECHDECODE_CPU_ISA", None)
        else:
            os.environ["SPEECHDECODE_CPU_ISA"] = before


def _case(
    suite: Suite,
    case: str,
    anchor_name: str,
    anchor_fn,
    impls,
    *,
    bytes_processed: int,
    batch: int,
    params: dict,
    anchor_params: dict | None = None,
) -> None:
    """Add the anchor row and one row per (impl, fn, extra params, sync), each checked first."""
    want = anchor_fn()
    common = {"bytes_processed": bytes_processed, "items": batch, "item_unit": "utt"}
    suite.add(case, anchor_name, anchor_fn, anchor=True, params={**params, **(anchor_params or {})}, **common)
    for impl, fn, extra, sync in impls:
        with forced_isa(extra.get("forced_isa")):
            check_equal(case, impl, fn(), want, names=OUTPUTS)
            suite.add(case, impl, fn, params={**params, **extra}, sync=sync, **common)


def _impls(x: torch.Tensor, lengths: torch.Tensor | None, *, reference: bool, isas: bool = False):
    """(name, fn, params, sync) for every implementation that can run here, on the same values;
    with ``isas``, one native single-thread row per CPU path other than the automatic one."""
    rows = []
    if reference:
        rows.append(("reference (torch)", lambda: ctc_greedy_packed(x, lengths, BLANK, backend="reference"), {}, None))
    if "native" in _backend.available("cpu"):
        n = usable_cores()
        thread_counts = [1] if n == 1 else [1, n]
        for k in thread_counts:
            rows.append(
                (
                    f"native {k} thread{'s' if k > 1 else ''}",
                    lambda k=k: ctc_greedy_packed(x, lengths, BLANK, backend="native", num_threads=k),
                    {"num_threads": k, "cpu_path": cpu_isas()[0]},
                    None,
                )
            )
        for isa in cpu_isas()[1:] if isas else []:
            rows.append(
                (
                    f"native 1 thread {isa}",
                    lambda: ctc_greedy_packed(x, lengths, BLANK, backend="native", num_threads=1),
                    {"num_threads": 1, "cpu_path": isa, "forced_isa": isa},
                    None,
                )
            )
    if _backend.HAS_CUDA and "triton" in _backend.available("cuda"):
        xc = x.cuda()
        lc = None if lengths is None else lengths.cuda()
        torch.cuda.synchronize()
        rows.append(
            (
                "triton (cuda)",
                lambda: ctc_greedy_packed(xc, lc, BLANK, backend="triton"),
                {"device": torch.cuda.get_device_name(0)},
                torch.cuda.synchronize,
            )
        )
    return rows


def run(suite: Suite, quick: bool) -> None:
    """Add the ctc_greedy cases to ``suite`` (inputs [4, 200, 64] when ``quick``)."""
    batch, frames, vocab = QUICK_SHAPE if quick else FULL_SHAPE
    shape = [batch, frames, vocab]
    x32 = make_log_probs(batch, frames, vocab)
    a32 = x32.numpy()
    base = {"shape": shape, "blank": BLANK}
    anchor = "numpy argmax+collapse"

    _case(
        suite,
        "fp32",
        anchor,
        lambda: numpy_greedy(a32),
        _impls(x32, None, reference=True, isas=True),
        bytes_processed=x32.nbytes,
        batch=batch,
        params={**base, "dtype": "float32", "lengths": "all T"},
    )
    suite.add(
        "fp32",
        "numpy.sum (1 thread, streaming-read bound)",
        lambda: a32.sum(),
        bytes_processed=x32.nbytes,
        items=batch,
        item_unit="utt",
        params={**base, "dtype": "float32", "note": "not a decoder: one read of the array on one thread"},
    )

    x16 = x32.half()
    a16 = x16.numpy()
    _case(
        suite,
        "fp16",
        anchor,
        lambda: numpy_greedy(a16),
        _impls(x16, None, reference=False),
        bytes_processed=x16.nbytes,
        batch=batch,
        params={**base, "dtype": "float16", "lengths": "all T"},
    )

    xbf = x32.bfloat16()
    abf_up = xbf.float().numpy()
    _case(
        suite,
        "bf16",
        f"{anchor} on fp32 upcast",
        lambda: numpy_greedy(abf_up),
        _impls(xbf, None, reference=False),
        bytes_processed=xbf.nbytes,
        batch=batch,
        params={**base, "dtype": "bfloat16", "lengths": "all T"},
        anchor_params={
            "note": "numpy has no bfloat16: argmax on the float32 upcast of the same values "
            "(2x the bytes read); GB/s counts the bfloat16 input"
        },
    )

    gen = torch.Generator().manual_seed(1)
    lengths = torch.randint(frames // 2, frames + 1, (batch,), generator=gen)
    lengths_np = lengths.numpy()
    valid_bytes = int(lengths.sum()) * vocab * x32.element_size()
    _case(
        suite,
        "fp32 ragged",
        anchor,
        lambda: numpy_greedy(a32, BLANK, lengths_np),
        _impls(x32, lengths, reference=True),
        bytes_processed=valid_bytes,
        batch=batch,
        params={
            **base,
            "dtype": "float32",
            "lengths": f"uniform in [{frames // 2}, {frames}]",
            "valid_frames": int(lengths.sum()),
        },
        anchor_params={
            "note": "argmax over all T frames, then frames past each length masked out; GB/s counts valid frames only"
        },
    )
