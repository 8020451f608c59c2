"""Gradient methods behind one interface (see :mod:`oknumba.estimators.base`)."""
from .base import Estimator
from .rtrl import ExactRTRL

#: online estimators by method name
ESTIMATORS = {"rtrl": ExactRTRL}
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
    if cls.stochastic:
        kwargs["seed"] = seed
    return cls(cell, batch, dtype, **kwargs)


__all__ = ["Estimator", "ExactRTRL", "ESTIMATORS", "OFFLINE_METHODS", "make_estimator"]
