"""The profiler of :mod:`oknumba.profile`: one method × hidden size (:func:`_profile_one`) and
the whole sweep (:func:`profile`)."""
import os
import statistics
import time

import numpy as np

from .._threads import pinned_threads
from ..methods import parse_method_spec
from .breakdown import phase_times
from .compile_timer import compile_time
from .costs import N_IN, N_OUT, _sizes, estimate_bytes, fit_exponent, flops_per_step, product_columns
from .report import _format_row
from .timing import (BLAS_SETTLE_S, _auto_reps, _effective_threads, _machine_info, blas_threads,
                     bare_product_call, interleaved_samples, reps_for)

DEFAULT_METHODS = ("ok:16", "kf", "uoro", "rtrl", "tbptt:10")
DEFAULT_HIDDEN = (32, 64, 128, 256)
#: keys of each entry of ``profile(...)["results"]``
RESULT_KEYS = ("method", "name", "n", "S", "a", "P", "status", "reason", "us_per_step",
               "us_samples", "steps_per_sample", "first_step_s", "gflop_per_step", "gflops",
               "bare_shape", "bare_us", "bare_gflops", "ratio", "est_bytes", "phases")


# --------------------------------------------------------------------------------------
def _layer_shapes(cell, n, layers):
    """``(S, a, P)`` each estimator of the model works on: one cell, or per layer of a stack of
    ``layers`` cells of n units its downstream state (:mod:`oknumba.stack`)."""
    if layers == 1:
        return [_sizes(cell, n)]
    from ..stack import make_stack

    return [(v.S, v.a, v.P) for v in make_stack([cell] * layers, N_IN, [n] * layers, [1] * layers).views()]


def _profile_one(cell, label, name, kwargs, n, batch, dtype, threads, seed, steps, samples,
                 max_step_seconds, max_memory_bytes, sample_seconds, device="cpu", layers=1,
                 breakdown=False):
    from .. import OnlineLearner, RNN

    shapes = _layer_shapes(cell, n, layers)
    S, a, P = shapes[0]
    itemsize = np.dtype(dtype).itemsize
    row = dict.fromkeys(RESULT_KEYS)
    row.update(method=label, name=name, n=n, S=S, a=a, P=P, status="ok")
    row["gflop_per_step"] = sum(flops_per_step(name, kwargs, batch, *sh) for sh in shapes) / 1e9
    row["est_bytes"] = int(sum(estimate_bytes(name, kwargs, batch, *sh, itemsize) for sh in shapes))
    if row["est_bytes"] > max_memory_bytes:
        row.update(status="skipped", reason=f"estimated memory {row['est_bytes'] / 2**30:.1f} GiB"
                   f" > limit {max_memory_bytes / 2**30:.1f} GiB")
        return row

    model = RNN(cell, N_IN, n, N_OUT, seed=seed, dtype=dtype, layers=layers)
    learner = OnlineLearner(model, name, batch=batch, seed=seed, threads=threads, device=device,
                            **kwargs)
    rng = np.random.default_rng(seed)
    pool = 64
    eye = np.eye(N_IN, dtype=dtype)
    xs = np.ascontiguousarray(eye[rng.integers(0, N_IN, size=(pool, batch))])
    ys = rng.integers(0, N_OUT, size=(pool, batch)).astype(np.int64)
    i = [0]

    def step():
        j = i[0] % pool
        learner.step(xs[j], ys[j])
        i[0] += 1

    step()  # compiles (never timed)
    t0 = time.perf_counter_ns()
    step()
    first = (time.perf_counter_ns() - t0) / 1e9
    row["first_step_s"] = first
    if first > max_step_seconds:
        row.update(status="skipped", reason=f"first warm step took {first:.2f} s"
                   f" > max_step_seconds={max_step_seconds:g}")
        return row
    period = learner.update_every
    for _ in range(max(2, period + 1)):  # at least one optimizer update / TBPTT backward
        step()
    if steps is None:
        t0 = time.perf_counter_ns()
        for _ in range(period):
            step()
        per = (time.perf_counter_ns() - t0) / 1e9 / period
        reps = _auto_reps(per, sample_seconds)
    else:
        reps = int(steps)
    reps = -(-reps // period) * period  # whole update periods (TBPTT backward amortised)
    cols = [product_columns(name, kwargs, a_l, P_l) for _, a_l, P_l in shapes]
    timed = [(step, reps)]
    if None not in cols:                # a stack: the sum of its layers' bare products
        bare_shapes = [(batch, S_l, c) for (S_l, _, _), c in zip(shapes, cols)]
        bare = bare_product_call(bare_shapes, dtype, seed)
        timed.append((bare, reps_for(bare, min(sample_seconds, 0.1))))
    # the step's and the bare product's samples alternate: a change of load hits both alike;
    # with several BLAS threads each sample first waits out the other's spinning BLAS workers
    settle = BLAS_SETTLE_S if len(timed) > 1 and blas_threads() > 1 else 0.0
    us, *bare_us = interleaved_samples(timed, samples, settle)
    row.update(us_per_step=statistics.median(us), us_samples=us, steps_per_sample=reps)
    row["gflops"] = row["gflop_per_step"] / (row["us_per_step"] * 1e-6)
    if bare_us:
        row["bare_shape"] = " + ".join(f"({B},{S_l},{S_l})@({B},{S_l},{c})" for B, S_l, c in bare_shapes)
        row["bare_us"] = statistics.median(bare_us[0])
        row["bare_gflops"] = row["gflop_per_step"] / (row["bare_us"] * 1e-6)
        row["ratio"] = row["us_per_step"] / row["bare_us"]
    if breakdown:
        row["phases"] = phase_times(learner, xs, ys, reps, samples, row["us_per_step"], row["bare_us"])
    return row


def profile(cell="rhn", methods=DEFAULT_METHODS, hidden=DEFAULT_HIDDEN, batch=16, threads=None,
            dtype="float64", steps=None, samples=5, seed=0, max_step_seconds=2.0,
            max_memory_gib=4.0, sample_seconds=0.2, compile_seconds=False, progress=None,
            device="cpu", layers=1, breakdown=False):
    """Per-step cost of ``OnlineLearner.step`` for each method × hidden size.

    Parameters
    ----------
    cell : {"vanilla", "lstm", "gru", "rhn"}
    methods : sequence of str
        Method specs (see :func:`parse_method_spec`), e.g. ``("ok:16", "kf", "tbptt:10")``.
    hidden : sequence of int
        Hidden sizes n; the model is ``RNN(cell, 4, n, 4, dtype=dtype, layers=layers)``.
    breakdown : bool
        Also time each phase inside the steps (:mod:`oknumba.profile.breakdown`): each
        result then has ``phases`` (µs per step of cell, readout, estimator, its bare products
        and the rest, optimizer, and the remaining Python glue).
    layers : int
        Stacked layers of n units each; the bare products are then the sum over the layers'
        (each over its downstream state: S_down,l × S_down,l × cols_l).
    batch : int
        Streams B.
    threads : int or None
        Numba and BLAS threads for everything (None: leave the process's settings).
    dtype : {"float32", "float64"}
    steps : int or None
        Steps per timing sample (rounded up to whole update periods); None picks about
        ``sample_seconds`` worth from the first timings.
    samples : int
        Timing samples per combination (the median is reported).
    seed : int
    max_step_seconds : float
        Skip a combination whose first warm step takes longer.
    max_memory_gib : float
        Skip a combination whose estimated memory is larger (nothing is allocated).
    sample_seconds : float
        Target length of one sample when ``steps`` is None.
    compile_seconds : bool
        Also time the first step of ``methods[0]`` at ``hidden[0]`` in fresh subprocesses,
        with the on-disk cache and without it (``OKNUMBA_CACHE=0``).
    progress : callable, optional
        Called with a one-line message per finished combination.

    Returns
    -------
    dict
        ``config`` (the arguments), ``machine`` (versions, cpu count, load averages at start
        and end, effective threads), ``results`` (one dict per method × n with the keys of
        :data:`RESULT_KEYS`: ``us_per_step`` median µs, ``us_samples``, ``gflop_per_step``,
        ``gflops``, ``bare_us``/``bare_gflops``/``ratio`` (None for uoro/tbptt),
        ``status`` ``"ok"`` or ``"skipped"`` with ``reason``), ``exponents`` (per method
        label: :func:`fit_exponent` of µs/step, or None) and ``bare_exponents`` (same for the
        bare products), ``compile`` (None or ``{"cached": ..., "uncached": ...}`` from
        :func:`compile_time`) and ``notes`` (list of str).
    """
    specs = [parse_method_spec(m) for m in methods]
    if not specs:
        raise ValueError("methods must name at least one method")
    _sizes(cell, 1)   # validates the cell name
    hidden = [int(n) for n in hidden]
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden sizes must be integers >= 1, got {hidden}")
    for val, what in ((batch, "batch"), (samples, "samples")):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{what} must be an integer >= 1, got {val!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                              or steps < 1):
        raise ValueError(f"steps must be an integer >= 1 or None, got {steps!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if not max_step_seconds > 0 or not max_memory_gib > 0:
        raise ValueError("max_step_seconds and max_memory_gib must be > 0")

    if isinstance(layers, bool) or not isinstance(layers, (int, np.integer)) or layers < 1:
        raise ValueError(f"layers must be an integer >= 1, got {layers!r}")
    config = dict(cell=cell, methods=[s[0] for s in specs], hidden=hidden, batch=int(batch), layers=int(layers),
                  breakdown=bool(breakdown),
                  threads=threads, dtype=dtype.name, steps=steps, samples=int(samples), seed=seed,
                  max_step_seconds=max_step_seconds, max_memory_gib=max_memory_gib,
                  sample_seconds=sample_seconds)
    machine = _machine_info()
    results, notes = [], []
    with pinned_threads(threads):
        machine["threads"] = _effective_threads()
        for label, name, kwargs in specs:
            for n in hidden:
                row = _profile_one(cell, label, name, kwargs, n, int(batch), dtype, threads, seed,
                                   steps, int(samples), max_step_seconds,
                                   max_memory_gib * 2 ** 30, sample_seconds, device=device,
                                   layers=int(layers), breakdown=bool(breakdown))
                results.append(row)
                if row["status"] != "ok":
                    notes.append(f"skipped {label} n={n}: {row['reason']}")
                if progress is not None:
                    progress(_format_row(row))
        compile_info = None
        if compile_seconds:
            compile_info = {key: compile_time(cell, specs[0][0], hidden[0], batch, dtype.name,
                                              threads, cache=cache)
                            for key, cache in (("cached", True), ("uncached", False))}
    try:
        machine["loadavg_end"] = list(os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    exponents, bare_exponents = {}, {}
    for label, _, _ in specs:
        rows = [r for r in results if r["method"] == label and r["status"] == "ok"]
        exponents[label] = fit_exponent([r["n"] for r in rows], [r["us_per_step"] for r in rows])
        bare = [r for r in rows if r["bare_us"] is not None]
        bare_exponents[label] = (fit_exponent([r["n"] for r in bare], [r["bare_us"] for r in bare])
                                 if bare else None)
    if (machine.get("loadavg_start") or [0])[0] > 0.5 * (os.cpu_count() or 1):
        notes.append(f"1-min load average was {machine['loadavg_start'][0]:.2f} at start on"
                     f" {os.cpu_count()} CPUs: other processes compete, timings are noisy")
    return dict(config=config, machine=machine, results=results, exponents=exponents,
                bare_exponents=bare_exponents, compile=compile_info, notes=notes)
