"""The plain-NumPy baseline of the benchmarks (``benchmarks/benchmarks/_plain_numpy.py``)
computes what oknumba computes, so the speed-up tracked against it compares equal work."""
import importlib.util
import pathlib

import numpy as np
import pytest

from oknumba import RNN, OnlineLearner

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "benchmarks" / "_plain_numpy.py"
_spec = importlib.util.spec_from_file_location("_plain_numpy", _PATH)
plain = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plain)


def _pair(method, n=7, n_in=3, n_out=4, seed=1):
    model = RNN("vanilla", n_in, n, n_out, seed=seed, init="normal", init_scale=0.4)
    ours = OnlineLearner(model, method, batch=1, lr=3e-3, threads=1)
    base = plain.PlainLearner(model.params["W"], model.params["V"], n_in, method, lr=3e-3)
    return model, ours, base


def _inputs(steps, n_in, n_out, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(steps, n_in)), rng.integers(0, n_out, size=steps)


def test_rtrl_matches_oknumba_step_for_step():
    model, ours, base = _pair("rtrl")
    xs, ys = _inputs(60, 3, 4)
    for x, y in zip(xs, ys):
        lo = ours.step(x[None], np.array([y]))
        lb = base.step(x, y)
        assert abs(lo - lb) <= 1e-11 * max(1.0, abs(lo))
    np.testing.assert_allclose(base.W, model.params["W"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(base.V, model.params["V"], rtol=0, atol=1e-12)
    # the influence itself: oknumba's dense (B, S, a, P) against the baseline's (S, a, P)
    np.testing.assert_allclose(base.G, ours.estimator.dense()[0], rtol=0, atol=1e-12)


def test_kf_first_step_is_exact():
    """From a zero influence one KF step keeps the single term ``ĥ ⊗ D`` exactly: its gradient
    and influence equal RTRL's."""
    _, _, base = _pair("kf")
    _, _, ref = _pair("rtrl")
    x, y = _inputs(1, 3, 4)
    base.step(x[0], y[0])
    ref.step(x[0], y[0])
    np.testing.assert_allclose(base.W, ref.W, rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.einsum("a,pj->paj", base.u, base.A), ref.G, rtol=0, atol=1e-14)


def test_uoro_first_step_is_unbiased():
    """One UORO step from zero gives ``s̃θ̃ᵀ = ν νᵀ F``: over 4000 sign draws its mean is
    RTRL's ``F`` (z-test; entries with ``ν_p² = 1`` are exact for every draw)."""
    model, _, ref = _pair("rtrl")
    x, y = _inputs(1, 3, 4)
    ref.step(x[0], y[0])
    draws = []
    for seed in range(4000):
        base = plain.PlainLearner(model.params["W"], model.params["V"], 3, "uoro", seed=seed)
        base.step(x[0], y[0])
        draws.append(np.einsum("p,aj->paj", base.s_tilde, base.theta))
    draws = np.array(draws)
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
    z = np.abs(mean - ref.G) / np.maximum(se, 1e-12)
    assert z.max() < 5.5, z.max()
