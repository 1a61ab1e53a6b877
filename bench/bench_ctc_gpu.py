"""Benchmark of the GPU CTC prefix beam search (Triton) against the C++ CPU search.

The GPU search is :func:`speechdecode.kernels.ctc_prefix_beam.triton.prefix_beam_search` (one
persistent program per utterance); the anchor is :class:`speechdecode.decoding.CtcPrefixBeamSearch`
with the native backend on all cores, the search a user runs today, with a single-thread row
beside it. Both decode the same peaky CTC-like posteriors
(:func:`speechdecode.bench.bench_ctc_greedy.make_log_probs`) without LM or hotwords, with the
same options; the GPU's best hypotheses are checked against the C++ search's before timing
(the GPU adds in float32, so only a near-tie closer than float32 rounding could tell them apart).

Cases: B in {1, 16, 64}, T = 500, V in {32, 500}, beam in {10, 50} (quick: two of them).
Throughput counts frames; GPU rows synchronise the device before the clock stops.
The suite needs a CUDA GPU: without one it raises :class:`BackendUnavailableError`.
"""

from __future__ import annotations

import torch

from speechdecode import _backend
from speechdecode.bench.bench_ctc_greedy import make_log_probs
from speechdecode.bench.harness import BenchmarkMismatchError, Suite, usable_cores
from speechdecode.decoding import CtcPrefixBeamSearch
from speechdecode.errors import BackendUnavailableError

FULL_SIZES = [(batch, 500, vocab, beam) for batch in (1, 16, 64) for vocab in (32, 500) for beam in (10, 50)]
QUICK_SIZES = [(1, 500, 32, 10), (16, 500, 500, 50)]
BLANK = 0
TOKEN_TOPK = 16
TOKEN_MIN_LOGP = -10.0
BEAM_THRESHOLD = 20.0


def add_cases(suite: Suite, sizes, device: str, *, token_topk: int = TOKEN_TOPK) -> None:
    """Add one case per ``(batch, frames, vocab, beam)`` in ``sizes``, the GPU search running on ``device``.

    ``device`` is "cuda", or "cpu" with ``TRITON_INTERPRET=1`` (how the tests run this logic).

    Raises:
        BenchmarkMismatchError: the GPU search's best tokens differ from the C++ search's.
    """
    # imported here: without triton the suite still loads and run() names what is missing
    from speechdecode.kernels.ctc_prefix_beam.triton import prefix_beam_search

    sync = torch.cuda.synchronize if device == "cuda" else None
    cpu_settings = {k: min(v, 3) if k == "repeats" else v for k, v in suite.settings.items()}  # seconds a run
    threads = usable_cores()
    for batch, frames, vocab, beam in sizes:
        x = make_log_probs(batch, frames, vocab, blank=BLANK)
        lengths = torch.full((batch,), frames, dtype=torch.int64)
        options = {
            "beam": beam,
            "token_topk": token_topk,
            "token_min_logp": TOKEN_MIN_LOGP,
            "beam_threshold": BEAM_THRESHOLD,
        }
        tokens = [f"t{v}" for v in range(vocab)]
        cpu = {
            n: CtcPrefixBeamSearch(
                tokens, BLANK, word_boundary=None, nbest=1, num_threads=n, backend="native", **options
            )
            for n in (1, threads)
        }
        xd, ld = x.to(device), lengths.to(device)

        def gpu(xd=xd, ld=ld, options=options):
            return prefix_beam_search(xd, ld, blank=BLANK, nbest=1, **options)

        case = f"B={batch} T={frames} V={vocab} beam={beam}"
        want = [hyps[0].tokens for hyps in cpu[threads](x, lengths)]
        got = [hyps[0][0] for hyps in gpu()]
        differ = [b for b in range(batch) if got[b] != want[b]]
        if differ:
            raise BenchmarkMismatchError(
                f"{case}/Triton: best tokens of utterance {differ[0]} differ from the C++ search's "
                f"({len(differ)} of {batch} utterances)"
            )
        params = {"batch": batch, "frames": frames, "vocab": vocab, "token_topk": token_topk, **options}
        common = {"items": batch * frames, "item_unit": "frame"}
        suite.add(
            case,
            "C++ CPU search (all cores)",
            lambda x=x, lengths=lengths, s=cpu[threads]: s(x, lengths),
            anchor=True,
            params={**params, "num_threads": threads},
            settings=cpu_settings,
            **common,
        )
        suite.add(
            case,
            "C++ CPU search (1 thread)",
            lambda x=x, lengths=lengths, s=cpu[1]: s(x, lengths),
            params={**params, "num_threads": 1},
            settings=cpu_settings,
            **common,
        )
        device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (Triton interpreter)"
        suite.add(case, "Triton GPU search", gpu, params={**params, "device": device_name}, sync=sync, **common)


def run(suite: Suite, quick: bool) -> None:
    """Add the ctc_gpu cases to ``suite`` (two sizes when ``quick``).

    Raises:
        BackendUnavailableError: no CUDA GPU (or no triton) here.
    """
    if not _backend.HAS_CUDA or "triton" not in _backend.available("cuda"):
        raise BackendUnavailableError(
            "the ctc_gpu suite times the Triton prefix beam search and needs a CUDA GPU with triton installed; "
            f"here torch.cuda.is_available() is {_backend.HAS_CUDA} and triton is "
            f"{'installed' if _backend.HAS_TRITON else 'missing'}"
        )
    add_cases(suite, QUICK_SIZES if quick else FULL_SIZES, "cuda")
