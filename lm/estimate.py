"""Estimate a back-off n-gram model from counts with a named smoothing method.

>>> from speechdecode.lm.counts import count_sentences
>>> counts = count_sentences(["the cat sat", "the dog sat", "a cat ran"], 2)
>>> model = estimate(counts, "kn", interpolate=False)
>>> model.order, len(model.words)
(2, 9)

Methods (``METHODS``; each is ``function(counts, *, prune=None, **options) -> ArpaModel``, see
:mod:`speechdecode.lm.methods`):

* ``mkn``: interpolated modified Kneser-Ney exactly as KenLM's lmplz (``prune``,
  ``discount_fallback``, ``float64``);
* ``kn``: Kneser-Ney with one discount per order (``prune``, ``interpolate``, ``discount_fallback``);
* ``absolute``: absolute discounting on raw counts (``prune``, ``interpolate``, ``discount_fallback``);
* ``katz``: Good-Turing discounted Katz back-off (``prune``, ``k``, ``fitted``);
* ``witten-bell``: Witten-Bell, interpolated or back-off (``prune``, ``interpolate``);
* ``jelinek-mercer``: linear interpolation, lambdas fitted by EM on held-out text (``prune``,
  ``heldout``, ``lambdas``, ``max_iter``, ``tol``, ``fitted``);
* ``add-k``: Laplace (k=1) / Lidstone smoothing (``prune``, ``k``);
* ``mle``: maximum likelihood (``prune``).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable

from speechdecode import _backend
from speechdecode.errors import InvalidArgumentError
from speechdecode.lm import native_estimate
from speechdecode.lm.arpa import ArpaModel, write_arpa
from speechdecode.lm.counts import NgramCounts
from speechdecode.lm.methods import absolute, additive, jelinek_mercer, katz, kneser_ney, mle, witten_bell
from speechdecode.lm.methods.kneser_ney import DiscountFallbackWarning, fallback_needed

METHODS: dict[str, Callable[..., ArpaModel]] = {
    "mkn": kneser_ney.modified_kneser_ney,
    "kn": kneser_ney.kneser_ney,
    "absolute": absolute.absolute_discounting,
    "katz": katz.katz,
    "witten-bell": witten_bell.witten_bell,
    "jelinek-mercer": jelinek_mercer.jelinek_mercer,
    "add-k": additive.additive,
    "mle": mle.mle,
}


# Methods with a C++ fast path (same output as the reference); used when the extension is built.
NATIVE: dict[str, Callable[..., ArpaModel]] = {"mkn": native_estimate.estimate_mkn}


def method_options(method: str) -> list[str]:
    """The keyword options ``method`` takes, sorted (raises for an unknown method)."""
    function = _method(method)
    parameters = inspect.signature(function).parameters.values()
    return sorted(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def estimate(counts: NgramCounts, method: str = "mkn", *, backend: str | None = None, **options) -> ArpaModel:
    """Smooth ``counts`` with ``method`` (a key of ``METHODS``) into a back-off model.

    Args:
        counts: raw n-gram counts (:func:`speechdecode.lm.counts.count_sentences`); the model
            has their order.
        method: ``"mkn"`` (default, as KenLM's lmplz), ``"kn"``, ``"absolute"``, ...
        backend: "reference" or "native" (default: ``SPEECHDECODE_BACKEND``, else native for
            methods in ``NATIVE`` when the extension is built); both give the same model.
        **options: the method's keyword options (:func:`method_options` lists them).

    Returns:
        an :class:`~speechdecode.lm.arpa.ArpaModel` (write it with ``write_arpa``).

    Raises:
        InvalidArgumentError: unknown method (the message lists the known ones), an option the
            method does not take (the message lists those it takes), a bad option value, or
            counts that cannot be estimated from.
    """
    if not isinstance(counts, NgramCounts):
        raise InvalidArgumentError("counts", "an NgramCounts", type(counts).__name__)
    if _native_for(method, backend, options):
        return NATIVE[method](counts, **options)
    return METHODS[method](counts, **options)


def _native_for(method: str, backend: str | None, options: dict) -> bool:
    """Whether ``estimate`` runs ``method`` natively (checks the method, options and backend)."""
    accepted = method_options(method)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidArgumentError(
            "options", f"options of method {method!r}: {', '.join(accepted) or 'none'}", ", ".join(unknown)
        )
    return method in NATIVE and _backend.select("cpu", backend, implemented=_backend.NO_KERNEL) == "native"


def estimate_arpa(
    path: str | os.PathLike, counts: NgramCounts, method: str = "mkn", *, backend: str | None = None, **options
) -> list[int]:
    """``write_arpa(path, estimate(counts, method, ...))`` in one step; returns the n-grams per order.

    Where the method has a streaming native path (``mkn``) each order is written as soon as it is
    estimated and freed: memory holds the counts and one order of the model, not the whole model.
    Other methods and the reference backend estimate the model, then write it. Either way the file
    is byte for byte the two-step one, written under the output rule of
    :func:`speechdecode._io.atomic_write`.

    Args:
        discount_fallback: for methods that take it, ``None`` makes an order whose discounts
            cannot be computed an error raised before anything is written (lmplz's rule without
            ``--discount_fallback``); otherwise as :func:`estimate`.
        the others: as :func:`estimate`.

    Raises:
        InvalidArgumentError: as :func:`estimate`, and a needed fallback with
            ``discount_fallback=None``.
        OSError: the file cannot be written.
    """
    if method == "mkn" and _native_for(method, backend, options):
        return native_estimate.write_mkn_arpa(path, counts, **options)  # None is its strict mode too
    strict = "discount_fallback" in options and options["discount_fallback"] is None
    if strict:
        del options["discount_fallback"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = estimate(counts, method, backend=backend, **options)
    for w in caught:
        if strict and issubclass(w.category, DiscountFallbackWarning):
            raise fallback_needed(str(w.message).split("; using the fallback")[0])
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    write_arpa(path, model)
    return [len(g) for g in model.ngrams]


def _method(method: str) -> Callable[..., ArpaModel]:
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidArgumentError("method", f"one of {', '.join(sorted(METHODS))}", repr(method))
    return METHODS[method]
