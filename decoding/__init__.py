"""Searches and samplers that users call: CTC greedy decoding, error rates (more land with their issues)."""

from speechdecode.decoding.ctc_greedy import GreedyHypothesis, ctc_greedy, ctc_greedy_packed
from speechdecode.decoding.metrics import char_error_rate, edit_distance, word_error_rate

__all__ = ["GreedyHypothesis", "char_error_rate", "ctc_greedy", "ctc_greedy_packed", "edit_distance", "word_error_rate"]
