"""ARPA back-off language models: the in-memory tables, and reading / writing the text format.

The format (Doug Paul's ARPA format, as SRILM and KenLM write it)::

    \\data\\
    ngram 1=M1
    ...
    \\1-grams:
    log10(p)  w  [log10(backoff)]
    ...
    \\end\\

Fields are tab-separated on write; any whitespace is accepted on read. Numbers are written
as lmplz prints them (:func:`format_float`: the shortest decimal that reads back to the same
float32, in exponent form below 1e-6), so a model read and written again is identical to the
printed digits.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from speechdecode._io import atomic_write, open_text
from speechdecode.errors import ArpaFormatError, InvalidArgumentError

MAX_ORDER = 10  # the readers' limit (csrc/lm/arpa_reader.h kMaxOrder)


@dataclass
class ArpaModel:
    """A back-off n-gram model as tables.

    Attributes:
        words: the vocabulary; ids index this list.
        ngrams: per order n, int32 [M_n, n] word-id rows.
        log10_probs: per order n, float64 [M_n].
        backoffs: per order n < N, float64 [M_n] log10 back-off weights (0 = none); the highest
            order has none (an empty array).
    """

    words: list[str]
    ngrams: list[np.ndarray]
    log10_probs: list[np.ndarray]
    backoffs: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.ngrams)

    def __post_init__(self):
        sizes = [len(g) for g in self.ngrams]
        if [len(p) for p in self.log10_probs] != sizes:
            raise InvalidArgumentError(
                "log10_probs", f"one value per n-gram {sizes}", [len(p) for p in self.log10_probs]
            )
        expected = [*sizes[:-1], 0]
        if [len(b) for b in self.backoffs] != expected:
            raise InvalidArgumentError("backoffs", f"one value per n-gram below the top order {expected}",
                                       [len(b) for b in self.backoffs])  # fmt: skip


def format_float(value: float) -> str:
    """``value`` rounded to float32, printed as lmplz prints it.

    KenLM's ``util/float_to_string.cc`` (double-conversion's ``ToShortestSingle``, converter
    flags ``NO_FLAGS``, ``"inf"``, ``"NaN"``, ``'e'``, ``decimal_in_shortest_low = -6``,
    ``decimal_in_shortest_high = 21``): the shortest digits that read back to the same float32
    (the closest such, ties to even), with e the decimal exponent of the first digit:

    * -6 <= e < 21: positional, no exponent, no trailing zeros after the point: ``"0"``,
      ``"-0.30103"``, ``"0.000001"``, ``"-123.5"``, ``"100000000000000000000"``;
    * otherwise ``d[.ddd]e<e>``, the exponent without ``+`` or leading zeros: ``"-1.5e-7"``,
      ``"1e-45"``, ``"1e21"``, ``"3.4028235e38"``;
    * ``"-0"`` for negative zero, ``"inf"``, ``"-inf"``, and ``"NaN"`` (no sign) for any NaN.

    >>> [format_float(x) for x in (-0.30103, 1e-06, -1.5e-07, 1e21, float("nan"))]
    ['-0.30103', '0.000001', '-1.5e-7', '1e21', 'NaN']
    """
    x = np.float32(value)
    # Dragon4's shortest round-trip digits (numpy), laid out positionally: "-0.30103", "-0",
    # "0.00000015", "nan", "-inf". Kept unless the exponent of the first digit is < -6 or >= 21.
    text = np.format_float_positional(x, unique=True, trim="-")
    body = text[1:] if text[0] == "-" else text
    if not body[0].isdigit():
        return "NaN" if body == "nan" else text
    point = body.find(".")
    if not body.startswith("0.000000") and (point if point >= 0 else len(body)) <= 21:
        return text
    mantissa, exponent = np.format_float_scientific(x, unique=True, trim="-").split("e")  # "-1.5e-07"
    return f"{mantissa}e{int(exponent)}"


def write_arpa(path: str | os.PathLike, model: ArpaModel, *, backend: str | None = None) -> None:
    """Write ``model`` atomically: an interrupted write leaves no partial file at ``path``.

    Gzip-compressed when ``path`` ends in ``.gz``. ``backend``: "native" (the C++ writer, the
    default when the extension is built; multithreaded) or "reference" (this module); both write
    the same bytes.
    """
    from speechdecode import _backend

    if _backend.select("cpu", backend, implemented=_backend.NO_KERNEL) == "native":
        from speechdecode.lm.native_estimate import write_arpa_native

        write_arpa_native(path, model)
        return
    words = model.words
    with atomic_write(path, "wb") as raw, _text_sink(raw, os.fspath(path).endswith(".gz")) as out:
        out.write("\\data\\\n")
        for n, grams in enumerate(model.ngrams, start=1):
            out.write(f"ngram {n}={len(grams)}\n")
        for n in range(model.order):
            out.write(f"\n\\{n + 1}-grams:\n")
            probs = [format_float(p) for p in model.log10_probs[n]]
            texts = [" ".join(words[i] for i in row) for row in model.ngrams[n].tolist()]
            if n + 1 < model.order:
                backoffs = [format_float(b) for b in model.backoffs[n]]
                out.writelines(f"{p}\t{t}\t{b}\n" for p, t, b in zip(probs, texts, backoffs, strict=True))
            else:
                out.writelines(f"{p}\t{t}\n" for p, t in zip(probs, texts, strict=True))
        out.write("\n\\end\\\n")


@contextlib.contextmanager
def _text_sink(raw, compress: bool):
    """A text stream over the binary file ``raw``, gzip-compressed when ``compress``."""
    stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="\n")
    try:
        yield text
        text.flush()
    finally:
        text.detach()
        if compress:
            stream.close()


# Field separators of both readers: ASCII space, tab, CR, VT, FF ("\n" ends the line). Other
# characters, Unicode spaces among them, are part of a word.
_SPACES = " \t\r\v\f\n"
_FIELD_SEPARATORS = re.compile("[ \t\r\v\f\n]+")
# The numbers both readers take: ASCII decimal, or -inf (float() alone would take "1_0", "١", "nan").
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|-(?:inf|infinity)", re.ASCII | re.IGNORECASE)


def _number(text: str, path, line: int, what: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise ArpaFormatError(path, line, f"{what} is not a number: {text!r}")
    value = float(text)
    if value == math.inf or (value == -math.inf and what != "log10 probability"):
        raise ArpaFormatError(
            path, line, f"{what} must be finite{' or -inf' if what == 'log10 probability' else ''}, got {text!r}"
        )
    if what == "log10 probability" and value > 0:
        raise ArpaFormatError(path, line, f"positive log10 probability {text!r} (a probability above 1)")
    return value


def _lines(handle, path):
    """(number, line) of each line; a NUL byte is binary data, as the native parser says."""
    for number, line in enumerate(handle, start=1):
        if "\0" in line:
            raise ArpaFormatError(path, number, "a NUL byte (binary data): not an ARPA text file")
        yield number, line


def _next_nonblank(lines, line_no: int) -> tuple[int, str | None]:
    """The next non-blank line (stripped) and its number; None at the end of the file."""
    for number, line in lines:
        if line.strip(_SPACES):
            return number, line.strip(_SPACES)
    return line_no, None


def read_arpa(path: str | os.PathLike, *, backend: str | None = None) -> ArpaModel:
    """Read an ARPA file (plain or gzip, told by content) into tables; errors name file and line.

    Args:
        path: the file.
        backend: "native" (the C++ parser, csrc/lm/arpa_reader: the one that
            :meth:`NgramModel.from_arpa <speechdecode.lm.NgramModel.from_arpa>` uses, so both
            accept and reject the same files; the default when the extension is built) or
            "reference" (this module: the test oracle, and the fallback without the extension).
            Both give the same :class:`ArpaModel` (ids in file order, float64 values equal to
            ``float(text)``) for files that follow the strict layout: sections separated by one
            blank line, numbers in decimal (``[+-]digits[.digits][e[+-]digits]`` or ``-inf``),
            log10 probabilities <= 0, nothing after ``\\end\\``. The native parser also
            reads what KenLM tolerates (``#`` lines before ``\\data\\``, extra blank lines,
            ``<UNK>``).

    Returns:
        an :class:`ArpaModel`: ``ngrams[n - 1]`` int32 [M_n, n], ``log10_probs[n - 1]`` float64
        [M_n], ``backoffs[n - 1]`` float64 [M_n] ([0] for the highest order).

    Raises:
        ArpaFormatError: the file is malformed (``path:line: what is wrong``).
        OSError: the file cannot be read.
        InvalidArgumentError: an unknown ``backend``.
        BackendUnavailableError: ``backend="native"`` without the extension.

    >>> model = read_arpa("tests/data/lmplz/kjv400.o3.arpa.gz")  # doctest: +SKIP
    >>> model.order, model.ngrams[2].shape  # doctest: +SKIP
    (3, (7991, 3))
    """
    from speechdecode import _backend

    if _backend.select("cpu", backend, implemented=_backend.NO_KERNEL) == "native":
        return _read_arpa_native(path, _backend.native())
    return _read_arpa_reference(path)


def _read_arpa_native(path: str | os.PathLike, native) -> ArpaModel:
    """The C++ parser's tables (the parser :class:`~speechdecode.lm.NgramModel` loads with)."""
    words, ngrams, probs, backoffs = native.read_arpa_tables(os.fspath(path))
    return ArpaModel(words, ngrams, probs, backoffs)


def _read_arpa_reference(path: str | os.PathLike) -> ArpaModel:
    with open_text(path) as handle:
        lines = _lines(handle, path)
        declared: list[int] = []
        line_no = 0
        for line_no, line in lines:
            if line.strip(_SPACES):
                if line.strip(_SPACES) != "\\data\\":
                    raise ArpaFormatError(path, line_no, f"expected '\\data\\', got {line.strip(_SPACES)!r}")
                break
        else:
            raise ArpaFormatError(path, line_no or None, "empty file: no '\\data\\' header")
        for line_no, line in lines:
            text = line.strip(_SPACES)
            if not text:
                if declared:
                    break
                continue
            if not text.startswith("ngram "):
                raise ArpaFormatError(path, line_no, f"expected 'ngram N=COUNT', got {text!r}")
            key, _, value = text[6:].partition("=")
            key, value = key.strip(), value.strip()
            if not (key + value).isascii() or not key.isdigit() or not value.isdigit() or int(key) != len(declared) + 1:
                raise ArpaFormatError(path, line_no, f"expected 'ngram {len(declared) + 1}=COUNT', got {text!r}")
            if int(key) > MAX_ORDER:
                raise ArpaFormatError(path, line_no, f"order {key} is above the supported maximum of {MAX_ORDER}")
            if int(key) == 1 and int(value) == 0:
                raise ArpaFormatError(path, line_no, "'ngram 1=0': a model needs unigrams (at least <s> and </s>)")
            declared.append(int(value))
        if not declared:
            raise ArpaFormatError(path, line_no, "no 'ngram N=COUNT' lines after '\\data\\'")
        order = len(declared)
        words: list[str] = []
        ids: dict[str, int] = {}
        ngrams, probs, backoffs = [], [], []
        contexts: set[tuple[int, ...]] = set()
        for n in range(1, order + 1):
            line_no, header = _next_nonblank(lines, line_no)
            if header != f"\\{n}-grams:":
                raise ArpaFormatError(path, line_no, f"expected '\\{n}-grams:', got {header!r}")
            rows, p_values, b_values = [], [], []
            seen: set[tuple[int, ...]] = set()
            for line_no, line in lines:
                fields = _FIELD_SEPARATORS.split(line.strip(_SPACES)) if line.strip(_SPACES) else []
                if not fields:
                    break
                if len(fields) not in (n + 1, n + 2) or (n == order and len(fields) == n + 2):
                    raise ArpaFormatError(
                        path, line_no, f"expected a {n}-gram line 'prob w1..w{n} [backoff]', got {len(fields)} fields"
                    )
                p_values.append(_number(fields[0], path, line_no, "log10 probability"))
                if n == 1:
                    if fields[1] in ids:
                        raise ArpaFormatError(path, line_no, f"duplicate unigram {fields[1]!r}")
                    ids[fields[1]] = len(words)
                    words.append(fields[1])
                try:
                    row = tuple(ids[w] for w in fields[1 : n + 1])
                except KeyError as exc:
                    raise ArpaFormatError(path, line_no, f"word {exc.args[0]!r} is not a unigram") from None
                if row in seen:
                    raise ArpaFormatError(path, line_no, f"duplicate {n}-gram '{' '.join(fields[1 : n + 1])}'")
                if n > 1 and row[:-1] not in contexts:
                    raise ArpaFormatError(
                        path,
                        line_no,
                        f"the context '{' '.join(fields[1:n])}' of the {n}-gram '{' '.join(fields[1 : n + 1])}' "
                        f"is not a {n - 1}-gram (KenLM requires it too)",
                    )
                seen.add(row)
                rows.append(row)
                if n < order:
                    b_values.append(
                        _number(fields[n + 1], path, line_no, "log10 backoff") if len(fields) == n + 2 else 0.0
                    )
            contexts = seen
            if len(rows) != declared[n - 1]:
                raise ArpaFormatError(
                    path, line_no, f"\\data\\ declares {declared[n - 1]} {n}-grams, the section has {len(rows)}"
                )
            if n == 1 and not {"<s>", "</s>"} <= ids.keys():
                missing = "<s>" if "<s>" not in ids else "</s>"
                raise ArpaFormatError(
                    path, line_no, f"the 1-grams have no {missing!r} (KenLM requires both <s> and </s>)"
                )
            ngrams.append(np.array(rows, dtype=np.int32).reshape(len(rows), n))
            probs.append(np.array(p_values, dtype=np.float64))
            backoffs.append(np.array(b_values, dtype=np.float64))
        line_no, tail = _next_nonblank(lines, line_no)
        if tail != "\\end\\":
            raise ArpaFormatError(path, line_no, f"expected '\\end\\', got {tail!r}")
        line_no, extra = _next_nonblank(lines, line_no)
        if extra is not None:
            raise ArpaFormatError(path, line_no, f"text after '\\end\\': {extra[:40]!r}")
    return ArpaModel(words, ngrams, probs, backoffs)
