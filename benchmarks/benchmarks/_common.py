"""Shared helpers of the benchmark suite. Only oknumba's public API is used, so the suite
keeps working while kernels and internal array layouts change."""
import os

import numpy as np

THREADS = int(os.environ.get("OKNUMBA_BENCH_THREADS", "1"))
N_IN = N_OUT = 4
BATCH = 4
#: exact RTRL holds B·S·a·P floats (twice): benchmarked only up to this hidden size
RTRL_MAX_HIDDEN = 64
POOL = 64


def learner_args(spec):
    """``"ok:8"`` -> ``("ok", {"rank": 8})``, ``"tbptt:10"`` -> ``("tbptt", {"truncation": 10})``
    (the package's one spec parser, :func:`oknumba.methods.parse_method_spec`)."""
    from oknumba.methods import parse_method_spec

    _, name, kwargs = parse_method_spec(spec)
    return name, kwargs


def check_supported(method, hidden):
    if method.startswith("rtrl") and hidden > RTRL_MAX_HIDDEN:
        raise NotImplementedError(f"rtrl is benchmarked only up to n = {RTRL_MAX_HIDDEN} (memory B·S·a·P)")


def one_hot_pool(batch, dtype, seed=0):
    """Pre-generated one-hot inputs (POOL, B, 4) and targets (POOL, B)."""
    rng = np.random.default_rng(seed)
    xs = np.ascontiguousarray(np.eye(N_IN, dtype=dtype)[rng.integers(0, N_IN, size=(POOL, batch))])
    ys = rng.integers(0, N_OUT, size=(POOL, batch)).astype(np.int64)
    return xs, ys


class Pinned:
    """Mixin: ``self.pin()`` in setup pins Numba and BLAS threads; teardown restores them."""

    def pin(self):
        from oknumba._threads import pinned_threads

        self._pinned = pinned_threads(THREADS)
        self._pinned.__enter__()

    def teardown(self, *params):
        ctx = getattr(self, "_pinned", None)
        if ctx is not None:
            ctx.__exit__(None, None, None)
            self._pinned = None
