"""One beam-search step: :func:`~speechdecode.kernels.beam_search.beam_search_step` against an HF-style step.

The anchor follows transformers' classic beam search (``BeamSearchScorer.process``) as its code
runs: add the beam scores to the log-probs, ``view(B, beam*V)``, ``torch.topk(2*beam)``, split
the flat indices into parent beam and token, then a Python loop per batch item over the 2*beam
candidates that sets end-of-sequence candidates aside as finished hypotheses (those ranked
within the first ``beam``) and keeps the first ``beam`` others as the next beams. The loop reads
the candidates with ``tolist()`` once per step (transformers indexes tensors element by element,
which is slower), so the anchor is on the fast side of what it imitates.

In these inputs end-of-sequence is improbable, so both select the same beams; every output is
checked equal to the anchor's before timing. Ours: the ``native`` backend (batched torch).
"""

from __future__ import annotations

import torch

from speechdecode.bench.bench_masks import SINGLE_THREAD_NOTE, add_rows, single_thread
from speechdecode.bench.harness import Suite, check_equal
from speechdecode.kernels.beam_search import beam_search_step

EOS = 0


def hf_style_step(log_probs: torch.Tensor, beam_scores: torch.Tensor, beam: int, eos_id: int = EOS):
    """(next tokens [B, beam], parent beams [B, beam], scores [B, beam]), finished hypotheses per item."""
    rows, vocab = log_probs.shape
    batch = rows // beam
    scores = (log_probs.float() + beam_scores[:, None]).view(batch, beam * vocab)
    top, flat = torch.topk(scores, 2 * beam, dim=1, largest=True, sorted=True)
    parents = torch.div(flat, vocab, rounding_mode="floor")
    tokens = flat % vocab
    next_tokens, next_parents, next_scores, finished = [], [], [], []
    for token_row, score_row, parent_row in zip(tokens.tolist(), top.tolist(), parents.tolist(), strict=True):
        kept_t, kept_p, kept_s, done = [], [], [], []
        for rank, (token, score, parent) in enumerate(zip(token_row, score_row, parent_row, strict=True)):
            if token == eos_id:
                if rank < beam:
                    done.append((score, parent))
            else:
                kept_t.append(token)
                kept_p.append(parent)
                kept_s.append(score)
            if len(kept_t) == beam:
                break
        next_tokens.append(kept_t)
        next_parents.append(kept_p)
        next_scores.append(kept_s)
        finished.append(done)
    out = (torch.tensor(next_tokens), torch.tensor(next_parents), torch.tensor(next_scores, dtype=torch.float32))
    return out, finished


def _inputs(batch: int, beam: int, vocab: int, gen: torch.Generator):
    log_probs = torch.log_softmax(torch.randn(batch * beam, vocab, generator=gen) * 2, dim=-1)
    log_probs[:, EOS] -= 30.0  # end-of-sequence improbable: both sides keep the same beams
    beam_scores = -torch.rand(batch * beam, generator=gen) * 10
    return log_probs, beam_scores


def run(suite: Suite, quick: bool) -> None:
    sizes = (
        [(1, 4, 1024), (4, 4, 1024)]
        if quick
        else [(b, beam, v) for v in (1024, 32000) for b in (1, 16, 64) for beam in (4, 8)]
    )
    gen = torch.Generator().manual_seed(0)
    suite.note(SINGLE_THREAD_NOTE)
    with single_thread():
        for batch, beam, vocab in sizes:
            log_probs, beam_scores = _inputs(batch, beam, vocab, gen)
            want, _ = hf_style_step(log_probs, beam_scores, beam)
            got = beam_search_step(log_probs, beam_scores, beam, eos_id=EOS, backend="native")
            case = f"beam step B={batch} beam={beam} V={vocab}"
            check_equal(case, "beam_search_step", got, want, ["tokens", "parents", "scores"])
            rows = [
                ("HF-style topk(2*beam) + EOS loop", lambda x=log_probs, s=beam_scores, k=beam: hf_style_step(x, s, k)),
                (
                    "beam_search_step (native)",
                    lambda x=log_probs, s=beam_scores, k=beam: beam_search_step(x, s, k, eos_id=EOS, backend="native"),
                ),
            ]
            add_rows(
                suite,
                case,
                rows,
                bytes_processed=log_probs.numel() * log_probs.element_size(),
                items=batch,
                item_unit="item-step",
                params={"batch": batch, "beam": beam, "vocab": vocab},
            )
