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


def bare_product_call(shapes, dtype, seed=0):
    """A callable running ``numpy.matmul(H, X, out=Y)`` for H (B,S,S), X (B,S,cols) once per
    ``(B, S, cols)`` in ``shapes`` (a stack: one per layer), on arrays allocated here."""
    rng = np.random.default_rng(seed)
    ops = []
    for B, S, cols in shapes:
        H = rng.standard_normal((B, S, S)).astype(dtype)
        X = rng.standard_normal((B, S, cols)).astype(dtype)
        ops.append((H, X, np.empty((B, S, cols), dtype)))

    def call():
        for H, X, Y in ops:
            np.matmul(H, X, out=Y)

    return call


def reps_for(fn, target_s, hi=10000):
    """Calls of ``fn`` in about ``target_s`` seconds (from one timed call after a warm one)."""
    fn()
    t0 = time.perf_counter()
    fn()
    return _auto_reps(time.perf_counter() - t0, target_s, hi=hi)


#: seconds each function of :func:`interleaved_samples` runs untimed before its sample when
#: BLAS runs on several threads: after a call OpenBLAS's idle workers spin for its
#: THREAD_TIMEOUT (2^28 cycles, about 0.1 s) before they sleep, and spinning beside the next
#: sample's Numba threads made a 2-thread batched OK step (RHN n = 128, ``ok:16``, B = 16,
#: float32, AMD EPYC Zen 4) 24 % slower right after a bare product than after steps
BLAS_SETTLE_S = 0.3


def blas_threads():
    """The largest thread count of the BLAS libraries loaded in this process (1 if unknown),
    from :func:`_effective_threads`."""
    blas = _effective_threads()["blas"]
    return max((t[2] or 1 for t in blas), default=1) if isinstance(blas, list) else 1


def interleaved_samples(timed, samples, settle_s=0.0):
    """``samples`` per-call µs samples of each ``(fn, reps)`` in ``timed``, taken in turn
    (one sample of each, then the next round) so that a change of the machine's load during
    the measurement hits every function alike; returns one list per function. With
    ``settle_s`` > 0 each sample is preceded by ``settle_s`` seconds of untimed calls of the
    same function, so that what the previous function left running (spinning BLAS threads:
    :data:`BLAS_SETTLE_S`) has stopped and the clock is at the sample's own load."""
    out = [[] for _ in timed]
    for _ in range(samples):
        for lst, (fn, reps) in zip(out, timed):
            if settle_s > 0.0:
                end = time.perf_counter() + settle_s
                while time.perf_counter() < end:
                    fn()
            lst.extend(_time_samples(fn, reps, 1))
    return out


def bare_product_us(B, S, cols, dtype, samples=5, target_s=0.1, seed=0):
    """Median µs of ``numpy.matmul(H, X, out=Y)`` for H (B,S,S), X (B,S,cols)."""
    call = bare_product_call([(B, S, cols)], dtype, seed)
    return statistics.median(_time_samples(call, reps_for(call, target_s), samples))


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


def cpu_info():
    """The CPU the kernels run on, as a timing has to name it: ``model`` (``/proc/cpuinfo``'s
    model name, e.g. "AMD EPYC", or ``platform.processor()``), ``family``/``model_number``
    where the OS gives them, ``llvm`` (LLVM's name for the host CPU, which Numba compiles
    for: "znver3", "znver4", "icelake-server", …) and ``vector`` (the widest SIMD extension
    it compiles for: "AVX-512", "AVX2", "AVX", "NEON" or "SSE"). ``describe`` joins them
    into the one line that reports print."""
    from llvmlite import binding

    info = {"model": platform.processor() or platform.machine() or "unknown CPU",
            "family": None, "model_number": None}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = (t.strip() for t in line.partition(":"))
                if key == "model name":
                    info["model"] = value
                elif key == "cpu family":
                    info["family"] = int(value)
                elif key == "model" and value.isdigit():
                    info["model_number"] = int(value)
                elif not line.strip():
                    break                                  # the first processor is enough
    except (OSError, ValueError):
        pass
    info["llvm"] = binding.get_host_cpu_name()
    features = binding.get_host_cpu_features()
    info["vector"] = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                                   ("avx", "AVX"), ("neon", "NEON"))
                           if features.get(flag)), "SSE")
    fam = (f", family {info['family']} model {info['model_number']}"
           if info["family"] is not None else "")
    info["describe"] = f"{info['model']} ({info['llvm']}{fam}, {info['vector']})"
    return info


def _machine_info():
    import numba
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "cpu": cpu_info()}
    try:
        info["loadavg_start"] = list(os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    return info
