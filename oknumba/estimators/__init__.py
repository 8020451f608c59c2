"""Gradient methods behind one interface (see :mod:`oknumba.estimators.base`)."""
from .base import Estimator
from .kf import KF, KFAverage
from .ok import OK, OKTruncated
from .reduce import ok_min_variance, ok_reduce
from .rtrl import ExactRTRL
from .uoro import UORO

#: online estimators by method name
ESTIMATORS = {cls.method: cls for cls in (ExactRTRL, OK, OKTruncated, KF, KFAverage, UORO)}
#: methods of ``sequence_grad`` that are not online estimators
OFFLINE_METHODS = ("bptt", "tbptt")


def make_estimator(method, cell, batch, dtype, rank=None, seed=None):
    """Build the online estimator for ``method`` (see ``ESTIMATORS``)."""
    if method not in ESTIMATORS:
        raise ValueError(f"method must be one of {sorted(ESTIMATORS) + list(OFFLINE_METHODS)},"
                         f" got {method!r}")
    cls = ESTIMATORS[method]
    kwargs = {}
    if getattr(cls, "takes_rank", False):
        kwargs["rank"] = rank
    elif rank is not None:
        raise ValueError(f"rank is not used by method {method!r}; it applies to ok, ok-truncated and kf-avg")
    if cls.stochastic:
        kwargs["seed"] = seed
    return cls(cell, batch, dtype, **kwargs)


__all__ = ["Estimator", "ExactRTRL", "OK", "OKTruncated", "KF", "KFAverage", "UORO",
           "ok_reduce", "ok_min_variance", "ESTIMATORS", "OFFLINE_METHODS", "make_estimator"]
