"""Searches and samplers that users call: CTC greedy decoding (more land with their issues)."""

from speechdecode.decoding.ctc_greedy import GreedyHypothesis, ctc_greedy, ctc_greedy_packed

__all__ = ["GreedyHypothesis", "ctc_greedy", "ctc_greedy_packed"]
