"""Batched CTC prefix beam search (no LM, no hotwords) as one persistent Triton kernel.

The search is the one :mod:`speechdecode.kernels.ctc_prefix_beam.reference` defines; this file
runs it on the GPU with every piece of state on the device and no host synchronisation per frame.

Layout: one program per utterance loops over its frames. A frame's candidates are the beams
themselves (blank and repeated-token terms, a ``[BEAM]`` block) and their extensions, a
``[BEAM, TOPK_P]`` grid: row k is beam k, column i its extension by the frame's i-th candidate
token (per-frame top-k).

Prefix identity is exact, not hashed. Every prefix that ever survived pruning is a node of a
trie kept as an open-addressing table keyed by ``(parent node, token)`` (the key is stored whole,
so a probe compares keys exactly: hash collisions only lengthen probing, they cannot merge two
prefixes). The table slot is the node id, and equal prefixes always get the same node, so

* equal prefixes merge by comparing ids: extension (k, c) equals beam j iff j's parent node is
  k's node and j's last token is c;
* a prefix that was pruned and later re-created finds its old node, which keeps the frame at
  which it first survived (the reference's token frames).

Each beam also keeps its root-to-leaf path of node ids (``[B, 2, BEAM, T]``, double-buffered by
frame parity) rather than a parent-pointer tree: ranking needs "is beam k a prefix of beam j, and
which token follows it in j" for every pair, which a path answers with one load and a tree only
by walking up. Paths are copied from the source beam each frame (O(beam x length) per frame).

Tie-breaking in (-score, prefix) order. Beams carry their lexicographic rank r. With beams
B_0 < ... < B_{n-1}, an extension X = P + c lies strictly between B_{p-1} and B_p where
p = r(P) + 1 + #{beams that extend P with a next token < c}. Every P whose extension falls in
that gap is a prefix of B_{p-1}, and of two such, the longer one continues the shorter with a
token < c, so extensions in one gap order by longer P first (higher r(P)), then by c. Hence
``lex = 2p (gap) or 2r + 1 (a beam itself), then (BEAM - 1 - r(P), c)`` orders all candidates
exactly as tuple comparison does. It goes under the order-preserving bits of the float32 score
into one int64 key; the ``beam`` smallest keys are extracted one by one, and the kept beams' new
ranks are the ranks of their lex keys.

Numerics: log-probabilities are added and log-sum-exp'ed in float32 (the reference uses
float64), so scores agree to about 1e-5 per 30 frames and the n-best lists are identical except
when two prefixes' float64 scores differ by less than float32 rounding. Every table entry sums at
most two terms, and log-sum-exp of two terms is symmetric, so ties that are exact in the
reference (equal log-probabilities) are exact here too and broken the same way.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from speechdecode import _backend, _tensors
from speechdecode.errors import InvalidArgumentError, TensorError

__all__ = ["prefix_beam_search"]

_EMPTY, _SENTINEL = -1, -2  # table keys: a free slot; the extra slot that masked-off probes target


@triton.jit
def _logaddexp(a, b):
    hi = tl.maximum(a, b)
    lo = tl.minimum(a, b)
    # -inf - -inf would be NaN: shift by 0 instead, giving -inf + log(1) = -inf
    return hi + tl.log(1.0 + tl.exp(lo - tl.where(hi == float("-inf"), 0.0, hi)))


@triton.jit
def _rank_key(score, lex):
    """int64 keys ascending in (-score, lex): the float's order-preserving bits above lex."""
    bits = (score + 0.0).to(tl.int32, bitcast=True)  # + 0.0 turns -0.0 into 0.0: equal scores, equal bits
    mono = tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)  # signed order of the floats
    return (-(mono.to(tl.int64)) - 1) * 4294967296 + lex.to(tl.int64)


@triton.jit
def _ctc_prefix_beam_kernel(
    p_x,
    p_lengths,
    p_keys,
    p_node_frame,
    p_path,
    p_dead,
    p_rel,
    p_out_tokens,
    p_out_frames,
    p_out_len,
    p_out_score,
    p_out_count,
    stride_b,
    stride_t,
    V,
    T_MAX,
    CAP,
    blank,
    beam,
    nbest,
    token_min_logp,
    beam_threshold,
    BEAM: tl.constexpr,
    TOPK: tl.constexpr,
    TOPK_P: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    i_b = tl.program_id(0)
    i_b64 = i_b.to(tl.int64)
    length = tl.load(p_lengths + i_b).to(tl.int32)
    o_k = tl.arange(0, BEAM)
    o_c = tl.arange(0, TOPK_P)
    o_v = tl.arange(0, BLOCK_V)
    m_v = o_v < V
    p_x_b = p_x + i_b64 * stride_b
    p_keys_b = p_keys + i_b64 * (CAP + 1)
    p_frame_b = p_node_frame + i_b64 * CAP
    p_path_b = p_path + i_b64 * (2 * BEAM * T_MAX)
    p_dead_b = p_dead + i_b64 * (BEAM * TOPK_P)
    p_rel_b = p_rel + i_b64 * (BEAM * BEAM)
    LEX_SCALE = BEAM * V

    # the beam, one lane per slot: only the root () with p_b = 0 at first; node -1 is the root
    valid = o_k == 0
    p_b = tl.where(valid, 0.0, float("-inf"))
    p_nb = tl.full([BEAM], float("-inf"), tl.float32)
    node = tl.full([BEAM], -1, tl.int32)
    parent = tl.full([BEAM], -2, tl.int32)
    last = tl.full([BEAM], -1, tl.int32)
    plen = tl.zeros([BEAM], tl.int32)
    lrank = o_k
    for t in range(0, length):
        p_src = p_path_b + (t % 2) * (BEAM * T_MAX)
        p_dst = p_path_b + ((t + 1) % 2) * (BEAM * T_MAX)
        p_row = p_x_b + t * stride_t
        b_x = tl.load(p_row + o_v, mask=m_v, other=float("-inf")).to(tl.float32)
        x_blank = tl.load(p_row + blank).to(tl.float32)

        # candidates by (-x, v); -inf tokens are left out: a -inf term through a token creates nothing
        b_xm = tl.where(m_v & (o_v != blank) & (b_x >= token_min_logp), b_x, float("-inf"))
        cand = tl.full([TOPK_P], -1, tl.int32)
        cand_x = tl.full([TOPK_P], float("-inf"), tl.float32)
        for i in tl.static_range(TOPK):
            top = tl.max(b_xm, axis=0)
            arg = tl.min(tl.where(b_xm == top, o_v, BLOCK_V), axis=0)
            # the scalar test goes through a [TOPK_P] block: the interpreter cannot broadcast a scalar int1
            take = (o_c == i) & ((tl.zeros([TOPK_P], tl.float32) + top) > float("-inf"))
            cand = tl.where(take, arg, cand)
            cand_x = tl.where(take, top, cand_x)
            b_xm = tl.where(o_v == arg, float("-inf"), b_xm)

        total = _logaddexp(p_b, p_nb)
        x_last = tl.load(p_row + last, mask=valid & (last >= 0), other=float("-inf")).to(tl.float32)
        # [BEAM, TOPK_P]: is candidate i the beam's last token
        is_last = (cand[None, :] == last[:, None]) & (cand[None, :] >= 0)
        own_b = total + x_blank
        own_nb = tl.where(tl.max(is_last.to(tl.int32), axis=1) > 0, p_nb + x_last, float("-inf"))
        # [BEAM, TOPK_P]: p_nb of extension (k, i); a repeated token extends only the blank-ending paths
        ext_nb = tl.where(is_last, p_b[:, None], total[:, None]) + cand_x[None, :]

        # beam j already is beam k + candidate i when j's parent is k's node: merge into j
        # [BEAM_j, BEAM_k]
        match = (node[None, :] == parent[:, None]) & valid[None, :] & valid[:, None]
        k_j = tl.max(tl.where(match, o_k[None, :], -1), axis=1)
        i_j = tl.max(tl.where(is_last, o_c[None, :], -1), axis=1)
        merged = (k_j >= 0) & (i_j >= 0)
        b_kj = tl.max(tl.where(match, p_b[None, :], float("-inf")), axis=1)
        total_kj = tl.max(tl.where(match, total[None, :], float("-inf")), axis=1)
        last_kj = tl.max(tl.where(match, last[None, :], -1), axis=1)
        into_j = tl.where(last_kj == last, b_kj, total_kj) + x_last
        own_nb = tl.where(merged, _logaddexp(own_nb, into_j), own_nb)
        # a merged extension leaves the candidate list; stamping with t + 1 needs no clearing
        tl.store(p_dead_b + k_j * TOPK_P + i_j, t + 1, mask=merged)
        tl.debug_barrier()
        dead = tl.load(p_dead_b + o_k[:, None] * TOPK_P + o_c[None, :]) == t + 1
        alive = valid[:, None] & (cand[None, :] >= 0) & (ext_nb > float("-inf")) & ~dead

        # [BEAM_j, BEAM_k]: the token following beam k inside beam j when k is a proper prefix of j, else V
        len_k = plen[None, :]
        below = valid[:, None] & valid[None, :] & (plen[:, None] > len_k)
        anc = tl.load(p_src + o_k[:, None] * T_MAX + len_k - 1, mask=below & (len_k > 0), other=-1)
        below = below & ((len_k == 0) | (anc == node[None, :]))
        next_node = tl.load(p_src + o_k[:, None] * T_MAX + len_k, mask=below, other=0)
        # .cg: keys are written by atomics (in L2), so these reads skip the SM's L1
        next_token = (tl.load(p_keys_b + next_node, mask=below, other=0, cache_modifier=".cg") % V).to(tl.int32)
        tl.store(p_rel_b + o_k[:, None] * BEAM + o_k[None, :], tl.where(below, next_token, V))
        tl.debug_barrier()
        smaller = tl.zeros([BEAM, TOPK_P], tl.int32)
        for j in range(0, tl.sum(valid.to(tl.int32), axis=0)):  # live beams fill the first slots
            b_rel = tl.load(p_rel_b + j * BEAM + o_k)
            smaller += (b_rel[:, None] < cand[None, :]).to(tl.int32)
        gap = lrank[:, None] + 1 + smaller
        ext_lex = 2 * gap * LEX_SCALE + (BEAM - 1 - lrank[:, None]) * V + cand[None, :]
        ext_key = tl.where(alive, _rank_key(ext_nb, ext_lex), 9223372036854775807)
        own_key = tl.where(
            valid, _rank_key(_logaddexp(own_b, own_nb), (2 * lrank + 1) * LEX_SCALE), 9223372036854775807
        )
        # the `beam` smallest keys, one extraction each: keys are distinct (lex names the candidate),
        # and `beam` minima cost less than sorting all BEAM * (TOPK_P + 1) keys
        top_key = tl.full([BEAM], 9223372036854775807, tl.int64)
        for q in range(0, beam):
            least = tl.minimum(tl.min(tl.min(ext_key, axis=1), axis=0), tl.min(own_key, axis=0))
            top_key = tl.where(o_k == q, least, top_key)
            ext_key = tl.where(ext_key == least, 9223372036854775807, ext_key)
            own_key = tl.where(own_key == least, 9223372036854775807, own_key)

        chosen = (o_k < beam) & (top_key != 9223372036854775807)
        lex_q = (top_key & 0xFFFFFFFF).to(tl.int32)
        primary = lex_q // LEX_SCALE
        own_q = (primary % 2) == 1
        rank_src = tl.where(own_q, (primary - 1) // 2, BEAM - 1 - (lex_q % LEX_SCALE) // V)
        c_q = tl.where(own_q, -1, lex_q % V)
        # [BEAM_q, BEAM_k]: the source beam of each chosen candidate
        sel = (lrank[None, :] == rank_src[:, None]) & valid[None, :] & chosen[:, None]
        src_own_b = tl.max(tl.where(sel, own_b[None, :], float("-inf")), axis=1)
        src_own_nb = tl.max(tl.where(sel, own_nb[None, :], float("-inf")), axis=1)
        src_b = tl.max(tl.where(sel, p_b[None, :], float("-inf")), axis=1)
        src_total = tl.max(tl.where(sel, total[None, :], float("-inf")), axis=1)
        src_slot = tl.max(tl.where(sel, o_k[None, :], 0), axis=1)
        src_last = tl.max(tl.where(sel, last[None, :], -1), axis=1)
        src_node = tl.max(tl.where(sel, node[None, :], -1), axis=1)
        src_parent = tl.max(tl.where(sel, parent[None, :], -2), axis=1)
        src_len = tl.max(tl.where(sel, plen[None, :], 0), axis=1)
        x_c = tl.load(p_row + c_q, mask=chosen & ~own_q, other=float("-inf")).to(tl.float32)
        new_b = tl.where(own_q, src_own_b, float("-inf"))
        new_nb = tl.where(own_q, src_own_nb, tl.where(c_q == src_last, src_b, src_total) + x_c)
        new_score = _logaddexp(new_b, new_nb)
        best = tl.max(tl.where(chosen, new_score, float("-inf")), axis=0)
        keep = chosen & (new_score >= best - beam_threshold)

        # the extensions' nodes: find (parent node, token) in the table or claim a free slot
        h_key = (src_node + 1).to(tl.int64) * V + c_q
        # Knuth's multiplicative hash (a product that wraps around hashes just as well)
        slot = ((h_key * 2654435761) >> 16) & (CAP - 1)
        new_node = src_node
        pending = keep & ~own_q
        while tl.max(pending.to(tl.int32), axis=0) > 0:
            # probes of finished lanes go to the sentinel slot, whose key never equals _EMPTY
            p_probe = tl.where(pending, p_keys_b + slot, p_keys_b + CAP)
            old = tl.atomic_cas(p_probe, tl.full([BEAM], -1, tl.int64), h_key)
            claimed = pending & (old == -1)
            found = pending & ((old == h_key) | claimed)
            tl.store(p_frame_b + slot, t, mask=claimed)
            new_node = tl.where(found, slot.to(tl.int32), new_node)
            pending = pending & ~found
            slot = (slot + 1) & (CAP - 1)
        new_len = tl.where(own_q, src_len, src_len + 1)

        longest = tl.max(tl.where(keep, new_len, 0), axis=0)
        for l0 in range(0, longest, BLOCK_L):
            o_l = l0 + tl.arange(0, BLOCK_L)
            # [BEAM, BLOCK_L]
            b_path = tl.load(
                p_src + src_slot[:, None] * T_MAX + o_l[None, :], mask=keep[:, None] & (o_l[None, :] < src_len[:, None])
            )
            b_path = tl.where(o_l[None, :] == src_len[:, None], new_node[:, None], b_path)
            tl.store(
                p_dst + o_k[:, None] * T_MAX + o_l[None, :],
                b_path,
                mask=keep[:, None] & (o_l[None, :] < new_len[:, None]),
            )

        # [BEAM_q, BEAM_q']: new lexicographic ranks among the kept prefixes
        lrank = tl.sum((keep[None, :] & (lex_q[None, :] < lex_q[:, None])).to(tl.int32), axis=1)
        valid = keep
        p_b = tl.where(keep, new_b, float("-inf"))
        p_nb = tl.where(keep, new_nb, float("-inf"))
        node = tl.where(keep, new_node, -1)
        parent = tl.where(keep, tl.where(own_q, src_parent, src_node), -2)
        last = tl.where(keep, tl.where(own_q, src_last, c_q), -1)
        plen = tl.where(keep, new_len, 0)
        tl.debug_barrier()

    final = _logaddexp(p_b, p_nb) + 0.0
    # [BEAM_q, BEAM_q']: q' ranks before q by (-score, prefix)
    before = valid[None, :] & (
        (final[None, :] > final[:, None]) | ((final[None, :] == final[:, None]) & (lrank[None, :] < lrank[:, None]))
    )
    rank = tl.sum(before.to(tl.int32), axis=1)
    out = valid & (rank < nbest)
    p_fin = p_path_b + (length % 2) * (BEAM * T_MAX)
    tl.store(p_out_score + i_b64 * nbest + rank, final, mask=out)
    tl.store(p_out_len + i_b64 * nbest + rank, plen, mask=out)
    tl.store(p_out_count + i_b, tl.minimum(tl.sum(valid.to(tl.int32), axis=0), nbest))
    longest = tl.max(tl.where(out, plen, 0), axis=0)
    for l0 in range(0, longest, BLOCK_L):
        o_l = l0 + tl.arange(0, BLOCK_L)
        m_l = out[:, None] & (o_l[None, :] < plen[:, None])
        b_node = tl.load(p_fin + o_k[:, None] * T_MAX + o_l[None, :], mask=m_l, other=0)
        b_token = tl.load(p_keys_b + b_node, mask=m_l, other=0, cache_modifier=".cg") % V
        b_frame = tl.load(p_frame_b + b_node, mask=m_l, other=0)
        p_o = (i_b64 * nbest + rank[:, None]) * T_MAX + o_l[None, :]
        tl.store(p_out_tokens + p_o, b_token.to(tl.int32), mask=m_l)
        tl.store(p_out_frames + p_o, b_frame, mask=m_l)


def _check_option(value, name: str, *, integer: bool, low: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if integer:
        ok = ok and isinstance(value, int)
    if not ok or value < low:
        raise InvalidArgumentError(name, f"{'an integer' if integer else 'a number'} >= {low}", repr(value))
    return value


def prefix_beam_search(
    log_probs,
    lengths=None,
    *,
    blank: int,
    beam: int,
    token_topk: int,
    token_min_logp: float,
    beam_threshold: float,
    nbest: int,
) -> list[list[tuple[tuple[int, ...], float, tuple[int, ...]]]]:
    """Batched CTC prefix beam search without LM or hotwords, on the GPU.

    The search of :mod:`speechdecode.kernels.ctc_prefix_beam.reference` with ``extra = 0``:
    same n-best token sequences, scores within float32 rounding (about 1e-4 after a few dozen
    frames; the reference adds in float64).

    Args:
        log_probs: ``[B, T, V]`` float32, float16 or bfloat16 (read as float32) torch tensor
            or numpy array, any strides; CUDA, or CPU under ``TRITON_INTERPRET=1``.
        lengths: ``[B]`` integers in ``[0, T]`` (None: every utterance is T frames).
        blank: the blank id. beam: prefixes kept per frame. token_topk: non-blank tokens
            extended per frame. token_min_logp: tokens below it are not extended.
        beam_threshold: prefixes scoring more than this below the best are dropped.
        nbest: hypotheses returned per utterance.

    Returns:
        Per utterance, up to ``nbest`` ``(tokens, score, token_frames)`` best first: token ids,
        the prefix's log-probability, and for each token the first frame at which the prefix
        ending with it survived pruning. An empty utterance gives ``[((), 0.0, ())]``.

    Raises:
        TensorError: log_probs not 3-D, not float32/16/bf16 or on the CPU outside the
            interpreter, lengths of the wrong shape or
            outside [0, T], NaN or +inf in a valid frame (naming ``[utterance, frame, token]``).
        InvalidArgumentError: blank outside [0, V), beam / token_topk / nbest < 1,
            beam_threshold < 0 or NaN, token_min_logp NaN; sizes past the kernel's 31-bit
            ranking keys (about beam**2 * V >= 2**30) or int32 node ids (T * beam >= 2**29).

    A frame's V scores are one register block, so V up to a few thousand suits the kernel.

    Example:
        >>> import torch
        >>> # (1, 2) enters the beam at frame 1 already, as a runner-up
        >>> x = torch.log(torch.tensor([[[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]]))
        >>> [(tokens, frames) for tokens, _, frames in prefix_beam_search(
        ...     x, [3], blank=0, beam=4, token_topk=2, token_min_logp=-10.0, beam_threshold=20.0, nbest=1)[0]]
        [((1, 2), (0, 1))]
    """
    x = _tensors.scores(log_probs, "log_probs", 3)
    if x.device.type != "cuda" and not _backend.triton_interpret():
        raise TensorError("log_probs", "a CUDA tensor (CPU tensors run only under TRITON_INTERPRET=1)", x.device)
    batch, frames, vocab = x.shape
    blank = _tensors.label(blank, "blank", vocab)
    beam = _check_option(beam, "beam", integer=True, low=1)
    token_topk = _check_option(token_topk, "token_topk", integer=True, low=1)
    nbest = _check_option(nbest, "nbest", integer=True, low=1)
    beam_threshold = float(_check_option(beam_threshold, "beam_threshold", integer=False, low=0.0))
    token_min_logp = float(_check_option(token_min_logp, "token_min_logp", integer=False, low=-math.inf))
    lens = _tensors.lengths(lengths, "lengths", batch, frames, x.device)
    if x.stride(2) != 1:
        x = x.contiguous()
    valid = torch.arange(frames, device=x.device)[None, :] < lens[:, None]
    bad = (torch.isnan(x) | (x == math.inf)) & valid[..., None]
    if bool(bad.any()):
        b, t, v = (int(i) for i in bad.nonzero()[0])
        kind = "NaN" if bool(torch.isnan(x[b, t, v])) else "+inf"
        raise TensorError("log_probs", "finite log-probabilities or -inf", f"{kind} at [{b}, {t}, {v}]")
    if batch == 0:
        return []

    block_beam = triton.next_power_of_2(beam)
    topk = min(token_topk, vocab - 1)
    topk_p = triton.next_power_of_2(max(topk, 1))
    t_max = max(frames, 1)
    # every frame adds at most `beam` nodes; a half-full table keeps probe runs short
    cap = triton.next_power_of_2(2 * frames * beam + 2)
    if (2 * block_beam + 1) * block_beam * vocab >= 2**31 or cap >= 2**31:
        raise InvalidArgumentError(
            "log_probs",
            "(2 * B + 1) * B * V < 2**31 for B = beam rounded up to a power of 2, and T * beam < 2**29",
            f"T={frames}, V={vocab}, beam={beam}",
        )
    device = x.device
    keys = torch.full((batch, cap + 1), _EMPTY, dtype=torch.int64, device=device)
    keys[:, cap] = _SENTINEL
    node_frame = torch.empty((batch, cap), dtype=torch.int32, device=device)
    path = torch.empty((batch, 2, block_beam, t_max), dtype=torch.int32, device=device)
    dead = torch.zeros((batch, block_beam * topk_p), dtype=torch.int32, device=device)
    rel = torch.empty((batch, block_beam, block_beam), dtype=torch.int32, device=device)
    out_tokens = torch.empty((batch, nbest, t_max), dtype=torch.int32, device=device)
    out_frames = torch.empty((batch, nbest, t_max), dtype=torch.int32, device=device)
    out_len = torch.zeros((batch, nbest), dtype=torch.int32, device=device)
    out_score = torch.zeros((batch, nbest), dtype=torch.float32, device=device)
    out_count = torch.zeros(batch, dtype=torch.int32, device=device)
    _ctc_prefix_beam_kernel[(batch,)](
        x,
        lens,
        keys,
        node_frame,
        path,
        dead,
        rel,
        out_tokens,
        out_frames,
        out_len,
        out_score,
        out_count,
        x.stride(0),
        x.stride(1),
        vocab,
        t_max,
        cap,
        blank,
        beam,
        nbest,
        token_min_logp,
        beam_threshold,
        BEAM=block_beam,
        TOPK=topk,
        TOPK_P=topk_p,
        BLOCK_V=triton.next_power_of_2(vocab),
        BLOCK_L=min(64, triton.next_power_of_2(t_max)),
        num_warps=4 if block_beam * topk_p <= 512 else 8,
    )
    return _unpack(out_tokens.cpu(), out_frames.cpu(), out_len.cpu(), out_score.cpu(), out_count.cpu())


def _unpack(tokens, frames, lens, scores, counts) -> list[list[tuple[tuple[int, ...], float, tuple[int, ...]]]]:
    results = []
    for b in range(len(counts)):
        hyps: list[tuple[tuple[int, ...], float, tuple[int, ...]]] = []
        for r in range(int(counts[b])):
            n = int(lens[b, r])
            hyps.append((tuple(tokens[b, r, :n].tolist()), float(scores[b, r]), tuple(frames[b, r, :n].tolist())))
        results.append(hyps)
    return results
