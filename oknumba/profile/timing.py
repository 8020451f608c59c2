"""Timing helpers of :mod:`oknumba.profile`: sampled wall times, the bare product, and the
thread and machine information recorded with each profile."""
import gc
import os
import platform
import statistics
import time

import numpy as np


# --------------------------------------------------------------------------------------
# timing helpers
def _time_samples(fn, reps, samples):
    """Median-ready list of per-call µs: ``samples`` samples of ``reps`` calls each."""
    out = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            for _ in range(reps):
                fn()
            out.append((time.perf_counter_ns() - t0) / 1e3 / reps)
    finally:
        if gc_was:
            gc.enable()
    return out


def _auto_reps(seconds_per_call, target_s, lo=1, hi=2000):
    if seconds_per_call <= 0:
        return hi
    return int(min(hi, max(lo, round(target_s / seconds_per_call))))


def bare_product_us(B, S, cols, dtype, samples=5, target_s=0.1, seed=0):
    """Median µs of ``numpy.matmul(H, X, out=Y)`` for H (B,S,S), X (B,S,cols)."""
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((B, S, S)).astype(dtype)
    X = rng.standard_normal((B, S, cols)).astype(dtype)
    Y = np.empty((B, S, cols), dtype)

    def call():
        np.matmul(H, X, out=Y)

    call()
    t0 = time.perf_counter()
    call()
    reps = _auto_reps(time.perf_counter() - t0, target_s, hi=10000)
    return statistics.median(_time_samples(call, reps, samples))


def _effective_threads():
    import numba
    info = {"numba": numba.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = sorted({(p.get("internal_api"), p.get("filepath", "").split("/")[-1],
                                p.get("num_threads")) for p in threadpool_info()
                               if p.get("user_api") == "blas"})
    except Exception as exc:  # pragma: no cover - threadpoolctl is a dependency
        info["blas"] = f"unavailable ({exc})"
    return info


def _machine_info():
    import numba
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count()}
    try:
        info["loadavg_start"] = list(os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    return info
