"""Every Triton path on the GPU against its anchor, in one table (``bench/gpu.sh`` runs it).

Cases, each checked against its reference before it is timed (draws with the same uniforms
must pick the same tokens; integer outputs must be equal):

* ``sample``: :func:`speechdecode.kernels.sampling.sample` (Triton) with top-k, with top-p;
  anchors the way inference stacks draw on the GPU: ``torch.topk`` + ``torch.multinomial``
  (top-k) and a ``torch.sort``-based nucleus mask + ``torch.multinomial`` (top-p, as
  Hugging Face's ``TopPLogitsWarper``). FlashInfer is used as a further row when installed.
* ``ras``: :func:`speechdecode.decoding.ras` (paper preset) against plain top-p sampling on the
  same device (the issue's target: RAS within 1.5x of plain top-p).
* ``ctc_greedy``: Triton argmax + collapse vs torch ``argmax`` + a vectorized collapse.
* ``delay_pattern build``: Triton vs a gather through an index built once.
* ``duration_mask``: the dense RALL-E mask on the GPU vs its plain-torch reference there.
* ``beam_search_step``: Triton vs an HF-style step (``(log_probs + scores).view(B, -1).topk``).
* ``prefix beam search``: the ``ctc_gpu`` suite's cases (:mod:`bench_ctc_gpu`).

Memory-bound rows carry ``bandwidth_fraction``: the bytes they must move (read once, write
once) per second over the device's copy bandwidth, measured here by a 1 GiB device-to-device
copy (256 MiB in quick mode). ``device`` is "cuda", or "cpu" under ``TRITON_INTERPRET=1`` with
quick shapes (how the tests check this plumbing without a GPU).
"""

from __future__ import annotations

import torch

from speechdecode import _backend
from speechdecode.bench import bench_ctc_gpu
from speechdecode.bench.bench_ctc_greedy import make_log_probs
from speechdecode.bench.harness import Suite
from speechdecode.decoding.ctc_greedy import ctc_greedy_packed
from speechdecode.decoding.ras import ras
from speechdecode.errors import BackendUnavailableError
from speechdecode.kernels import delay_pattern, duration_mask
from speechdecode.kernels.beam_search import beam_search_step
from speechdecode.kernels.duration_mask import reference as mask_reference
from speechdecode.kernels.sampling import sample

SPECIAL = 2048


def copy_bandwidth(nbytes: int, device: str, sync) -> float:
    """Bytes per second a device-to-device copy moves (read + write), best of 5."""
    import time

    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(6):
        sync()
        start = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


def _fraction(row: dict, moved: int, peak: float) -> None:
    row["params"]["bytes_moved"] = moved
    row["params"]["bandwidth_fraction"] = float(f"{moved / (row['median_ms'] / 1e3) / peak:.3g}")


def _sort_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Hugging Face's TopPLogitsWarper, then torch.multinomial."""
    sorted_logits, order = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -1:] = False
    masked = logits.scatter(1, order, sorted_logits.masked_fill(remove, float("-inf")))
    return torch.multinomial(masked.softmax(dim=-1), 1)[:, 0]


def _topk_multinomial(logits: torch.Tensor, k: int) -> torch.Tensor:
    values, index = torch.topk(logits, k)
    return index.gather(1, torch.multinomial(values.softmax(dim=-1), 1))[:, 0]


def _check(case: str, got: torch.Tensor, want: torch.Tensor) -> None:
    if not torch.equal(got.cpu(), want.cpu()):
        raise RuntimeError(f"{case}: the Triton result differs from the reference; not timing it")


def _sampling(suite: Suite, device: str, sync, shapes) -> None:
    gen = torch.Generator().manual_seed(0)
    for batch, vocab in shapes:
        logits = (torch.randn(batch, vocab, generator=gen) * 3).to(device)
        u = torch.rand(batch, generator=gen).to(device)
        history = torch.randint(0, vocab, (batch, 10), generator=gen).to(device)
        u2 = torch.rand(batch, 2, generator=gen).to(device)  # RAS: one uniform per draw, two draws
        _sampling_cases(suite, sync, logits, u, history, u2)


def _sampling_cases(suite: Suite, sync, logits, u, history, u2) -> None:
    batch, vocab = logits.shape
    params = {"batch": batch, "vocab": vocab}
    for name, kw, anchor_name, anchor in (
        ("top_k=50", {"top_k": 50}, "torch.topk + torch.multinomial", lambda: _topk_multinomial(logits, 50)),
        ("top_p=0.9", {"top_p": 0.9}, "torch.sort top-p + torch.multinomial", lambda: _sort_top_p(logits, 0.9)),
    ):
        case = f"sample {name} B={batch} V={vocab}"
        want = sample(logits.cpu(), uniforms=u.cpu(), backend="reference", **kw)
        _check(case, sample(logits, uniforms=u, backend="triton", **kw), want)
        suite.add(case, anchor_name, anchor, anchor=True, sync=sync, params=params)
        suite.add(case, "sample (triton)", lambda kw=kw: sample(logits, uniforms=u, backend="triton", **kw),
                  sync=sync, params=params)  # fmt: skip
    case = f"ras paper B={batch} V={vocab}"
    _check(
        case,
        ras(logits, history, uniforms=u2, backend="triton"),
        ras(logits.cpu(), history.cpu(), uniforms=u2.cpu(), backend="reference"),
    )
    suite.add(case, "sample top_p=0.8 (triton)", lambda: sample(logits, uniforms=u, top_p=0.8, backend="triton"),
              anchor=True, sync=sync, params=params)  # fmt: skip
    suite.add(case, "ras (triton)", lambda: ras(logits, history, uniforms=u2, backend="triton"), sync=sync,
              params=params)  # fmt: skip


def _memory_bound(suite: Suite, device: str, sync, peak: float, quick: bool) -> None:
    batch, frames, vocab = (2, 40, 33) if quick else (64, 2000, 512)
    x = make_log_probs(batch, frames, vocab).to(device)
    case = f"ctc_greedy B={batch} T={frames} V={vocab} fp32"
    want = ctc_greedy_packed(x.cpu(), backend="reference")
    got = ctc_greedy_packed(x, backend="triton")
    for a, b in zip(got, want, strict=True):
        _check(case, a, b)
    params = {"shape": [batch, frames, vocab]}
    suite.add(case, "torch argmax + collapse", lambda: ctc_greedy_packed(x, backend="reference"), anchor=True,
              sync=sync, bytes_processed=x.nbytes, params=params)  # fmt: skip
    row = suite.add(case, "ctc_greedy (triton)", lambda: ctc_greedy_packed(x, backend="triton"), sync=sync,
                    bytes_processed=x.nbytes, params=params)  # fmt: skip
    _fraction(row, x.nbytes, peak)

    batch, codebooks, frames = (2, 4, 50) if quick else (64, 8, 3000)
    delays = list(range(codebooks))
    codes = torch.randint(0, SPECIAL, (batch, codebooks, frames)).to(device)
    steps = frames + codebooks
    index = torch.full((codebooks, steps), frames, dtype=torch.long)
    for k in range(codebooks):
        index[k, 1 + k : 1 + k + frames] = torch.arange(frames)
    index = index.to(device).expand(batch, -1, -1)
    case = f"delay_pattern build B={batch} K={codebooks} T={frames}"
    built = delay_pattern.build(codes, delays, special=SPECIAL, backend="triton")[0]
    _check(case, built, delay_pattern.build(codes.cpu(), delays, special=SPECIAL, backend="reference")[0])
    moved = codes.nbytes + built.nbytes
    params = {"shape": [batch, codebooks, frames]}
    suite.add(
        case,
        "gather, index built once",
        lambda: torch.cat([codes, codes.new_full((batch, codebooks, 1), SPECIAL)], dim=-1).gather(2, index),
        anchor=True,
        sync=sync,
        bytes_processed=moved,
        params=params,
    )
    row = suite.add(case, "delay_pattern.build (triton)",
                    lambda: delay_pattern.build(codes, delays, special=SPECIAL, backend="triton"), sync=sync,
                    bytes_processed=moved, params=params)  # fmt: skip
    _fraction(row, moved, peak)

    rows, phonemes, k = (2, 12, 2) if quick else (8, 400, 3)
    durations = torch.randint(1, 8, (rows, phonemes)).to(device)
    total = int(durations.sum(dim=1).max())
    case = f"duration_mask dense B={rows} L={phonemes} k={k}"
    mask = duration_mask.dense_mask(durations, k, total)
    _check(case, mask, mask_reference.dense_mask(durations.cpu(), k, total))
    suite.add(case, "reference (torch, same device)", lambda: mask_reference.dense_mask(durations, k, total),
              anchor=True, sync=sync, bytes_processed=mask.nbytes, params={"frames": total})  # fmt: skip
    row = suite.add(case, "duration_mask.dense_mask", lambda: duration_mask.dense_mask(durations, k, total), sync=sync,
                    bytes_processed=mask.nbytes, params={"frames": total})  # fmt: skip
    _fraction(row, mask.nbytes, peak)


def _beam(suite: Suite, device: str, sync, shapes) -> None:
    gen = torch.Generator().manual_seed(2)
    for batch, beam, vocab in shapes:
        log_probs = torch.randn(batch * beam, vocab, generator=gen).log_softmax(-1).to(device)
        scores = torch.randn(batch * beam, generator=gen).to(device)
        _beam_case(suite, sync, log_probs, scores, beam)


def _beam_case(suite: Suite, sync, log_probs, scores, beam: int) -> None:
    batch, vocab = log_probs.shape[0] // beam, log_probs.shape[1]
    case = f"beam_search_step B={batch} beam={beam} V={vocab}"
    got = beam_search_step(log_probs, scores, beam, backend="triton")
    want = beam_search_step(log_probs.cpu(), scores.cpu(), beam, backend="reference")
    for a, b in zip(got, want, strict=True):
        _check(case, a, b)
    params = {"batch": batch, "beam": beam, "vocab": vocab}
    suite.add(case, "HF-style step (add + view + topk)",
              lambda: (log_probs + scores[:, None]).view(batch, -1).topk(2 * beam, dim=1), anchor=True,
              sync=sync, params=params)  # fmt: skip
    suite.add(case, "beam_search_step (triton)",
              lambda: beam_search_step(log_probs, scores, beam, backend="triton"), sync=sync,
              params=params)  # fmt: skip


def run(suite: Suite, quick: bool, device: str = "cuda") -> None:
    """Add every GPU case to ``suite``.

    Raises:
        BackendUnavailableError: ``device`` is "cuda" and there is no CUDA GPU with triton, or
            "cpu" without ``TRITON_INTERPRET=1``.
    """
    if device == "cuda" and (not _backend.HAS_CUDA or "triton" not in _backend.available("cuda")):
        raise BackendUnavailableError(
            "the gpu suite needs a CUDA GPU with triton installed; here torch.cuda.is_available() is "
            f"{_backend.HAS_CUDA} and triton is {'installed' if _backend.HAS_TRITON else 'missing'}"
        )
    if device == "cpu" and "triton" not in _backend.available("cpu"):
        raise BackendUnavailableError("the gpu suite on CPU runs Triton's interpreter: set TRITON_INTERPRET=1")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    peak = copy_bandwidth((64 if device == "cpu" else 256 if quick else 1024) << 20, device, sync)
    suite.note(f"gpu: device-to-device copy bandwidth {peak / 1e9:.1f} GB/s (read + write), the fraction's basis")
    _sampling(suite, device, sync, [(2, 100)] if quick else [(1, 32000), (64, 32000), (256, 2048)])
    _memory_bound(suite, device, sync, peak, quick)
    _beam(suite, device, sync, [(1, 4, 50)] if quick else [(1, 4, 1024), (8, 4, 32000), (64, 8, 2048)])
    # Triton's CPU interpreter runs one small search; the GPU runs the ctc_gpu suite's sizes.
    sizes = [(1, 12, 8, 4)] if device == "cpu" else bench_ctc_gpu.QUICK_SIZES if quick else bench_ctc_gpu.FULL_SIZES
    bench_ctc_gpu.add_cases(suite, sizes, device)
