"""Samplers: ``sample()`` against HF-style processors + multinomial; batched RAS against a per-row loop.

Anchors, written here from their published semantics (transformers is not a dependency):

* HF-style: ``TopKLogitsWarper`` (mask below the k-th value), ``TopPLogitsWarper`` (sort ascending,
  cumulative softmax, mask the tail below 1 - top_p), softmax, ``torch.multinomial``.
* CosyVoice-style RAS: a Python loop over rows, each row doing its own nucleus draw, window count
  and redraw, as CosyVoice's sampling code does per utterance.

Different random streams draw different tokens, so the anchors are checked for *behaviour*
(every drawn token survives the filters) rather than equality; ``sample`` and ``ras`` are tested
against their references on supplied uniforms in the test suite.
"""

from __future__ import annotations

import torch

from speechdecode.bench.harness import Suite
from speechdecode.decoding import ras, sample

TOP_K, TOP_P, WINDOW, THRESHOLD = 50, 0.8, 10, 0.1


def hf_style(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    kth = torch.topk(logits, TOP_K, dim=-1).values[:, -1:]
    x = logits.masked_fill(logits < kth, float("-inf"))
    ordered, order = torch.sort(x, descending=False)
    cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= 1 - TOP_P
    drop[:, -1] = False
    x = x.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return torch.multinomial(x.softmax(dim=-1), 1, generator=generator).squeeze(1)


def cosyvoice_loop(logits: torch.Tensor, history: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    tokens = []
    for row, past in zip(logits, history, strict=True):
        probs = row.softmax(dim=-1)
        ordered, order = probs.sort(descending=True, stable=True)
        keep = (ordered.cumsum(0) - ordered < TOP_P) & (torch.arange(len(ordered)) < 25)
        kept = ordered * keep
        token = int(order[torch.multinomial(kept / kept.sum(), 1, generator=generator)])
        recent = past[past >= 0][-WINDOW:]
        if int((recent == token).sum()) >= WINDOW * THRESHOLD:
            redraw = probs.clone()
            redraw[token] = 0
            token = int(torch.multinomial(redraw / redraw.sum(), 1, generator=generator))
        tokens.append(token)
    return torch.tensor(tokens)


def run(suite: Suite, quick: bool) -> None:
    sizes = [(1, 1024), (16, 4096)] if quick else [(1, 1024), (16, 4096), (64, 4096), (256, 4096), (16, 32000)]
    gen = torch.Generator().manual_seed(0)
    for batch, vocab in sizes:
        logits = torch.randn(batch, vocab, generator=gen) * 3
        kth = torch.topk(logits, TOP_K, dim=-1).values[:, -1:]
        drawn = hf_style(logits, gen)
        ours = sample(logits, top_k=TOP_K, top_p=TOP_P, generator=gen)
        for name, tokens in (("hf-style", drawn), ("sample", ours)):
            if not bool((logits.gather(1, tokens[:, None]) >= kth).all()):
                raise RuntimeError(f"{name} drew a token outside the top-k")
        case = f"sample B={batch} V={vocab}"
        params = {"batch": batch, "vocab": vocab, "top_k": TOP_K, "top_p": TOP_P}
        suite.add(
            case,
            "HF-style top-k/top-p + multinomial",
            lambda x=logits: hf_style(x, gen),
            anchor=True,
            items=batch,
            item_unit="draw",
            params=params,
        )
        suite.add(
            case,
            "sample (native: fused C++)",
            lambda x=logits: sample(x, top_k=TOP_K, top_p=TOP_P, generator=gen),
            items=batch,
            item_unit="draw",
            params=params,
        )

    ras_sizes = [(16, 1024)] if quick else [(64, 4096), (256, 4096)]
    for batch, vocab in ras_sizes:
        logits = torch.randn(batch, vocab, generator=gen) * 3
        history = torch.randint(0, 20, (batch, 30), generator=gen)  # repetitive history: the redraw fires often
        case = f"RAS cosyvoice B={batch} V={vocab}"
        params = {"batch": batch, "vocab": vocab, "window": WINDOW, "threshold": THRESHOLD, "top_p": TOP_P}
        suite.add(
            case,
            "per-row Python loop (CosyVoice-style)",
            lambda x=logits, h=history: cosyvoice_loop(x, h, gen),
            anchor=True,
            items=batch,
            item_unit="draw",
            params=params,
        )
        suite.add(
            case,
            "ras (native: fused C++)",
            lambda x=logits, h=history: ras(
                x, h, window=WINDOW, threshold=THRESHOLD, top_p=TOP_P, preset="cosyvoice", generator=gen
            ),
            items=batch,
            item_unit="draw",
            params=params,
        )
