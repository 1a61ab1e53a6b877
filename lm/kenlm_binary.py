"""KenLM's binary model files: writing them from ARPA files, and a trie back to ARPA.

Reading needs nothing from here: :meth:`speechdecode.lm.NgramModel.load` maps any KenLM binary.
The writer is native (csrc/lm/kenlm_binary_writer.cc) and builds what KenLM's ``build_binary``
builds from the same ARPA file, so the ``kenlm`` module scores our file exactly as it scores its
own file of the same type.

Example:
    >>> from speechdecode.lm.kenlm_binary import write_binary
    >>> write_binary("lm.arpa", "lm.bin", type="trie", quantize=(8, 8), pointer_bits=22)  # doctest: +SKIP
"""

from __future__ import annotations

import os

from speechdecode import _backend
from speechdecode._io import atomic_write
from speechdecode.errors import InvalidArgumentError

__all__ = ["BINARY_TYPES", "binary_to_arpa", "write_binary"]

BINARY_TYPES = ("probing", "trie")
_PROBING, _TRIE, _QUANT, _ARRAY = 0, 2, 1, 2


def write_binary(
    arpa: str | os.PathLike,
    out: str | os.PathLike,
    *,
    type: str = "probing",
    quantize: tuple[int, int] | None = None,
    pointer_bits: int | None = None,
) -> None:
    """Write the KenLM binary of the ARPA file ``arpa`` (plain or gzip) to ``out``, atomically.

    Args:
        arpa: the ARPA file.
        out: the binary to write (``-`` for standard output).
        type: ``"probing"`` (hash tables, fastest) or ``"trie"`` (smallest; needed to turn the
            binary back into ARPA).
        quantize: ``(prob_bits, backoff_bits)``, each 1..25, as ``build_binary -q P -b B``
            (trie only).
        pointer_bits: compress trie pointers with an offset array of at most this many bits, as
            ``build_binary -a N`` (trie only; 0..255).

    Raises:
        ArpaFormatError: a malformed ARPA file, or one KenLM rejects (a missing context).
        InvalidArgumentError: a bad option.
        OSError: a file cannot be read or written.
    """
    if type not in BINARY_TYPES:
        raise InvalidArgumentError("type", " or ".join(map(repr, BINARY_TYPES)), repr(type))
    code = _PROBING if type == "probing" else _TRIE
    prob_bits = backoff_bits = 0
    if quantize is not None:
        if type != "trie":
            raise InvalidArgumentError("quantize", "None for a probing binary (quantization needs a trie)", quantize)
        prob_bits, backoff_bits = (int(b) for b in quantize)
        for name, bits in (("prob_bits", prob_bits), ("backoff_bits", backoff_bits)):
            if not 1 <= bits <= 25:
                raise InvalidArgumentError(f"quantize ({name})", "bits in 1..25", bits)
        code += _QUANT
    if pointer_bits is not None:
        if type != "trie":
            raise InvalidArgumentError("pointer_bits", "None for a probing binary (it needs a trie)", pointer_bits)
        if not 0 <= int(pointer_bits) <= 255:
            raise InvalidArgumentError("pointer_bits", "an integer in 0..255", pointer_bits)
        code += _ARRAY
    native = _backend.native()
    arpa_path = os.fsencode(os.path.abspath(os.fsdecode(arpa)))
    with atomic_write(out, "wb") as handle:
        handle.flush()
        native.write_kenlm_binary(
            arpa_path, handle.fileno(), os.fsencode(os.fsdecode(out)), code, prob_bits, backoff_bits, pointer_bits or 0
        )


def binary_to_arpa(binary: str | os.PathLike, out: str | os.PathLike) -> None:
    """Write a KenLM trie binary back as an ARPA file (gzip when ``out`` ends in ``.gz``; ``-``:
    standard output).

    The n-grams and numbers are the trie's: exact for an unquantized trie (the float32 values of
    the ARPA it was built from), bin centers for a quantized one. A trie holds, besides the
    ARPA's n-grams, the lower-order n-grams KenLM adds where a pruned file lacks a suffix
    (with the probability backing off gives); those come out too. Sections are in the trie's
    order (by last word), not the original file's.

    Raises:
        InputFileError: a probing binary (it stores hashes of n-grams, not their words) or a
            damaged file.
        OSError: a file cannot be read or written.
    """
    from speechdecode.lm.arpa import ArpaModel, write_arpa

    words, ngrams, probs, backoffs = _backend.native().kenlm_arpa_tables(os.fsencode(os.fsdecode(binary)))
    write_arpa(out, ArpaModel(words=words, ngrams=ngrams, log10_probs=probs, backoffs=backoffs))
