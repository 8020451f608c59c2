"""The cell and method registries: a cell defined outside the package, registered in one place,
reaches ``RNN``, every estimator, the command line and ``profile``; the method registry is
the one source of method names, hyper-parameters and spec parsing."""
import numpy as np
import pytest
from numba import njit

import oknumba
from conftest import rel_err
from oknumba import cells
from oknumba.cells import Cell, CellKernels, register_cell
from oknumba.methods import METHODS, method_names, parse_method_list, parse_method_spec

ALPHA = 0.5


# --- a leaky tanh cell, written as a user would: h = (1 − α) h₋ + α tanh(ĥ W) -------------
@njit(cache=True)
def _forward(W, x, s_prev, s, rows, aux):
    n_in, n = x.shape[1], s.shape[1]
    for b in range(x.shape[0]):
        for q in range(n_in):
            rows[b, 0, q] = x[b, q]
        for q in range(n):
            rows[b, 0, n_in + q] = s_prev[b, q]
        rows[b, 0, n_in + n] = 1.0
        for j in range(n):
            acc = 0.0
            for q in range(rows.shape[2]):
                acc += rows[b, 0, q] * W[q, j]
            aux[b, j] = acc
            s[b, j] = (1.0 - ALPHA) * s_prev[b, j] + ALPHA * np.tanh(acc)


@njit(cache=True)
def _fill_D(W, s_prev, s, rows, aux, D):
    D[:] = 0.0
    for b in range(s.shape[0]):
        for j in range(s.shape[1]):
            c = np.tanh(aux[b, j])
            D[b, 0, j, j] = ALPHA * (1.0 - c * c)


@njit(cache=True)
def _fill_H(W, s_prev, s, rows, aux, H):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    for b in range(s.shape[0]):
        for j in range(n):
            c = np.tanh(aux[b, j])
            d = ALPHA * (1.0 - c * c)
            for i in range(n):
                H[b, j, i] = d * W[n_in + i, j]
            H[b, j, j] += 1.0 - ALPHA


@njit(cache=True)
def _jvp(W, s_prev, s, rows, aux, v, out):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    for b in range(s.shape[0]):
        for j in range(n):
            c = np.tanh(aux[b, j])
            acc = 0.0
            for i in range(n):
                acc += v[b, i] * W[n_in + i, j]
            out[b, j] = ALPHA * (1.0 - c * c) * acc + (1.0 - ALPHA) * v[b, j]


class Leaky(Cell):
    name = "leaky"
    kernels = CellKernels(_forward, _fill_D, _fill_H, _jvp)


@pytest.fixture
def leaky():
    register_cell(Leaky)            # the one change a new cell needs
    yield "leaky"
    cells.CELLS.pop("leaky", None)


def _sequence(model, T=12, B=2, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, model.n_in))
    ys = rng.integers(0, model.n_out, size=(T, B))
    resets = rng.random((T, B)) < 0.1
    return xs, ys, resets


def test_user_cell_exact_gradients(leaky):
    model = oknumba.RNN(leaky, 3, 5, 3, seed=1, init="normal", init_scale=0.5)
    xs, ys, resets = _sequence(model)
    _, g_bptt = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    _, g_rtrl = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    _, g_ok = oknumba.sequence_grad(model, xs, ys, "ok", resets=resets, rank=model.cell.a, seed=3)
    for k in model.params:
        assert rel_err(g_rtrl[k], g_bptt[k]) <= 1e-10
        assert rel_err(g_ok[k], g_rtrl[k]) <= 1e-9
    # central finite differences of the loss for a few entries of W
    W = model.params["W"]
    rng = np.random.default_rng(2)
    for _ in range(4):
        q, j = rng.integers(0, W.shape[0]), rng.integers(0, W.shape[1])
        old, h = W[q, j], 1e-6
        W[q, j] = old + h
        lp = oknumba.sequence_loss(model, xs, ys, resets=resets)
        W[q, j] = old - h
        lm = oknumba.sequence_loss(model, xs, ys, resets=resets)
        W[q, j] = old
        fd = (lp - lm) / (2 * h)
        assert abs(fd - g_bptt["W"][q, j]) <= 1e-6 * max(1.0, np.abs(g_bptt["W"]).max())


@pytest.mark.parametrize("method", method_names())
def test_user_cell_trains_with_every_method(leaky, method):
    model = oknumba.RNN(leaky, 3, 4, 3, seed=1)
    info = METHODS[method]
    kw = {info.param: 2} if info.param else {}
    learner = oknumba.OnlineLearner(model, method, batch=2, lr=1e-2, **kw)
    xs, ys, resets = _sequence(model, T=6)
    losses = [learner.step(xs[t], ys[t], resets[t]) for t in range(6)]
    assert np.all(np.isfinite(losses)) and learner.updates >= 1


def test_user_cell_reaches_cli_and_profile(leaky, tmp_path):
    from oknumba import cli, profile

    args = cli.build_parser().parse_args(["train", "copy", "--cell", leaky, "--hidden", "4"])
    assert args.cell == leaky
    res = profile.profile(cell=leaky, methods=["kf"], hidden=[4], batch=2, steps=2, samples=1,
                          threads=1)
    (row,) = res["results"]
    assert row["status"] == "ok" and row["us_per_step"] > 0 and row["P"] == 4


def test_register_cell_refuses_bad_entries():
    with pytest.raises(TypeError, match="Cell subclass"):
        register_cell(object)

    class NoKernels(Cell):
        name = "nokernels"

    with pytest.raises(TypeError, match="CellKernels"):
        register_cell(NoKernels)

    class Clash(Cell):
        name = "rhn"
        kernels = Leaky.kernels

    with pytest.raises(ValueError, match="already registered"):
        register_cell(Clash)


def test_method_registry_is_the_one_source():
    """CLI choices, the learner's methods and the noise study's parser read the registry."""
    from oknumba import cli
    from oknumba.learner import LEARNER_METHODS
    from oknumba.noise import parse_method

    assert list(LEARNER_METHODS) == list(METHODS) == method_names()
    assert set(method_names(online_only=True)) == set(METHODS) - {"tbptt"}
    p = cli.build_parser()
    train = p._subparsers._group_actions[0].choices["train"]
    copy = train._subparsers._group_actions[0].choices["copy"]
    (method_action,) = [a for a in copy._actions if "--method" in a.option_strings]
    assert list(method_action.choices) == list(METHODS)
    for name, info in METHODS.items():
        spec = f"{name}:3" if info.param else name
        assert parse_method_spec(spec) == (spec, name, {info.param: 3} if info.param else {})
    assert parse_method("ok:8") == ("ok", 8)
    with pytest.raises(ValueError, match="not an online estimator"):
        parse_method("tbptt:4")
    with pytest.raises(ValueError, match="takes no"):
        parse_method_spec("kf:3")
    with pytest.raises(ValueError, match="needs its rank"):
        parse_method_spec("ok")
    assert parse_method_list("ok:8, kf") == ["ok:8", "kf"]
