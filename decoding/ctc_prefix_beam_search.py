"""CTC prefix beam search with word-level n-gram LM fusion and hotwords (:class:`CtcPrefixBeamSearch`).

The search is defined by the plain-Python reference, :mod:`speechdecode.kernels.ctc_prefix_beam.reference`
(its module docstring states every rule); the native backend (C++, csrc/decoding/
ctc_prefix_beam_search.h) gives the same n-best lists, decoding the utterances of a batch on all
cores without holding the GIL.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from speechdecode import _args, _backend, _tensors
from speechdecode._deprecation import renamed
from speechdecode.decoding.hypothesis import Hypothesis
from speechdecode.decoding.protocol import OneUtterance
from speechdecode.decoding.text import (
    blank_id,
    boundary_of,
    check_lexicon_lm,
    check_lm_words,
    lexicon_entries,
    load_lm,
    token_pieces,
)
from speechdecode.errors import InvalidArgumentError, TensorError
from speechdecode.kernels import ctc_prefix_beam as kernel

__all__ = ["CtcPrefixBeamSearch", "CtcPrefixBeamSearchStream"]

MAX_BEAM = 1 << 16  # prefixes per frame; flashlight's recipes go to 1,500, pyctcdecode's default is 100


class CtcPrefixBeamSearch:
    r"""CTC prefix beam search over log-probabilities, with an optional n-gram LM and hotwords.

    Args:
        tokens: the acoustic model's output symbols, by id (V of them).
        blank: the blank token's id, or its symbol (``""`` for pyctcdecode-style labels).
        word_boundary: the word-boundary marker: a token of its own (``"|"``, wav2vec2 style, or
            ``" "``, pyctcdecode style) or the prefix of word-initial pieces (``"▁"``, sentencepiece
            style); a token starting with it starts a word. ``None``: every token is a word.
            ``"auto"`` (the default): ``"|"`` if it is a token, else ``" "`` if it is one, else
            ``"▁"`` if a token starts with it, else None. A marker that no token starts with is
            an error.
        lm: a :class:`speechdecode.lm.NgramModel`, or the path of an LM file, scoring completed
            words (unknown words are ``<unk>``), or None. Its words are checked against the
            tokens: none of them spelled by the tokens' characters (e.g. upper-case tokens, a
            lower-case LM) is an error; fewer than half of them, a warning.
        alpha: LM weight: each word adds ``alpha * ln(10) * log10 p(word | context)``.
        beta: word insertion bonus, added per word (with an LM only).
        beam: prefixes kept per frame (default 32; at most ``MAX_BEAM`` = 65,536).
        token_topk: non-blank tokens extended per frame (the most likely ones).
        beam_threshold: prefixes scoring more than this below the best are dropped.
        token_min_logp: tokens with a smaller log-probability in a frame are not extended (but
            see ``extend_best_token``).
        hotwords: ``(phrase, weight)`` pairs; a phrase is a string (spelled with the tokens,
            longest token first, words joined by the boundary) or a sequence of token ids or
            symbols; each matched token earns ``weight``, given back if the match is abandoned.
        nbest: hypotheses returned per utterance (at most ``beam``), with distinct texts: of
            prefixes spelling the same words (``"a|"`` and ``"a"``), the best one.
        num_threads: threads decoding the utterances of a batch (default: all cores).
        partial_word_lm: score unfinished words by LM look-ahead: ``alpha * ln(10)`` times the
            largest unigram log10 probability of the LM words they begin (as a lexicon decoder's
            smeared trie), or ``unk_score_offset`` when they begin none. On by default, as
            pyctcdecode scores partial words: without it the search favours never finishing a word.
        unk_score_offset: natural-log penalty of a completed word outside the LM vocabulary
            (and, with ``partial_word_lm``, of an unfinished one); ``-inf`` allows LM words only
            (a lexicon-constrained search, and a faster one for V <= 64).
        blank_skip_threshold: frames whose blank log-probability exceeds this are not searched:
            such a frame acts as a blank frame of probability 1 (every prefix keeps its score,
            all of it now ending in blank, so a token repeated across the frame is two tokens).
            None: every frame is searched. Speeds up peaky (mostly blank) posteriors.
        viterbi: merge a prefix's alignments by max (its score is its best alignment, as a
            Viterbi lexicon decoder scores) instead of by log-sum-exp.
        recombine: with an LM, keep only the best of a frame's prefixes whose futures are equal
            (same LM state, same unfinished word, or none of the LM's words begins either, same
            last token and hotword state), as a lexicon decoder merges equal states: the beam
            holds more distinct hypotheses. No effect without an LM. On by default.
        lexicon: the words the search spells, each with one or more spellings in tokens: a
            lexicon file (``word t1 t2 ...`` lines; a trailing boundary token such as torchaudio's
            ``|`` is dropped) or a mapping ``word -> spellings``. Words are then completed by
            spelling (phone lexicons work), a spelling shared by several words completes as the
            one the LM scores best, lexicon words outside the LM score as its ``<unk>``, and
            spellings outside the lexicon as ``<unk>`` plus ``unk_score_offset`` (``-inf``: none).
            Without an LM, each word still earns ``beta``. None: words are spelled by characters.
        extend_best_token: extend a frame's most likely label (if it is not the blank) even below
            ``token_min_logp``, as pyctcdecode does.
        score_boundary: the LM starts from ``<s>`` and scores ``</s>`` at the end (pyctcdecode's
            ``lm_score_boundary``); False: from the null context, no ``</s>``.
        backend: "native" (C++), "reference" (Python) or "triton" (the batched GPU search of
            :mod:`speechdecode.kernels.ctc_prefix_beam.triton`: no LM, lexicon, hotwords, blank
            skip, viterbi or extend_best_token; CPU tensors only under ``TRITON_INTERPRET=1``); default:
            ``SPEECHDECODE_BACKEND``, else Triton for CUDA inputs of a search it implements and
            native (on a CPU copy) for everything else.

    Calling the object on ``(log_probs, lengths)`` decodes a batch: log_probs ``[B, T, V]``
    float32, float16 or bfloat16 (upcast), numpy or torch (CUDA tensors are copied to the CPU),
    any strides; lengths ``[B]`` integers (None: all T). Returns one n-best list of
    :class:`~speechdecode.decoding.Hypothesis` per utterance, best first; an empty utterance gives
    one empty hypothesis. A token's frame is the first frame at which the prefix ending with it
    survived pruning (with a tight ``beam_threshold``, where its peak begins). :meth:`stream`
    decodes one utterance chunk by chunk.

    Raises:
        InvalidArgumentError: an option out of range, a token containing the boundary marker
            after its start, a hotword that the tokens cannot spell or with unknown token ids.
        TensorError: log_probs not 3-D or not floating point, V != len(tokens), lengths outside
            [0, T], NaN or +inf scores (naming ``[utterance, frame, token]``).

    Example:
        >>> import numpy as np
        >>> tokens = ["-", "|", "a", "b"]
        >>> frames = [2, 0, 3, 3, 0, 1, 3]  # a - b b - | b
        >>> x = np.log(np.full((1, 7, 4), 0.02, np.float32) + 0.92 * np.eye(4, dtype=np.float32)[frames])
        >>> best = CtcPrefixBeamSearch(tokens, blank=0, beam=4)(x)[0][0]
        >>> best.words, best.tokens, best.word_frames
        (('ab', 'b'), (2, 3, 1, 3), ((0, 2), (6, 6)))
    """

    def __init__(
        self,
        tokens: Sequence[str],
        blank: int | str = 0,
        word_boundary: str | None = "auto",
        lm=None,
        alpha: float = 0.5,
        beta: float = 1.0,
        beam: int = 32,
        token_topk: int = 16,
        beam_threshold: float = 20.0,
        token_min_logp: float = -10.0,
        hotwords: Sequence[tuple[str | Sequence[int | str], float]] = (),
        nbest: int = 1,
        num_threads: int | None = None,
        partial_word_lm: bool = True,
        unk_score_offset: float = -10.0,
        blank_skip_threshold: float | None = None,
        viterbi: bool = False,
        recombine: bool = True,
        lexicon=None,
        score_boundary: bool = True,
        extend_best_token: bool = False,
        backend: str | None = None,
    ):
        self._arguments = {name: value for name, value in locals().items() if name not in ("self", "lm")}
        if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens) or len(tokens) == 0:
            raise InvalidArgumentError("tokens", "a non-empty sequence of str", repr(tokens)[:80])
        self.tokens = tuple(tokens)
        self.blank = blank_id(self.tokens, blank)
        self.word_boundary = boundary_of(self.tokens, self.blank, word_boundary)
        if self.word_boundary is not None:
            for i, symbol in enumerate(self.tokens):
                if i != self.blank and self.word_boundary in symbol.lstrip(self.word_boundary):
                    expected = f"symbols with the word boundary {self.word_boundary!r} only at their start"
                    raise InvalidArgumentError("tokens", expected, f"{symbol!r} at [{i}]")
        self.lm = load_lm(lm)
        self._pieces = token_pieces(self.tokens, self.blank, self.word_boundary)
        self.lexicon = None if lexicon is None else tuple(lexicon_entries(lexicon, self.tokens, self._pieces))
        if self.lm is not None and self.lexicon is not None:
            check_lexicon_lm(self.lexicon, self.lm.vocab)
        elif self.lm is not None:
            check_lm_words(self.tokens, self.blank, self.word_boundary, self.lm.vocab)
        # The options cross every layer as one object: the C++ struct, checked by its validate().
        self.options = kernel.options(
            blank=self.blank, alpha=alpha, beta=beta, beam=beam, token_topk=token_topk,
            beam_threshold=beam_threshold, token_min_logp=token_min_logp,
            extend_best_token=bool(extend_best_token), partial_word_lm=bool(partial_word_lm),
            unk_score_offset=unk_score_offset,
            blank_skip_threshold=math.inf if blank_skip_threshold is None else blank_skip_threshold,
            viterbi=bool(viterbi), recombine=bool(recombine), score_boundary=bool(score_boundary),
        )  # fmt: skip
        self.blank_skip_threshold = None if blank_skip_threshold is None else self.options.blank_skip_threshold
        self.nbest = _args.integer(nbest, "nbest", 1, MAX_BEAM)
        self.num_threads = None if num_threads is None else _args.integer(num_threads, "num_threads", 1)
        self.hotwords = tuple(self._hotword(i, h) for i, h in enumerate(hotwords))
        self.backend = _backend.select("cpu", backend)
        self._requested = backend
        # What the Triton search (kernels/ctc_prefix_beam/triton.py) implements: no LM, lexicon or
        # hotwords, no blank skip, log-sum-exp merges, token_min_logp alone.
        self._triton_ok = (
            self.lm is None
            and self.lexicon is None
            and not self.hotwords
            and self.blank_skip_threshold is None
            and not self.viterbi
            and not self.extend_best_token
        )
        if self.backend == "triton" and not self._triton_ok:
            raise InvalidArgumentError(
                "backend",
                "native or reference for a search with an LM, a lexicon, hotwords, blank_skip_threshold, viterbi "
                "or extend_best_token",
                "'triton' (the Triton search has none of them)",
            )
        self._native = None
        if self.backend == "native":
            self._native = kernel.native_search(self._pieces, self.options, self.lm, self.hotwords, self.lexicon)

    def __getattr__(self, name: str):
        # The options (alpha, beam, viterbi, ...) read through from the one options object.
        options = self.__dict__.get("options")
        if options is not None and not name.startswith("_") and hasattr(options, name):
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __reduce__(self):
        # By content; the LM pickles as its file's path and identity (NgramModel.__reduce__: loaded
        # again, refused if the file changed), a lexicon as its words' spellings.
        arguments = dict(self._arguments)
        if self.lexicon is not None:
            arguments["lexicon"] = {}
            for spelling, word in self.lexicon:
                arguments["lexicon"].setdefault(word, []).append([self.tokens[i] for i in spelling])
        return _rebuild, (arguments, self.lm)

    def _hotword(self, index: int, item) -> tuple[tuple[int, ...], float]:
        """One ``(phrase, weight)`` pair as (token ids, weight)."""
        name = f"hotwords[{index}]"
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidArgumentError(name, "a (phrase, weight) pair", repr(item))
        phrase, weight = item
        weight = _args.real(weight, name + " weight")
        ids = self._spell(phrase, name) if isinstance(phrase, str) else self._token_ids(phrase, name)
        if not ids:
            raise InvalidArgumentError(name, "a phrase of one or more tokens", repr(phrase))
        return tuple(ids), weight

    def _token_ids(self, phrase, name: str) -> list[int]:
        symbol_ids = {s: i for i, s in reversed(list(enumerate(self.tokens)))}
        ids = []
        for token in phrase:
            if isinstance(token, str):
                if token not in symbol_ids:
                    raise InvalidArgumentError(name, "token symbols of the vocabulary", repr(token))
                token = symbol_ids[token]
            if isinstance(token, bool) or not isinstance(token, numbers.Integral):
                raise InvalidArgumentError(name, "token ids (int) or symbols (str)", repr(token))
            if not 0 <= token < len(self.tokens) or token == self.blank:
                raise InvalidArgumentError(name, f"token ids in [0, {len(self.tokens)}) other than blank", int(token))
            ids.append(int(token))
        return ids

    def _spell(self, phrase: str, name: str) -> list[int]:
        """Greedy longest-match spelling of the phrase's words with the (non-blank) token symbols."""
        words = phrase.split()
        symbol_ids = {s: i for i, s in reversed(list(enumerate(self.tokens))) if i != self.blank and s}
        if self.word_boundary is None:
            pieces = words
        elif self.word_boundary in symbol_ids:
            pieces = [self.word_boundary.join(words)]
        else:
            pieces = ["".join(self.word_boundary + w for w in words)]
        longest = max(map(len, symbol_ids), default=0)
        ids = []
        for text in pieces:
            at = 0
            while at < len(text):
                n = next((n for n in range(min(longest, len(text) - at), 0, -1) if text[at : at + n] in symbol_ids), 0)
                if n == 0:
                    actual = f"{phrase!r}: no token for {text[at:]!r}"
                    raise InvalidArgumentError(name, "a phrase the tokens can spell", actual)
                ids.append(symbol_ids[text[at : at + n]])
                at += n
        return ids

    def _reference_search(self) -> tuple:
        """What the reference search takes besides the frames (kernels/ctc_prefix_beam/api.py)."""
        return self._pieces, self.options, self.lm, self.hotwords, self.lexicon

    def __call__(self, log_probs, lengths=None) -> list[list[Hypothesis]]:
        """Decode a batch: see the class docstring."""
        x = _tensors.scores(log_probs, "log_probs", 3)
        batch, frames, vocab = x.shape
        if vocab != len(self.tokens):
            raise TensorError("log_probs", f"shape [B, T, {len(self.tokens)}] (V = len(tokens))", f"{list(x.shape)}")
        if self._triton_ok and self._device_backend(x) == "triton":
            return self._decode_triton(x, lengths)
        lens = _tensors.lengths(lengths, "lengths", batch, frames, torch.device("cpu"))
        x = _tensors.cpu_float32(x)
        wanted = self.nbest if self.nbest == 1 else self.beam
        results = kernel.decode(
            self._native, x.numpy(), lens.numpy(), wanted, self.num_threads, self._reference_search()
        )
        return [distinct(ranked, self.nbest) for ranked in results]

    def _device_backend(self, x: torch.Tensor) -> str:
        """The backend for inputs on x's device: the constructor's choice on the CPU; on CUDA,
        Triton by default (or as forced), else the CPU search on a copy."""
        return self.backend if x.device.type == "cpu" else _backend.select("cuda", self._requested)

    def _decode_triton(self, x: torch.Tensor, lengths) -> list[list[Hypothesis]]:
        wanted = self.nbest if self.nbest == 1 else self.beam
        results = kernel.decode_triton(x, lengths, self._pieces, self.options, wanted)
        return [distinct(ranked, self.nbest) for ranked in results]

    def stream(self) -> CtcPrefixBeamSearchStream:
        """A new stream: one utterance fed chunk by chunk (see :class:`CtcPrefixBeamSearchStream`)."""
        return CtcPrefixBeamSearchStream(self)

    def __repr__(self) -> str:
        return (
            f"CtcPrefixBeamSearch(V={len(self.tokens)}, blank={self.blank}, word_boundary={self.word_boundary!r}, "
            f"lm={self.lm!r}, alpha={self.alpha}, beta={self.beta}, beam={self.beam}, token_topk={self.token_topk}, "
            f"beam_threshold={self.beam_threshold}, hotwords={len(self.hotwords)}, backend={self.backend!r})"
        )


def _rebuild(options: dict, lm) -> CtcPrefixBeamSearch:
    """Unpickles a :class:`CtcPrefixBeamSearch`."""
    return CtcPrefixBeamSearch(**options, lm=lm)


def distinct(ranked: list[Hypothesis], n: int) -> list[Hypothesis]:
    """The first n hypotheses of a ranked list with distinct words (the best of each text)."""
    seen, out = set(), []
    for h in ranked:
        if h.words not in seen and len(out) < n:
            seen.add(h.words)
            out.append(h)
    return out


class CtcPrefixBeamSearchStream(OneUtterance):
    """One utterance decoded as its frames arrive; :meth:`finish` equals offline decoding.

    Example:
        >>> import numpy as np
        >>> x = np.log(np.full((6, 3), 0.05, np.float32) + 0.85 * np.eye(3, dtype=np.float32)[[1, 0, 2, 2, 0, 1]])
        >>> stream = CtcPrefixBeamSearch(["-", "a", "b"], word_boundary=None).stream()
        >>> stream.accept(x[:4])
        >>> stream.partial().tokens
        (1, 2)
        >>> stream.accept(x[4:])
        >>> stream.finish()[0].tokens
        (1, 2, 1)
    """

    def __init__(self, search: CtcPrefixBeamSearch):
        self._search = search
        self._state = kernel.open_stream(search._native, search._reference_search())

    @property
    def frames(self) -> int:
        """Frames accepted so far."""
        return self._state.frames

    @property
    def searched_frames(self) -> int:
        """Frames searched so far: :attr:`frames` less those skipped by ``blank_skip_threshold``."""
        return self._state.searched_frames

    def accept(self, chunk) -> None:
        """Consume frames: chunk ``[T_chunk, V]`` (dtypes and frameworks as the batch call).

        Raises:
            TensorError: wrong shape or dtype, NaN or +inf scores (named ``[0, frame, token]``,
                frames counted from the stream's start).
            InvalidArgumentError: the stream was finished.
        """
        self._check_open()
        x = _tensors.scores(chunk, "chunk", 2)
        if x.shape[1] != len(self._search.tokens):
            raise TensorError("chunk", f"shape [T, {len(self._search.tokens)}] (V = len(tokens))", f"{list(x.shape)}")
        self._state.accept(_tensors.cpu_float32(x).numpy())

    def _best(self, nbest: int | None) -> list[Hypothesis]:
        n = self._search.nbest if nbest is None else _args.integer(nbest, "nbest", 1)
        wanted = n if n == 1 else max(n, self._search.beam)
        return distinct(self._state.best(wanted), n)

    def partial(self) -> Hypothesis:
        """The current best hypothesis, as if the utterance ended here."""
        self._check_open()
        return self._best(1)[0]

    def finish(self, nbest: int | None = None) -> list[Hypothesis]:
        """The n-best list (default: the search's ``nbest``) of the utterance; ends the stream."""
        self._check_open()
        result = self._best(nbest)
        self._end()
        return result

    def finalize(self, nbest: int | None = None) -> list[Hypothesis]:
        """Deprecated: the n-best list of the frames so far, after which the stream went on
        (:meth:`partial` for the best so far, :meth:`finish` at the end)."""
        renamed("CtcPrefixBeamSearchStream.finalize()", "partial() or finish()")
        self._check_open()
        return self._best(nbest)
