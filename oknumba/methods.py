"""The registry of gradient methods: one entry per method with what the rest of the package needs.

Every method of :class:`oknumba.OnlineLearner` registers once (:func:`register_method`, done in
:mod:`oknumba.estimators`) with its metadata: the hyper-parameter its spec takes after ``:``
(``rank`` for ``ok:8``, ``truncation`` for ``tbptt:10``), whether its estimate is random,
whether it is biased, and its cost model for ``oknumba profile`` — the dominant product and
the memory. The command line's choices, ``profile``, ``noise``, the benchmarks and the tests'
parametrisation are read from here, and :func:`parse_method_spec` is the one parser of method
specs.

Cost model per step over B streams (S state size, a = n_in + n + 1 input rows, P gate
columns): the Kronecker methods' dominant product is ``H (S×S)`` times ``r·P`` columns per
stream (``2 B S² r P`` flops; KF r = 1), exact RTRL's ``H`` times the ``a·P`` columns of ``G``,
UORO's is O(a·P) (one JVP and one VJP, ``6 B a P`` counted), TBPTT's backward pass
``B (4 a P + 2 S²)`` per step.
"""
import dataclasses
from typing import Callable, Optional


@dataclasses.dataclass(frozen=True)
class MethodInfo:
    """What the package knows of one gradient method.

    Attributes
    ----------
    name : str
        The ``method`` string of ``OnlineLearner`` and ``sequence_grad``.
    param : {"rank", "truncation", None}
        The hyper-parameter a spec gives after ``:`` (required when not None).
    stochastic : bool
        The estimate is random (one unbiased sample, unless ``biased``).
    biased : bool
        The estimate's expectation is not the exact gradient.
    estimator : type
        The estimator class (:mod:`oknumba.estimators`) the learner runs; TBPTT's is a
        windowed one (``has_influence`` False).
    product_columns : callable ``(params, a, P) -> int or None``
        Columns of the dominant product ``H (S×S) @ X (S×cols)`` per stream, None if the
        method has none.
    flops : callable ``(params, B, S, a, P) -> float``
    memory : callable ``(params, B, S, a, P, itemsize) -> float``
        Rough peak bytes of the learner.
    summary : str
        One line for help texts.
    gpu : str or None
        The device estimator's class in :mod:`oknumba.gpu.estimators` (a name: the GPU
        extra is optional), None when the method has no GPU implementation.
    """

    name: str
    param: Optional[str]
    stochastic: bool
    biased: bool
    estimator: Optional[type]
    product_columns: Callable
    flops: Callable
    memory: Callable
    summary: str
    gpu: Optional[str] = None

    def spec(self, value=None):
        """The spec string, e.g. ``"ok:8"``."""
        return self.name if self.param is None or value is None else f"{self.name}:{value}"


#: method name -> :class:`MethodInfo`, in registration order
METHODS = {}


def register_method(info):
    """Add a method to the registry (a name registers once)."""
    if not isinstance(info, MethodInfo):
        raise TypeError(f"register_method takes a MethodInfo, got {type(info).__name__}")
    if info.name in METHODS and METHODS[info.name] != info:
        raise ValueError(f"method {info.name!r} is already registered")
    METHODS[info.name] = info
    return info


def method_info(name):
    """The registry entry of ``name`` (ValueError naming the known methods otherwise)."""
    _ensure_registered()
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]


def method_names(online_only=False):
    """Registered method names (``online_only``: those keeping an influence estimate, i.e.
    all but the windowed TBPTT)."""
    _ensure_registered()
    return [m for m, info in METHODS.items()
            if not online_only or (info.estimator is not None and info.estimator.has_influence)]


def spec_forms():
    """``"ok:R, ok-truncated:R, …, tbptt:K"``: the spec form of every method, for help texts."""
    _ensure_registered()
    letter = {"rank": "R", "truncation": "K"}
    return ", ".join(f"{m}:{letter.get(i.param, 'N')}" if i.param else m for m, i in METHODS.items())


def parse_method_list(text):
    """``"ok:8,kf, uoro"`` → ``["ok:8", "kf", "uoro"]``, each checked by
    :func:`parse_method_spec` (ValueError naming the bad one)."""
    specs = [s.strip() for s in str(text).split(",") if s.strip()]
    if not specs:
        raise ValueError("expected at least one method spec, e.g. 'ok:8,kf'")
    for s in specs:
        parse_method_spec(s)
    return specs


def parse_method_spec(spec):
    """Parse ``"ok:16"``, ``"kf-avg:8"``, ``"ok-truncated:4"``, ``"tbptt:10"``, ``"kf"``,
    ``"uoro"``, ``"rtrl"`` (or a ``(name, value)`` tuple).

    Returns
    -------
    (label, name, kwargs) : (str, str, dict)
        ``kwargs`` holds the method's hyper-parameter (``rank`` or ``truncation``) as
        :class:`oknumba.OnlineLearner` takes it; ``label`` is the normalised spec.

    Raises
    ------
    ValueError
        Unknown name, a missing or non-positive number, or a number where none is taken.
    """
    if isinstance(spec, tuple) and len(spec) == 2:
        name, value = spec
        spec = name if value is None else f"{name}:{value}"
    if not isinstance(spec, str):
        raise ValueError(f"method spec must be a string like 'ok:16', got {spec!r}")
    name, sep, arg = spec.strip().partition(":")
    name = name.strip().lower()
    _ensure_registered()
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r} in spec {spec!r}; known: {sorted(METHODS)}")
    what = METHODS[name].param
    if what is None:
        if sep:
            raise ValueError(f"method {name!r} takes no ':number' (got {spec!r})")
        return name, name, {}
    if not sep or not arg.strip():
        raise ValueError(f"method {name!r} needs its {what}: write e.g. '{name}:8' (got {spec!r})")
    try:
        value = int(arg.strip())
    except ValueError:
        raise ValueError(f"bad {what} in method spec {spec!r}: expected an integer >= 1") from None
    if value < 1:
        raise ValueError(f"{what} in method spec {spec!r} must be >= 1")
    return f"{name}:{value}", name, {what: value}


def _ensure_registered():
    if not METHODS:   # the estimators package registers the built-in methods on import
        from . import estimators  # noqa: F401


# cost models shared by several entries ------------------------------------------------------
def kron_columns(params, a, P):
    return params.get("rank", 1) * P


def _small_bytes(B, S, a, P, itemsize):
    return B * (S * S + 4 * a * P + 8 * S * P) * itemsize


def product_flops(columns):
    """Flops ``2 B S² cols`` of the dominant product with ``columns(params, a, P)`` columns."""
    return lambda params, B, S, a, P: 2.0 * B * S * S * columns(params, a, P)


def kron_memory(params, B, S, a, P, itemsize):
    return 4 * B * S * params.get("rank", 1) * P * itemsize + _small_bytes(B, S, a, P, itemsize)


def rtrl_memory(params, B, S, a, P, itemsize):
    return 2 * B * S * a * P * itemsize + _small_bytes(B, S, a, P, itemsize)


def uoro_memory(params, B, S, a, P, itemsize):
    return _small_bytes(B, S, a, P, itemsize)


def tbptt_memory(params, B, S, a, P, itemsize):
    k = params["truncation"]
    return k * B * (S * S + 2 * S * P + a) * itemsize + _small_bytes(B, S, a, P, itemsize)


def no_product(params, a, P):
    return None


__all__ = ["MethodInfo", "METHODS", "register_method", "method_info", "method_names",
           "parse_method_spec", "parse_method_list", "spec_forms"]
