"""The result types of the CTC decoders: :class:`Hypothesis` (greedy, prefix beam and WFST search) and
the WFST search's :class:`WfstHypothesis`."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Hypothesis", "WfstHypothesis"]


@dataclass(frozen=True)
class Hypothesis:
    """One decoding hypothesis of one utterance.

    Attributes:
        tokens: acoustic-model output ids of the hypothesis, blanks removed and repeats merged.
        words: the words, as strings.
        score: the total the search ranked by (natural-log units): ``am_score + lm_score`` plus,
            for searches that have them, the word insertion bonus and hotword bonuses.
        am_score: the acoustic part (natural log of the CTC probability summed or maximised over
            the alignments the search kept).
        lm_score: the weighted language-model part (``alpha * ln p_LM`` for prefix search, the
            graph cost's negation for WFST search).
        token_frames: the frame at which each token of ``tokens`` was emitted (first frame).
        word_frames: ``(first, last)`` frame of each word: the frames of its first and last
            non-blank token.
    """

    tokens: tuple[int, ...]
    words: tuple[str, ...]
    score: float
    am_score: float
    lm_score: float
    token_frames: tuple[int, ...] = field(default=(), repr=False)
    word_frames: tuple[tuple[int, int], ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        """The words joined by single spaces."""
        return " ".join(self.words)

    @classmethod
    def from_native(cls, h, words: tuple[str, ...] | None = None, **extra) -> Hypothesis:
        """The hypothesis of a native search's result (``_native.Hypothesis``); ``words``: its words
        when the search gave word ids (``h.word_ids``) rather than text."""
        return cls(
            tokens=h.tokens,
            words=h.words if words is None else words,
            score=h.score,
            am_score=h.am_score,
            lm_score=h.lm_score,
            token_frames=h.token_frames,
            word_frames=h.word_frames,
            **extra,
        )


@dataclass(frozen=True)
class WfstHypothesis(Hypothesis):
    """A :class:`Hypothesis` of the WFST search, plus whether its path ended in a final state.

    ``reached_final`` is False when no surviving path reached a final state of the graph after
    the last frame; the hypothesis is then the best path with final weights ignored (as Kaldi
    does), e.g. for an utterance cut mid-word.
    """

    reached_final: bool = True
