"""Querying back-off n-gram language models: :class:`NgramModel`, KenLM's scores from an ARPA file
or a KenLM binary.

The model is the native ``speechdecode._native.NgramModel`` (csrc/lm/ngram_model.h): KenLM's
probing data structure and its query algorithm, so that every score equals what the ``kenlm``
Python module returns for the same file, bit for bit (float32 probabilities, float32 sums). A
KenLM binary file (probing or trie, quantized or not; csrc/lm/kenlm_binary.h) is memory-mapped
and queried in place with KenLM's algorithm on KenLM's own tables.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from speechdecode import _backend
from speechdecode.errors import InputFileError, InvalidArgumentError, TensorError
from speechdecode.lm.vocab import BOS_ID

__all__ = ["NgramModel", "WordScore"]

KENLM_TYPES = ("probing", "rest_probing", "trie", "quant_trie", "array_trie", "quant_array_trie")

# Content digests this process has checked, by (path, size, mtime_ns, inode, ctime_ns): a model
# unpickled many times (a process pool's tasks) hashes its file once. Any write to the file
# changes its ctime, which no one can set back, so a rewrite is never served from this cache.
_verified: dict[tuple, str] = {}
_verified_lock = threading.Lock()


def _stat_key(path: str) -> tuple:
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()


class WordScore(NamedTuple):
    """The score of one word, as ``kenlm.Model.full_scores`` yields it.

    log10_prob: log10 p(word | context), float32 precision.
    ngram_length: length of the longest n-gram of the model that matched (1 = unigram).
    oov: the word is not in the vocabulary (it was scored as ``<unk>``).
    """

    log10_prob: float
    ngram_length: int
    oov: bool


def _int32_array(values, name: str, ndim: int) -> np.ndarray:
    """``values`` as a C-contiguous int32 array with ``ndim`` dimensions, without wrapping values."""
    array = np.asarray(values)
    if array.size == 0 and array.dtype.kind not in "iu":
        array = array.astype(np.int32)
    if array.dtype.kind not in "iu":
        raise TensorError(name, "an integer array", f"dtype {array.dtype}")
    if array.ndim != ndim:
        raise TensorError(name, f"a {ndim}-D array", f"{array.ndim}-D array of shape {list(array.shape)}")
    if array.size and array.dtype.itemsize >= 4 and array.dtype != np.int32:
        low, high = int(array.min()), int(array.max())
        if low < -(2**31) or high >= 2**31:
            bad = low if low < -(2**31) else high
            position = [int(i) for i in np.argwhere(array == bad)[0]]
            raise TensorError(name, "values that fit in int32", f"{bad} at {position}")
    return np.ascontiguousarray(array, dtype=np.int32)


class NgramModel:
    r"""A back-off n-gram language model from an ARPA file or a KenLM binary, queried as KenLM queries it.

    Scores are log10 probabilities. Sentences are split on ASCII whitespace and words not in the
    vocabulary are scored as ``<unk>``; ``bos`` starts from the context ``<s>``, ``eos`` adds
    ``</s>``. Word ids: ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, then the other unigrams in file
    order. The model is read-only: share one between threads, score from many at once.

    Two ways to score word by word, for decoders:

    * :meth:`score_word` with states as tuples of word ids, most recent first (at most
      ``order - 1``), e.g. ``(1,)`` after ``<s>``. Tuples hash and compare, so hypotheses with
      equal states can be merged. States are minimised as KenLM's: they keep only the words a
      later n-gram can still use, so equal states predict every next word alike.
    * :meth:`score_words` over arrays: states are int32 ``[n, order - 1]``, each row a state's
      word ids, most recent first, padded with -1 (row ``[1, -1, -1]`` is ``(1,)`` of a 4-gram
      model). Rows of equal states are equal rows (``np.unique(states, axis=0)`` merges them).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny.arpa")
        >>> with open(path, "w") as f:
        ...     _ = f.write('''\\data\\
        ... ngram 1=4
        ... ngram 2=2
        ...
        ... \\1-grams:
        ... -1    <unk>
        ... 0     <s>   -0.5
        ... -0.5  </s>
        ... -0.3  hi    -0.2
        ...
        ... \\2-grams:
        ... -0.1  <s> hi
        ... -0.2  hi </s>
        ...
        ... \\end\\
        ... ''')
        >>> lm = NgramModel.from_arpa(path)
        >>> lm.order, lm.vocab
        (2, ['<unk>', '<s>', '</s>', 'hi'])
        >>> round(lm.score("hi"), 4)  # log10 p(hi | <s>) + log10 p(</s> | hi) = -0.1 - 0.2
        -0.3
        >>> [round(s.log10_prob, 4) for s in lm.full_scores("hi hi", eos=False)]  # 2nd: p(hi) + bo(hi)
        [-0.1, -0.5]
        >>> p, state = lm.score_word(lm.begin_state(), "hi")
        >>> round(p, 4), state
        (-0.1, (3,))
    """

    def __init__(self, native, path: str, stat_key: tuple | None = None):
        """Use :meth:`load`."""
        self._native = native
        self._path = path
        self._words: tuple[str, ...] | None = None
        self._stat_key = stat_key
        self._digest: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> NgramModel:
        """Load a model file, its kind told by content, not name: ARPA text, gzip-compressed ARPA,
        or a KenLM binary (any type ``build_binary`` writes: probing, trie, trie with ``-q``/``-b``
        quantization and/or ``-a`` pointer compression).

        A KenLM binary is memory-mapped, not read: loading takes the same time for any size and
        queries read the file in place, with KenLM's algorithm, so scores equal the ``kenlm``
        module's on the same file. ARPA files follow :meth:`from_arpa`'s rules.

        Raises:
            InputFileError: a KenLM binary that is incomplete (its build failed), truncated,
                from another byte order or format version, of an order above 10, or damaged;
                the message names the file and the reason.
            ArpaFormatError: a malformed ARPA file (``path:line: what is wrong``).
            OSError: the file cannot be read.
        """
        path = os.path.abspath(os.fsdecode(path))
        key = _stat_key(path) if os.path.isfile(path) else None
        native = _backend.native().NgramModel.load(os.fsencode(path))
        return cls(native, path, key)

    @classmethod
    def from_arpa(cls, path: str | os.PathLike) -> NgramModel:
        """Load an ARPA file, plain or gzip-compressed (told apart by content, not name).

        Kept from before :meth:`load`, which it now is: a KenLM binary given here loads too.

        The loader follows KenLM's rules (see csrc/lm/arpa_reader.h for the full list): a
        missing ``<unk>`` is added with log10 probability -100; ``<s>`` and ``</s>`` are required;
        ``-inf`` probabilities are allowed; an n-gram whose context (first n-1 words) is missing is
        an error, one whose suffix (last n-1 words) is missing gets it filled in with its
        backed-off probability, as KenLM does. Duplicate n-grams are an error (KenLM is silent).
        Parsing and building the tables run on all cores, without holding the GIL.

        Raises:
            ArpaFormatError: a malformed file; the message reads ``path:line: what is wrong``.
            OSError: the file cannot be read (FileNotFoundError, IsADirectoryError, ...).
            BackendUnavailableError: the native extension was not built.
        """
        return cls.load(path)

    # ------------------------------------------------------------------------------------------
    # The model

    @property
    def order(self) -> int:
        """The highest n-gram order."""
        return self._native.order

    @property
    def vocab_size(self) -> int:
        """Number of words, ``<unk>``, ``<s>`` and ``</s>`` included."""
        return self._native.vocab_size

    @property
    def vocab(self) -> list[str]:
        """All words, indexed by id (a new list on every call; the model keeps its own)."""
        if self._words is None:
            self._words = tuple(self._native.vocab())
        return list(self._words)

    @property
    def counts(self) -> tuple[int, ...]:
        """N-gram counts per order, as the file declares them."""
        return tuple(self._native.counts)

    @property
    def path(self) -> str:
        """The absolute path the model was loaded from."""
        return self._path

    @property
    def kenlm_type(self) -> str | None:
        """For a KenLM binary, its type (``"probing"``, ``"trie"``, ``"quant_trie"``,
        ``"array_trie"``, ``"quant_array_trie"``, ``"rest_probing"``); None for an ARPA file."""
        t = self._native.kenlm_type
        return None if t is None else KENLM_TYPES[t]

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the vocabulary and the n-gram tables (a KenLM binary: the file's size)."""
        return self._native.memory_bytes

    @property
    def bytes_per_ngram(self) -> float:
        """``memory_bytes`` divided by the number of n-grams of all orders."""
        return self.memory_bytes / sum(self.counts)

    def word_id(self, word: str) -> int:
        """The id of ``word``; 0 (``<unk>``) for a word not in the vocabulary."""
        return self._native.word_id(word)

    def kenlm_id(self, word_id: int) -> int:
        """KenLM's own id of ``word_id`` (what KenLM's ``query`` prints): for a KenLM binary, the
        file's id; for an ARPA file, ``word_id`` itself."""
        return self._native.kenlm_id(word_id)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._native.contains(word)

    def __repr__(self) -> str:
        return f"NgramModel(order={self.order}, vocab_size={self.vocab_size}, counts={self.counts}, path={self.path!r})"

    def __reduce__(self):
        """Pickle the path and the file's identity, never the tables: unpickling loads the file
        again (a KenLM binary is mapped again, so a pool's workers share the page cache).

        The file's size, modification time and a BLAKE2b digest of its content are pickled along
        (the digest is computed on the first pickling); unpickling refuses a file that differs in
        any of them, so a pickled model never silently turns into another model.

        Raises:
            InputFileError: the file changed (or went away) between loading and pickling.
        """
        if self._stat_key is None:
            raise InputFileError(self._path, None, "the model was not loaded from a regular file; it cannot be pickled")
        try:
            now = _stat_key(self._path)
        except OSError as e:
            raise InputFileError(self._path, None, f"cannot be pickled: the file is gone ({e.strerror})") from None
        if now != self._stat_key:
            raise InputFileError(
                self._path, None, "cannot be pickled: the file changed on disk since this model loaded it"
            )
        if self._digest is None:
            self._digest = _digest(self._path)
            with _verified_lock:
                _verified[now] = self._digest
        return (_reopen, (self._path, now[1], now[2], self._digest))

    # ------------------------------------------------------------------------------------------
    # Sentences

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """log10 p(sentence), as ``kenlm.Model.score``: the sum of the words' scores (float32 sum)."""
        return self._native.score(sentence, bos, eos)

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> list[WordScore]:
        """One :class:`WordScore` per word, and one for ``</s>`` when ``eos``, as ``kenlm.Model.full_scores``."""
        return [WordScore(*s) for s in self._native.full_scores(sentence, bos, eos)]

    def perplexity(self, sentence: str) -> float:
        """``10 ** (-score(sentence) / (words + 1))`` as ``kenlm.Model.perplexity`` (``</s>`` counts)."""
        return 10.0 ** (-self.score(sentence) / (len(sentence.encode().split()) + 1))

    def perplexity_of(self, sentences: Sequence[str] | Sequence, num_threads: int | None = None) -> float:
        """Corpus perplexity: ``10 ** (-sum of scores / sum of (words + 1))`` over ``sentences``.

        ``sentences`` takes the forms :meth:`score_batch` takes; every sentence gets ``<s>`` and ``</s>``.
        """
        scores = self.score_batch(sentences, num_threads=num_threads)
        if len(scores) == 0:
            raise InvalidArgumentError("sentences", "at least one sentence", "an empty sequence")
        if isinstance(sentences[0], str):
            words = sum(len(s.encode().split()) + 1 for s in sentences)
        else:
            words = sum(len(s) + 1 for s in sentences)
        return float(10.0 ** (-scores.sum() / words))

    def score_batch(
        self, sentences: Sequence[str] | Sequence, bos: bool = True, eos: bool = True, num_threads: int | None = None
    ) -> np.ndarray:
        """:meth:`score` of many sentences at once, on all cores, without holding the GIL.

        Args:
            sentences: a sequence of str, or a sequence of 1-D integer arrays (or lists) of word ids.
            bos, eos: as in :meth:`score`.
            num_threads: threads to use (default: all cores).

        Returns:
            float64 ``[len(sentences)]``: the log10 probabilities (each a float32 sum, as KenLM's).

        Raises:
            TensorError: an element that is neither str nor a 1-D integer array, or a word id
                outside ``[0, vocab_size)`` (named by its position ``[sentence, word]``).
        """
        if isinstance(sentences, str):
            raise InvalidArgumentError("sentences", "a sequence of sentences (score() takes one str)", "a str")
        threads = num_threads or 0
        if len(sentences) > 0 and isinstance(sentences[0], str):
            return self._native.score_batch_text(sentences, bos, eos, threads)
        ids, offsets = self._packed(sentences)
        return self._native.score_batch_ids(ids, offsets, bos, eos, threads)

    def _packed(self, sentences: Sequence) -> tuple[np.ndarray, np.ndarray]:
        arrays = []
        for b, sentence in enumerate(sentences):
            array = np.asarray(sentence)
            if array.size == 0:
                array = array.reshape(0).astype(np.int64)
            if array.ndim != 1 or array.dtype.kind not in "iu":
                raise TensorError(
                    f"sentences[{b}]", "a str or a 1-D integer array of word ids", f"{array.ndim}-D {array.dtype}"
                )
            arrays.append(array.astype(np.int64, copy=False))
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        ids = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        bad = np.flatnonzero((ids < 0) | (ids >= self.vocab_size))
        if bad.size:
            at = int(bad[0])
            b = int(np.searchsorted(offsets, at, side="right")) - 1
            raise TensorError(
                "sentences", f"word ids in [0, {self.vocab_size})", f"{int(ids[at])} at [{b}, {at - int(offsets[b])}]"
            )
        return ids.astype(np.int32), offsets

    # ------------------------------------------------------------------------------------------
    # Word by word

    def begin_state(self) -> tuple[int, ...]:
        """The state after ``<s>``: ``(1,)`` (for a unigram model, the empty state)."""
        return (BOS_ID,) if self.order > 1 else ()

    def null_state(self) -> tuple[int, ...]:
        """The empty context: ``()``."""
        return ()

    def score_word(self, state: tuple[int, ...], word: int | str) -> tuple[float, tuple[int, ...]]:
        """log10 p(word | state) and the state after it.

        Args:
            state: word ids, most recent first, at most ``order - 1`` of them (any such tuple is
                scored correctly; the returned one is minimised).
            word: a word id, or a word (unknown words are ``<unk>``).

        Raises:
            TensorError: an id outside ``[0, vocab_size)`` or a state longer than ``order - 1``.
        """
        if word.__class__ is str:
            word = self._native.word_id(word)
        return self._native.score_word(state, word)

    def score_words(self, states, word_ids, num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score_word` over arrays, on all cores, without holding the GIL.

        Args:
            states: integer ``[n, order - 1]``: row r holds state r's word ids, most recent first,
                then -1 padding (see the class docstring).
            word_ids: integer ``[n]``: the word to score after each state.
            num_threads: threads to use (default: all cores).

        Returns:
            ``(log10_probs, next_states)``: float32 ``[n]`` and int32 ``[n, order - 1]`` in the
            same layout (minimised states, -1 padded).

        Raises:
            TensorError: wrong shapes or dtypes, a word id outside ``[0, vocab_size)``, a row whose
                padding is not all -1 after its ids (each named by its position).
        """
        states = _int32_array(states, "states", 2)
        word_ids = _int32_array(word_ids, "word_ids", 1)
        return self._native.score_words(states, word_ids, num_threads or 0)


def _reopen(path: str, size: int, mtime_ns: int, digest: str) -> NgramModel:
    """Unpickles an :class:`NgramModel`: loads ``path`` after checking it is the pickled file."""
    try:
        key = _stat_key(path)
    except OSError as e:
        raise InputFileError(path, None, f"the pickled model's file is gone ({e.strerror})") from None
    if (key[1], key[2]) != (size, mtime_ns):
        raise InputFileError(
            path, None, "the file changed since the model was pickled (size or modification time differs)"
        )
    with _verified_lock:
        known = _verified.get(key)
    if known is None:
        known = _digest(path)
        with _verified_lock:
            _verified[key] = known
    if known != digest:
        raise InputFileError(path, None, "the file's content changed since the model was pickled")
    model = NgramModel.load(path)
    if model._stat_key != key:
        raise InputFileError(path, None, "the file changed while the pickled model was being loaded")
    model._digest = digest
    return model
