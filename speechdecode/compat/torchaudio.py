"""torchaudio's ``ctc_decoder`` on :class:`speechdecode.decoding.CtcPrefixBeamSearch`.

Replace ``from torchaudio.models.decoder import ctc_decoder`` with
``from speechdecode.compat.torchaudio import ctc_decoder``; the files and calls stay:

    >>> decoder = ctc_decoder(lexicon="lexicon.txt", tokens="tokens.txt", lm="lm.arpa")  # doctest: +SKIP
    >>> hypotheses = decoder(emissions, lengths)  # emissions [B, T, V], lengths [B]  # doctest: +SKIP
    >>> best = hypotheses[0][0]  # CTCHypothesis(tokens, words, score, timesteps)  # doctest: +SKIP

Files as torchaudio reads them: ``tokens`` one token per line (tokens on one line share its index;
the first names it) or a list; ``lexicon`` lines ``word t1 t2 ... |`` (several lines per word,
the trailing silence token optional); ``lm`` a path of any file :mod:`speechdecode.lm` loads (ARPA,
plain or gzip, or a KenLM binary) or an :class:`~speechdecode.lm.NgramModel`. The options map onto
the search as flashlight's decoder (behind torchaudio) uses them: ``lm_weight`` multiplies the LM's log10
probability (so ``alpha = lm_weight / ln 10``), ``word_score`` is ``beta``, ``unk_score`` is
``unk_score_offset`` (``-inf``: lexicon words only), ``sil_score`` is added per silence token,
``log_add=False`` merges alignments by max (``viterbi``), ``beam_size_token`` is ``token_topk``
(None: every token), a lexicon's partial words are scored by LM look-ahead (flashlight smears its
trie by max) and equal LM futures are recombined. Output as torchaudio's: ``tokens`` with the
silence token at both ends and ``timesteps`` counted from 1 (flashlight pads the frame path with
silence), each token's first frame in the hypothesis's best alignment (a CTC Viterbi alignment of
its tokens), ``words`` the lexicon's (``unk_word`` for a spelling outside it). A last word without
a silence token after it is still a word (flashlight's lexicon decoder ends on a word boundary).

Online decoding (``decode_begin``, ``decode_step``, ``decode_end``, ``get_final_hypothesis``)
equals decoding the same frames at once.

What differs: without a lexicon, the search still finds words (spelled between silence tokens)
and scores them with the word LM (flashlight's lexicon-free decoder treats the LM as a token LM);
``lm_dict`` is read only to check it is a word list (the LM file carries its own vocabulary); a
custom ``CTCDecoderLM`` is not supported. Emissions may be any float dtype, strided, numpy or torch.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch

from speechdecode import _backend
from speechdecode._io import open_text
from speechdecode.decoding.ctc_prefix_beam_search import CtcPrefixBeamSearch
from speechdecode.decoding.text import lexicon_entries, load_lm, token_pieces
from speechdecode.errors import InputFileError, InvalidArgumentError

__all__ = ["CTCDecoder", "CTCHypothesis", "ctc_decoder"]


class CTCHypothesis(NamedTuple):
    """One hypothesis, as torchaudio's: token ids (``LongTensor``), words, score, timesteps (``IntTensor``)."""

    tokens: torch.LongTensor
    words: list[str]
    score: float
    timesteps: torch.IntTensor


def _read_tokens(tokens) -> tuple[list[str], dict[str, int]]:
    """The token table: entries by index, and every spelling (aliases on one line) -> index."""
    if isinstance(tokens, (str, os.PathLike)):
        entries, index = [], {}
        with open_text(tokens) as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields:
                    continue
                for field in fields:
                    if field in index:
                        raise InputFileError(tokens, number, f"token {field!r} repeats line {index[field][1]}")
                    index[field] = (len(entries), number)
                entries.append(fields[0])
        if not entries:
            raise InputFileError(tokens, None, "no tokens")
        return entries, {k: v for k, (v, _) in index.items()}
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens) or not tokens:
        raise InvalidArgumentError("tokens", "a tokens file or a non-empty list of str", repr(tokens)[:80])
    return list(tokens), {t: i for i, t in reversed(list(enumerate(tokens)))}


def _read_lexicon(path) -> tuple[dict[str, list[tuple[str, ...]]], dict]:
    """``word -> spellings`` (repeats dropped) and ``(word, spelling) -> line``."""
    words: dict[str, list[tuple[str, ...]]] = {}
    lines: dict = {}
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise InputFileError(path, number, f"word {fields[0]!r} has no spelling")
            spelling = tuple(fields[1:])
            if (fields[0], spelling) not in lines:
                lines[fields[0], spelling] = number
                words.setdefault(fields[0], []).append(spelling)
    return words, lines


class CTCDecoder:
    """torchaudio's ``CTCDecoder`` (build it with :func:`ctc_decoder`): called on emissions
    ``[B, T, V]`` and lengths ``[B]``, it returns per utterance a list of :class:`CTCHypothesis`."""

    def __init__(self, search: CtcPrefixBeamSearch, entries: list[str], words: set[str] | None, unk_word: str):
        self.search = search
        self.tokens = entries
        self._words = words
        self._unk_word = unk_word
        self._sil = search.tokens.index(search.word_boundary) if search.word_boundary is not None else None
        self._stream = None  # online decoding: decode_begin() .. get_final_hypothesis()
        self._final = None  # its n-best list once decode_end() finished the stream
        self._frames: list[np.ndarray] = []

    def decode_begin(self) -> None:
        """Start online decoding (then :meth:`decode_step` per chunk, :meth:`decode_end`,
        :meth:`get_final_hypothesis`); the result equals decoding all the chunks' frames at once."""
        self._stream = self.search.stream()
        self._frames = []
        self._final = None

    def decode_step(self, emissions) -> None:
        """Consume one chunk of emissions [T, V]."""
        if self._stream is None:
            raise InvalidArgumentError("decode_step", "a call after decode_begin()", "no decode_begin()")
        x = torch.as_tensor(emissions).detach().to("cpu", torch.float32).numpy()
        self._stream.accept(x)
        self._frames.append(x)

    def decode_end(self) -> None:
        """End online decoding (the hypotheses stay readable)."""
        if self._stream is not None and self._final is None:
            self._final = self._stream.finish()

    def get_final_hypothesis(self) -> list[CTCHypothesis]:
        """The n-best hypotheses of the frames given to :meth:`decode_step` since :meth:`decode_begin`."""
        if self._stream is None:
            raise InvalidArgumentError("get_final_hypothesis", "a call after decode_begin()", "no decode_begin()")
        frames = np.concatenate(self._frames) if self._frames else np.zeros((0, len(self.tokens)), np.float32)
        # before decode_end() the stream goes on: its n-best so far is offline decoding of its frames
        final = self._final if self._final is not None else self.search(frames[None])[0]
        return [self._hypothesis(h, frames) for h in final]

    def idxs_to_tokens(self, idxs) -> list[str]:
        """The token symbols of ids."""
        return [self.tokens[int(i)] for i in idxs]

    def __call__(self, emissions, lengths=None) -> list[list[CTCHypothesis]]:
        results = self.search(emissions, lengths)
        x = torch.as_tensor(emissions).detach().to("cpu", torch.float32).numpy()
        total = [x.shape[1]] * len(results) if lengths is None else [int(n) for n in lengths]
        return [[self._hypothesis(h, x[b, : total[b]]) for h in hyps] for b, hyps in enumerate(results)]

    def _hypothesis(self, h, x) -> CTCHypothesis:
        if _backend.HAS_NATIVE:
            path = _backend.native().ctc_best_path(np.ascontiguousarray(x), list(h.tokens), self.search.blank)
        else:
            path = best_path(x, h.tokens, self.search.blank)
        # flashlight's frame path is padded with silence at both ends; torchaudio merges repeats
        # and drops blanks, and a token's timestep is its first frame in the padded path.
        if self._sil is not None:
            path = [self._sil, *path, self._sil]
        else:
            path = [self.search.blank, *path, self.search.blank]
        tokens, steps = [], []
        for i, t in enumerate(path):
            if t != self.search.blank and (i == 0 or t != path[i - 1]):
                tokens.append(t)
                steps.append(i)
        words = list(h.words)
        if self._words is not None:
            words = [w if w in self._words else self._unk_word for w in words]
        return CTCHypothesis(
            torch.tensor(tokens, dtype=torch.long), words, float(h.score), torch.tensor(steps, dtype=torch.int32)
        )


def best_path(x, tokens, blank: int) -> list[int]:
    """The most likely frame path (token per frame) of x [T, V] log-probs that collapses to tokens
    (CTC Viterbi forced alignment, sums in float64; of equal predecessors the state itself, then the
    one before, then two before; ends in the last token or the blank after it, the token on ties).
    The plain-numpy reference of the native ``ctc_best_path``."""
    x = np.asarray(x, dtype=np.float64)
    frames = len(x)
    states = [blank]
    for t in tokens:
        states += [t, blank]
    states = np.array(states)
    n = len(states)
    if frames == 0:
        return []
    score = np.full(n, -np.inf)
    score[0] = x[0, states[0]]
    if n > 1:
        score[1] = x[0, states[1]]
    # a state is reached from itself, the one before, or (a token unlike the one two back) two back
    skip = np.zeros(n, bool)
    skip[2:] = (states[2:] != blank) & (states[2:] != states[:-2])
    back = np.zeros((frames, n), np.int8)
    for f in range(1, frames):
        stay, one, two = score, np.r_[-np.inf, score[:-1]], np.r_[-np.inf, -np.inf, score[:-2]][:n]
        two = np.where(skip, two, -np.inf)
        choice = np.argmax(np.stack([stay, one, two]), axis=0)
        back[f] = choice
        score = np.choose(choice, [stay, one, two]) + x[f, states]
    end = n - 1 if n == 1 or score[n - 1] >= score[n - 2] else n - 2
    path = []
    for f in range(frames - 1, -1, -1):
        path.append(int(states[end]))
        end -= int(back[f, end])
    return path[::-1]


def ctc_decoder(
    lexicon: str | os.PathLike | None,
    tokens,
    lm=None,
    lm_dict: str | None = None,
    nbest: int = 1,
    beam_size: int = 50,
    beam_size_token: int | None = None,
    beam_threshold: float = 50,
    lm_weight: float = 2,
    word_score: float = 0,
    unk_score: float = float("-inf"),
    sil_score: float = 0,
    log_add: bool = False,
    blank_token: str = "-",
    sil_token: str = "|",
    unk_word: str = "<unk>",
) -> CTCDecoder:
    """A :class:`CTCDecoder` with torchaudio's arguments (see the module docstring).

    Raises:
        InputFileError: a tokens or lexicon file line that cannot be used (a lexicon word spelled
            with unknown tokens: the word and its line).
        InvalidArgumentError: ``blank_token`` or ``sil_token`` not a token, a lexicon the LM shares
            no word with, an option out of range, a custom LM object.
    """
    entries, index = _read_tokens(tokens)
    for name, token in (("blank_token", blank_token), ("sil_token", sil_token)):
        if token not in index:
            raise InvalidArgumentError(name, f"one of the tokens {entries[:8]}", repr(token))
    if lm_dict is not None:
        if not isinstance(lm_dict, (str, os.PathLike)):
            raise InvalidArgumentError("lm_dict", "None or a file of words", type(lm_dict).__name__)
        with open_text(lm_dict) as handle:
            handle.read()
    blank = index[blank_token]
    mapping, words = None, None
    if lexicon is not None:
        raw, lines = _read_lexicon(lexicon)

        def named(spelling):  # each token by its first name (a line of the tokens file may hold aliases)
            return tuple(entries[index[t]] if t in index else t for t in spelling)

        mapping = {w: [named(s) for s in spellings] for w, spellings in raw.items()}
        named_lines = {(w, named(s)): n for (w, s), n in lines.items()}
        pieces = token_pieces(entries, blank, sil_token)
        lexicon_entries(mapping, entries, pieces, os.fspath(lexicon), named_lines)  # errors name file:line
        words = set(mapping)
    if log_add not in (True, False):
        raise InvalidArgumentError("log_add", "a bool", repr(log_add))
    search = CtcPrefixBeamSearch(
        entries,
        blank=blank,
        word_boundary=sil_token,
        lm=load_lm(lm),
        alpha=float(lm_weight) / math.log(10.0),
        beta=word_score,
        beam=beam_size,
        token_topk=len(entries) if beam_size_token is None else beam_size_token,
        beam_threshold=beam_threshold,
        token_min_logp=-math.inf,
        hotwords=[([index[sil_token]], float(sil_score))] if sil_score else (),
        nbest=nbest,
        unk_score_offset=unk_score,
        viterbi=not log_add,
        lexicon=mapping,
    )
    return CTCDecoder(search, entries, words, unk_word)
