"""Gradient methods behind one interface (see :mod:`oknumba.estimators.base`), each registered
once in :mod:`oknumba.methods` with its metadata."""
from ..methods import (METHODS, MethodInfo, kron_columns, kron_memory, no_product, product_flops,
                       register_method, rtrl_memory, tbptt_memory, uoro_memory)
from .base import Estimator
from .bptt import TruncatedBPTT
from .kf import KF, KFAverage
from .ok import OK, OKTruncated
from .reduce import ok_min_variance, ok_reduce
from .rtrl import ExactRTRL
from .uoro import UORO


def _register_builtin():
    kron = dict(product_columns=kron_columns, flops=product_flops(kron_columns), memory=kron_memory)
    for cls, summary in ((OK, "r-OK: the theorem-optimal unbiased rank-r Kronecker sum"),
                         (OKTruncated, "deterministic top-r SVD (biased, for comparison)"),
                         (KF, "KF-RTRL: one Kronecker term, unbiased"),
                         (KFAverage, "mean of r KF-RTRL copies (the paper's equal-cost baseline)")):
        register_method(MethodInfo(cls.method, "rank" if cls.takes_rank else None, cls.stochastic,
                                   cls is OKTruncated, cls, summary=summary, gpu="KroneckerDevice",
                                   **kron))
    rtrl_cols = lambda params, a, P: a * P  # noqa: E731
    register_method(MethodInfo("rtrl", None, False, False, ExactRTRL, rtrl_cols,
                               product_flops(rtrl_cols), rtrl_memory, "exact RTRL", "RTRLDevice"))
    register_method(MethodInfo("uoro", None, True, False, UORO, no_product,
                               lambda params, B, S, a, P: 6.0 * B * a * P, uoro_memory,
                               "UORO: unbiased rank-one, O(n²) per step", "UORODevice"))
    register_method(MethodInfo("tbptt", "truncation", False, True, TruncatedBPTT, no_product,
                               lambda params, B, S, a, P: B * (4.0 * a * P + 2.0 * S * S),
                               tbptt_memory, "truncated BPTT, an update every k steps", "TBPTTDevice"))


_register_builtin()

#: online estimators that keep an influence estimate, by method name (from the registry)
ESTIMATORS = {name: info.estimator for name, info in METHODS.items()
              if info.estimator is not None and info.estimator.has_influence}
#: methods of ``sequence_grad`` that are not influence estimators
OFFLINE_METHODS = ("bptt", "tbptt")


def make_estimator(method, cell, batch, dtype, rank=None, seed=None, truncation=None):
    """Build the online estimator of a registered method, passing it the hyper-parameter it
    takes (``rank`` or ``truncation``) and, if it is random, ``seed``."""
    info = METHODS.get(method)
    if info is None or info.estimator is None:
        raise ValueError(f"method must be one of {sorted(ESTIMATORS) + list(OFFLINE_METHODS)},"
                         f" got {method!r}")
    kwargs = {}
    for name, value in (("rank", rank), ("truncation", truncation)):
        if name == info.param:
            kwargs[name] = value
        elif value is not None:
            users = [m for m, i in METHODS.items() if i.param == name]
            raise ValueError(f"{name} is not used by method {method!r}; it applies to {', '.join(users)}")
    if info.estimator.stochastic:
        kwargs["seed"] = seed
    return info.estimator(cell, batch, dtype, **kwargs)


__all__ = ["Estimator", "TruncatedBPTT", "ExactRTRL", "OK", "OKTruncated", "KF", "KFAverage", "UORO",
           "ok_reduce", "ok_min_variance", "ESTIMATORS", "OFFLINE_METHODS", "make_estimator"]
