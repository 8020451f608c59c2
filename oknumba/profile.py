"""Per-step cost of the online methods against hidden size: ``python -m oknumba.profile``.

For each method × hidden size n this measures the median wall time of one whole
:meth:`oknumba.OnlineLearner.step` (forward, Jacobians, estimator update, gradient, optimizer
step, input checks — everything a user pays), the achieved GFLOP/s of the method's dominant
product, and the ratio of the step to the **bare product** — ``numpy.matmul`` of stacked
matrices of the same shapes, timed in the same process with the same dtype and threads.
A ratio near 1 means the step is as fast as its dominant GEMM allows; a large ratio points at
overhead (Python calls, reductions, memory traffic) outside that product.

Only public APIs are used (:class:`oknumba.RNN`, :class:`oknumba.OnlineLearner`,
:func:`oknumba._threads.pinned_threads`), so the profile stays valid while kernels change.

Sizes (``a, P = model.params["W"].shape``): ``a = n_in + n + 1`` input rows, ``P`` = gate
blocks × n (vanilla 1, rhn 2, gru 3, lstm 4), ``S`` = state size (n; 2n for the LSTM), ``B``
streams. Flops counted per step (multiply-add = 2 flops), summed over the B streams:

==========================  ===================  ======================================
method                      flops per stream     bare product (stacked over B)
==========================  ===================  ======================================
``ok:r``, ``ok-truncated:r``,  ``2·r·S²·P``      ``(B,S,S) @ (B,S,r·P)``
``kf-avg:r``
``kf``                      ``2·S²·P``           ``(B,S,S) @ (B,S,P)``
``rtrl``                    ``2·S²·a·P``         ``(B,S,S) @ (B,S,a·P)``
``uoro``                    ``6·a·P`` (nominal)  none (ratio ``None``)
``tbptt:k``                 ``4·a·P + 2·S²``     none (ratio ``None``)
                            (nominal)
==========================  ===================  ======================================

The UORO count is the forward ``[x, h, 1]·W`` product, the tangent through the cell's
Jacobian-vector product and the rank-one parameter-factor update/gradient, each taken as one
a×P pass; the TBPTT count is the forward product plus, amortised per step, the backward
``δ·H`` product and the ``ĥ ⊗ (δ D)`` weight-gradient outer product. Both are nominal (a
one-hot input makes the forward cheaper); only the product methods' counts are exact for
their dominant term. Jacobian fills (``H``), reductions (QR/SVD of OK) and the optimizer are
not counted but are in the timed step.

Measurement: inputs are one-hot random vectors and random targets, pre-generated (a pool
cycled through); the first step compiles (never timed); the next one is timed alone and
checked against ``max_step_seconds`` (the combination is skipped if slower); after more
warm-up steps (at least one full update period, so TBPTT's backward pass is compiled too),
``samples`` samples of ``steps`` consecutive steps each are timed with
:func:`time.perf_counter_ns` with the garbage collector off; the median per-step time is
reported. Combinations whose estimated memory exceeds ``max_memory_gib`` are skipped before
anything is allocated (exact RTRL holds two ``B·S·a·P`` influence buffers). Everything runs
inside ``pinned_threads(threads)`` so Numba and both BLAS libraries use the same count.

The exponent of cost against n is fitted per method by least squares on log-log axes
(:func:`fit_exponent`); the sizes used are reported with it.
"""
import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from ._argtypes import positive_float as _positive_float
from ._argtypes import positive_int as _positive_int
from ._threads import pinned_threads
from .methods import method_info, parse_method_list, parse_method_spec, spec_forms

DEFAULT_METHODS = ("ok:16", "kf", "uoro", "rtrl", "tbptt:10")
DEFAULT_HIDDEN = (32, 64, 128, 256)
N_IN = N_OUT = 4
#: keys of each entry of ``profile(...)["results"]``
RESULT_KEYS = ("method", "name", "n", "S", "a", "P", "status", "reason", "us_per_step",
               "us_samples", "steps_per_sample", "first_step_s", "gflop_per_step", "gflops",
               "bare_shape", "bare_us", "bare_gflops", "ratio", "est_bytes")


# --------------------------------------------------------------------------------------
# sizes and cost models: read from the cell and method registries
def _sizes(cell, n):
    """(S, a, P) for a cell of n hidden units and N_IN inputs."""
    from .cells import CELLS

    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    cls = CELLS[cell]
    return cls.state_factor * n, N_IN + n + 1, cls.n_blocks * n


def product_columns(name, kwargs, a, P):
    """Columns of the bare product's right factor ``(B, S, cols)``, or None (no product)."""
    return method_info(name).product_columns(kwargs, a, P)


def flops_per_step(name, kwargs, B, S, a, P):
    """Counted flops of one step over B streams (:mod:`oknumba.methods`)."""
    return method_info(name).flops(kwargs, B, S, a, P)


def estimate_bytes(name, kwargs, B, S, a, P, itemsize):
    """Rough peak bytes of the learner (or of the bare product, whichever is larger)."""
    return method_info(name).memory(kwargs, B, S, a, P, itemsize)


# --------------------------------------------------------------------------------------
# fitting
def fit_exponent(sizes, costs):
    """Least-squares fit of ``cost = c · n^e`` on log-log axes.

    Returns ``{"exponent": e, "prefactor": c, "sizes": [...]}`` using the pairs with finite,
    positive cost, or None when fewer than two distinct sizes remain.
    """
    pairs = [(float(n), float(c)) for n, c in zip(sizes, costs)
             if c is not None and math.isfinite(c) and c > 0 and n > 0]
    if len({n for n, _ in pairs}) < 2:
        return None
    x = np.log([n for n, _ in pairs])
    y = np.log([c for _, c in pairs])
    slope, intercept = np.polyfit(x, y, 1)
    return {"exponent": float(slope), "prefactor": float(math.exp(intercept)),
            "sizes": [int(n) if float(n).is_integer() else n for n, _ in pairs]}


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


# --------------------------------------------------------------------------------------
def _profile_one(cell, label, name, kwargs, n, batch, dtype, threads, seed, steps, samples,
                 max_step_seconds, max_memory_bytes, sample_seconds, bare_cache, device="cpu"):
    from . import OnlineLearner, RNN

    S, a, P = _sizes(cell, n)
    itemsize = np.dtype(dtype).itemsize
    row = dict.fromkeys(RESULT_KEYS)
    row.update(method=label, name=name, n=n, S=S, a=a, P=P, status="ok")
    row["gflop_per_step"] = flops_per_step(name, kwargs, batch, S, a, P) / 1e9
    row["est_bytes"] = int(estimate_bytes(name, kwargs, batch, S, a, P, itemsize))
    if row["est_bytes"] > max_memory_bytes:
        row.update(status="skipped", reason=f"estimated memory {row['est_bytes'] / 2**30:.1f} GiB"
                   f" > limit {max_memory_bytes / 2**30:.1f} GiB")
        return row

    model = RNN(cell, N_IN, n, N_OUT, seed=seed, dtype=dtype)
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
    us = _time_samples(step, reps, samples)
    row.update(us_per_step=statistics.median(us), us_samples=us, steps_per_sample=reps)
    row["gflops"] = row["gflop_per_step"] / (row["us_per_step"] * 1e-6)
    del learner, model
    cols = product_columns(name, kwargs, a, P)
    if cols is not None:
        key = (S, cols, np.dtype(dtype).name)
        if key not in bare_cache:
            bare_cache[key] = bare_product_us(batch, S, cols, dtype, samples=samples,
                                              target_s=min(sample_seconds, 0.1), seed=seed)
        row["bare_shape"] = f"({batch},{S},{S})@({batch},{S},{cols})"
        row["bare_us"] = bare_cache[key]
        row["bare_gflops"] = row["gflop_per_step"] / (row["bare_us"] * 1e-6)
        row["ratio"] = row["us_per_step"] / row["bare_us"]
    return row


_COMPILE_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import oknumba
from oknumba._threads import pinned_threads
t1 = time.perf_counter()
cfg = json.loads(sys.argv[1])
model = oknumba.RNN(cfg["cell"], 4, cfg["n"], 4, dtype=cfg["dtype"])
learner = oknumba.OnlineLearner(model, cfg["name"], batch=cfg["batch"], **cfg["kwargs"])
x = np.eye(4, dtype=cfg["dtype"])[np.arange(cfg["batch"]) % 4]
y = np.arange(cfg["batch"]) % 4
with pinned_threads(cfg["threads"]):
    t2 = time.perf_counter()
    learner.step(x, y)
    t3 = time.perf_counter()
    learner.step(x, y)
    t4 = time.perf_counter()
print("RESULT" + json.dumps({"import_s": t1 - t0, "build_s": t2 - t1,
                             "first_step_s": t3 - t2, "second_step_s": t4 - t3}))
"""


def compile_time(cell="rhn", method="ok:16", hidden=32, batch=16, dtype="float64", threads=None,
                 cache=True, timeout=600):
    """First-step time of a fresh ``python -c`` process (import, build, first and second
    :meth:`~oknumba.OnlineLearner.step`). ``cache=False`` sets ``OKNUMBA_CACHE=0``, so every
    kernel really compiles; with the cache on, a warm on-disk cache is only loaded.

    Returns a dict with ``import_s``, ``build_s``, ``first_step_s``, ``second_step_s``,
    ``wall_s`` (whole subprocess) and ``cache``.
    """
    label, name, kwargs = parse_method_spec(method)
    cfg = dict(cell=cell, n=int(hidden), batch=int(batch), dtype=np.dtype(dtype).name,
               name=name, kwargs=kwargs, threads=threads)
    env = dict(os.environ)
    if not cache:
        env["OKNUMBA_CACHE"] = "0"
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT, json.dumps(cfg)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"compile-time subprocess failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    out = json.loads(lines[-1][len("RESULT"):])
    out.update(wall_s=wall, cache=bool(cache), config=f"{cell} n={hidden} {label} batch={batch} {cfg['dtype']}")
    return out


def profile(cell="rhn", methods=DEFAULT_METHODS, hidden=DEFAULT_HIDDEN, batch=16, threads=None,
            dtype="float64", steps=None, samples=5, seed=0, max_step_seconds=2.0,
            max_memory_gib=4.0, sample_seconds=0.2, compile_seconds=False, progress=None,
            device="cpu"):
    """Per-step cost of ``OnlineLearner.step`` for each method × hidden size.

    Parameters
    ----------
    cell : {"vanilla", "lstm", "gru", "rhn"}
    methods : sequence of str
        Method specs (see :func:`parse_method_spec`), e.g. ``("ok:16", "kf", "tbptt:10")``.
    hidden : sequence of int
        Hidden sizes n; the model is ``RNN(cell, 4, n, 4, dtype=dtype)``.
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
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"steps must be an integer >= 1 or None, got {steps!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if not max_step_seconds > 0 or not max_memory_gib > 0:
        raise ValueError("max_step_seconds and max_memory_gib must be > 0")

    config = dict(cell=cell, methods=[s[0] for s in specs], hidden=hidden, batch=int(batch),
                  threads=threads, dtype=dtype.name, steps=steps, samples=int(samples), seed=seed,
                  max_step_seconds=max_step_seconds, max_memory_gib=max_memory_gib,
                  sample_seconds=sample_seconds)
    machine = _machine_info()
    results, notes, bare_cache = [], [], {}
    with pinned_threads(threads):
        machine["threads"] = _effective_threads()
        for label, name, kwargs in specs:
            for n in hidden:
                row = _profile_one(cell, label, name, kwargs, n, int(batch), dtype, threads, seed,
                                   steps, int(samples), max_step_seconds,
                                   max_memory_gib * 2 ** 30, sample_seconds, bare_cache, device=device)
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
        bare_exponents[label] = fit_exponent([r["n"] for r in bare], [r["bare_us"] for r in bare]) if bare else None
    if (machine.get("loadavg_start") or [0])[0] > 0.5 * (os.cpu_count() or 1):
        notes.append(f"1-min load average was {machine['loadavg_start'][0]:.2f} at start on"
                     f" {os.cpu_count()} CPUs: other processes compete, timings are noisy")
    return dict(config=config, machine=machine, results=results, exponents=exponents,
                bare_exponents=bare_exponents, compile=compile_info, notes=notes)


# --------------------------------------------------------------------------------------
# output
def _fmt(v, spec):
    if v is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width) if width.isdigit() else 0)
    return format(v, spec)


_HEADER = (f"{'method':<16}{'n':>6}{'µs/step':>13}{'GFLOP/s':>10}{'bare µs':>12}"
           f"{'bare GF/s':>11}{'ratio':>8}")


def _format_row(r):
    if r["status"] != "ok":
        return f"{r['method']:<16}{r['n']:>6}  skipped: {r['reason']}"
    return (f"{r['method']:<16}{r['n']:>6}{_fmt(r['us_per_step'], '13.1f')}{_fmt(r['gflops'], '10.2f')}"
            f"{_fmt(r['bare_us'], '12.1f')}{_fmt(r['bare_gflops'], '11.2f')}{_fmt(r['ratio'], '8.2f')}")


def format_profile(result):
    """The printed report: table, fitted exponents, compile times and notes."""
    c, m = result["config"], result["machine"]
    lines = [f"cell={c['cell']} batch={c['batch']} dtype={c['dtype']} threads={c['threads']}"
             f" (numba {m['threads']['numba']}, blas {[t[2] for t in m['threads']['blas']] if isinstance(m['threads']['blas'], list) else m['threads']['blas']})"
             f" samples={c['samples']} cpus={m.get('cpu_count')}"
             f" load={_fmt((m.get('loadavg_start') or [None])[0], '.2f')}->{_fmt((m.get('loadavg_end') or [None])[0], '.2f')}",
             _HEADER]
    lines += [_format_row(r) for r in result["results"]]
    lines.append("")
    lines.append("fitted exponent of µs/step ~ n^e (least squares on log-log):")
    for label, fit in result["exponents"].items():
        bare = result["bare_exponents"].get(label)
        bare_txt = f"   bare product e = {bare['exponent']:.2f}" if bare else ""
        if fit is None:
            lines.append(f"  {label:<16}too few sizes")
        else:
            lines.append(f"  {label:<16}e = {fit['exponent']:.2f}  (n = {', '.join(map(str, fit['sizes']))}){bare_txt}")
    if result.get("compile"):
        for key, ci in result["compile"].items():
            lines.append(f"compile ({key}, {ci['config']}): import {ci['import_s']:.2f} s, first step"
                         f" {ci['first_step_s']:.2f} s, second step {ci['second_step_s'] * 1e3:.1f} ms,"
                         f" process {ci['wall_s']:.2f} s")
    lines += [f"note: {t}" for t in result["notes"]]
    return "\n".join(lines)


def write_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def plot_profile(result, path):
    """Log-log PNG of µs/step (solid) and bare product µs (dashed) against n. Returns False
    (and writes nothing) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    c = result["config"]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for label in result["exponents"]:
        rows = [r for r in result["results"] if r["method"] == label and r["status"] == "ok"]
        if not rows:
            continue
        fit = result["exponents"][label]
        lbl = label + (f" (n^{fit['exponent']:.2f})" if fit else "")
        line, = ax.loglog([r["n"] for r in rows], [r["us_per_step"] for r in rows], "o-", label=lbl)
        bare = [r for r in rows if r["bare_us"] is not None]
        if bare:
            ax.loglog([r["n"] for r in bare], [r["bare_us"] for r in bare], "--", color=line.get_color(),
                      alpha=0.6)
    sizes = sorted({r["n"] for r in result["results"] if r["status"] == "ok"})
    if sizes:
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xticks([], minor=True)
    ax.set_xlabel("hidden units n")
    ax.set_ylabel("µs per step")
    ax.set_title(f"{c['cell']}, batch {c['batch']}, {c['dtype']}, threads {c['threads']}"
                 " (dashed: bare product)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------
# command line
def _int_list(text):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return vals


def _method_list(text):
    try:
        return parse_method_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_DESCRIPTION = ("Measure the median µs per OnlineLearner.step for each method and hidden size,"
                " the achieved GFLOP/s of the dominant product, and the ratio of the step to the"
                " bare numpy.matmul of the same shapes (timed in the same process, same dtype and"
                " threads). Prints a table and the fitted exponent of cost against n.")


def _add_arguments(p):
    from .cells import CELLS

    p.add_argument("--cell", default="rhn", choices=sorted(CELLS), help="recurrent cell (default: rhn)")
    p.add_argument("--methods", type=_method_list, default=list(DEFAULT_METHODS),
                   help=f"comma-separated method specs: {spec_forms()}"
                        f" (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--hidden", type=_int_list, default=list(DEFAULT_HIDDEN),
                   help="comma-separated hidden sizes n (default: 32,64,128,256)")
    p.add_argument("--batch", type=_positive_int, default=16, help="independent streams B (default: 16)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="Numba and BLAS threads for the whole run (default: leave as configured)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"], help="floating-point type (default: float64)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="run the learners on the CPU or a CUDA GPU (default: cpu)")
    p.add_argument("--samples", type=_positive_int, default=5, help="timing samples per combination; the median"
                   " is reported (default: 5)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="steps per sample (default: about 0.2 s worth, from the first timings)")
    p.add_argument("--max-step-seconds", type=_positive_float, default=2.0,
                   help="skip a combination whose first warm step takes longer (default: 2)")
    p.add_argument("--max-memory-gib", type=_positive_float, default=4.0,
                   help="skip a combination whose estimated memory is larger (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of model, inputs and estimators (default: 0)")
    p.add_argument("--compile-time", action="store_true",
                   help="also time the first step of the first method at the first size in fresh"
                        " subprocesses, with and without the on-disk kernel cache (default: off)")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON (default: none)")
    p.add_argument("--png", metavar="PATH", help="write a log-log plot, needs matplotlib (default: none)")
    p.add_argument("--quiet", action="store_true", help="no per-combination progress lines (default: off)")
    return p


def add_profile_parser(subparsers):
    """Add the ``profile`` sub-command to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser("profile", help="per-step cost of the online methods against hidden size",
                              description=_DESCRIPTION)
    _add_arguments(p)
    p.set_defaults(func=run_profile_cli)
    return p


def run_profile_cli(args):
    """Run :func:`profile` from parsed arguments, print the report; returns the exit code."""
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if progress is not None:
        print(_HEADER, file=sys.stderr, flush=True)
    result = profile(cell=args.cell, methods=args.methods, hidden=args.hidden, batch=args.batch,
                     threads=args.threads, dtype=args.dtype, steps=args.steps, samples=args.samples,
                     seed=args.seed, max_step_seconds=args.max_step_seconds,
                     max_memory_gib=args.max_memory_gib, compile_seconds=args.compile_time,
                     progress=progress, device=args.device)
    print(format_profile(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.png:
        if plot_profile(result, args.png):
            print(f"wrote {args.png}")
        else:
            print("matplotlib is not installed: no plot written (pip install matplotlib)")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="python -m oknumba.profile", description=_DESCRIPTION)
    return _add_arguments(p)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_profile_cli(args)


if __name__ == "__main__":
    sys.exit(main())
