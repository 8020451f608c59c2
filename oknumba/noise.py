"""Gradient-noise measurement against exact RTRL on a frozen-weight trajectory.

For each estimator and step t, averaged over estimator seeds and streams:

* ``influence``: ``E‖G̃_t − G_t‖_F² / ‖G_t‖_F²`` (per stream, then averaged);
* ``gradient``: the same for the step's loss gradient ``g_t = Σ_b δ_bᵀ G_b`` (a×P);
* ``cosine``: the mean cosine between the estimated and the exact ``g_t``.

``G̃`` is read through each estimator's ``dense()``, so keep sizes small.
"""
import numbers

import numpy as np

from ._validate import check_positive_int
from .estimators import ESTIMATORS, make_estimator
from .functional import _check_model, run_estimator, validate_sequence
from .methods import parse_method_spec


def parse_method(spec):
    """``"ok:8"`` → ``("ok", 8)``; ``"uoro"`` → ``("uoro", None)``; ``(name, rank)`` tuples
    pass through — one of the online estimators (:func:`oknumba.methods.parse_method_spec`)."""
    if not isinstance(spec, (str, tuple)):
        raise TypeError(f"method specs must be strings like 'ok:8' or (name, rank) tuples, got {spec!r}")
    _, method, kwargs = parse_method_spec(spec)
    if method not in ESTIMATORS:
        raise ValueError(f"method {method!r} in {spec!r} is not an online estimator; the noise study"
                         f" takes {sorted(ESTIMATORS)}")
    return method, kwargs.get("rank")


def _label(method, rank):
    return method if rank is None else f"{method}:{rank}"


def measure_noise(model, xs, methods, seeds=100, ys=None, resets=None, burn_in=0):
    """Measure approximation noise of online estimators against exact RTRL.

    Parameters
    ----------
    model : oknumba.RNN
        Frozen during the measurement.
    xs : ndarray (T, B, n_in)
    methods : list of str or (name, rank)
        E.g. ``["uoro", "kf", "ok:1", "kf-avg:8", "ok:8"]``.
    seeds : int or sequence of int
        Estimator seeds (an int N means ``range(N)``).
    ys : ndarray (T, B) of class ids, or (T, B, n_out) real values for a linear readout, optional
        Targets defining the loss gradients; default (seed 0): uniform random classes, or
        standard normal values for a linear readout.
    resets : ndarray (T, B) bool, optional
    burn_in : int
        Steps excluded from the ``summary`` averages.

    Returns
    -------
    dict
        ``{label: {"influence": (T,), "gradient": (T,), "cosine": (T,), "summary": {...}}}``
        with labels like ``"ok:8"``; ``summary`` holds the means over ``t >= burn_in``.
    """
    W, V = _check_model(model)
    if model.layers > 1:
        raise ValueError(f"measure_noise studies one recurrent layer; this model stacks {model.layers}"
                         " (compare a stack's methods with sequence_grad against 'rtrl')")
    if ys is None:
        x = np.asarray(xs)
        rng = np.random.default_rng(0)
        if model.readout.name == "softmax":
            ys = rng.integers(0, model.n_out, size=x.shape[:2])
        else:
            ys = rng.standard_normal(x.shape[:2] + (model.n_out,))
    xs, ys, resets = validate_sequence(model, xs, ys, resets)
    T, B = ys.shape[:2]
    seeds = list(range(check_positive_int(seeds, "seeds"))) if isinstance(seeds, numbers.Integral) else list(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if not 0 <= burn_in < T:
        raise ValueError(f"burn_in must be in [0, T-1] = [0, {T - 1}], got {burn_in}")
    specs = [parse_method(m) for m in methods]

    def recorder(store_G, store_g):
        def on_step(t, est, delta):
            store_G[t] = est.dense()
            g = np.zeros_like(W)
            est.add_gradient(delta, g)
            store_g[t] = g
        return on_step

    cell = model.cell
    G_exact = np.zeros((T, B, cell.S, cell.a, cell.P))
    g_exact = np.zeros((T,) + W.shape)
    run_estimator(model, W, V, xs, ys, resets, make_estimator("rtrl", cell, B, model.dtype),
                  recorder(G_exact, g_exact))
    G_norm = np.einsum("tbsap,tbsap->tb", G_exact, G_exact)
    g_norm = np.einsum("tap,tap->t", g_exact, g_exact)
    results = {}
    G_est = np.zeros_like(G_exact)
    g_est = np.zeros_like(g_exact)
    for method, rank in specs:
        infl = np.zeros(T)
        grad = np.zeros(T)
        cos = np.zeros(T)
        for seed in seeds:
            est = make_estimator(method, cell, B, model.dtype, rank=rank, seed=seed)
            run_estimator(model, W, V, xs, ys, resets, est, recorder(G_est, g_est))
            err = np.einsum("tbsap->tb", (G_est - G_exact) ** 2)
            infl += np.mean(np.where(G_norm > 0, err / np.where(G_norm > 0, G_norm, 1), 0.0), axis=1)
            gerr = np.einsum("tap->t", (g_est - g_exact) ** 2)
            grad += np.where(g_norm > 0, gerr / np.where(g_norm > 0, g_norm, 1), 0.0)
            dot = np.einsum("tap,tap->t", g_est, g_exact)
            nn = np.sqrt(np.einsum("tap,tap->t", g_est, g_est) * g_norm)
            cos += np.where(nn > 0, dot / np.where(nn > 0, nn, 1), 0.0)
        n = len(seeds)
        res = {"influence": infl / n, "gradient": grad / n, "cosine": cos / n}
        res["summary"] = {k: float(np.mean(v[burn_in:])) for k, v in res.items()}
        res["summary"]["influence_last"] = float(res["influence"][-1])
        results[_label(method, rank)] = res
    return results


def format_noise_table(results):
    """A plain-text table of the ``summary`` of :func:`measure_noise`."""
    lines = [f"{'method':<14}{'infl. err (last)':>18}{'infl. err (mean)':>18}{'grad. err':>12}{'cosine':>9}"]
    for label, r in results.items():
        s = r["summary"]
        lines.append(f"{label:<14}{s['influence_last']:>18.3e}{s['influence']:>18.3e}"
                     f"{s['gradient']:>12.3e}{s['cosine']:>9.4f}")
    return "\n".join(lines)
