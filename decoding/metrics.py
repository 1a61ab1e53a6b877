"""Error rates for scoring hypotheses: Levenshtein distance, word error rate, character error rate."""

from __future__ import annotations

from collections.abc import Sequence

from speechdecode.errors import InvalidArgumentError

__all__ = ["char_error_rate", "edit_distance", "word_error_rate"]


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, insertions and deletions (each costing 1)
    that turn ``ref`` into ``hyp``.

    Args:
        ref, hyp: sequences of comparable items (words, token ids, or a str as its characters).

    Returns:
        An int in ``[abs(len(ref) - len(hyp)), max(len(ref), len(hyp))]``.

    Example:
        >>> edit_distance("kitten", "sitting")
        3
        >>> edit_distance("the cat sat".split(), "the cat sat down".split())
        1
    """
    ref, hyp = list(ref), list(hyp)
    start = 0
    while start < min(len(ref), len(hyp)) and ref[start] == hyp[start]:
        start += 1
    stop_r, stop_h = len(ref), len(hyp)
    while stop_r > start and stop_h > start and ref[stop_r - 1] == hyp[stop_h - 1]:
        stop_r -= 1
        stop_h -= 1
    ref, hyp = ref[start:stop_r], hyp[start:stop_h]
    if len(hyp) > len(ref):
        ref, hyp = hyp, ref
    if not hyp:
        return len(ref)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def _check_pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    for name, texts in (("refs", refs), ("hyps", hyps)):
        if isinstance(texts, str):
            raise InvalidArgumentError(name, "a list of strings", "a single str")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidArgumentError(f"{name}[{i}]", "a str", type(text).__name__)
    if len(refs) != len(hyps):
        raise InvalidArgumentError("hyps", f"{len(refs)} hypotheses, one per reference", f"{len(hyps)}")


def _error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence], unit: str) -> float:
    total = sum(len(r) for r in refs)
    if total == 0:
        raise InvalidArgumentError("refs", f"at least one reference {unit}", f"0 {unit}s")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True)) / total


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate: total word edits over total reference words.

    Words are the whitespace-separated fields of each string; nothing else is normalized (case and
    punctuation count). The rate can exceed 1 when hypotheses insert many words.

    Args:
        refs: reference transcripts.
        hyps: hypotheses, one per reference.

    Returns:
        ``sum(edit_distance(r.split(), h.split())) / sum(len(r.split()))`` as a float.

    Raises:
        InvalidArgumentError: ``refs`` or ``hyps`` is a single str or holds a non-str, the lengths
            differ, or the references have no words at all.

    Example:
        >>> word_error_rate(["the cat sat", "hello"], ["the bat sat down", "hello"])
        0.5
    """
    _check_pairs(refs, hyps)
    return _error_rate([r.split() for r in refs], [h.split() for h in hyps], "word")


def char_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus character error rate: total character edits over total reference characters.

    Whitespace is normalized first (runs become one space, ends are stripped), then every
    character counts, spaces included (as in jiwer's ``cer``).

    Args:
        refs: reference transcripts.
        hyps: hypotheses, one per reference.

    Returns:
        The rate as a float (it can exceed 1).

    Raises:
        InvalidArgumentError: as :func:`word_error_rate` (references with no characters at all).

    Example:
        >>> char_error_rate(["abc d"], ["abd  d "])
        0.2
    """
    _check_pairs(refs, hyps)
    return _error_rate([" ".join(r.split()) for r in refs], [" ".join(h.split()) for h in hyps], "character")
