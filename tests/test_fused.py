"""The fused learner step (oknumba.fused): one kernel call per step, bit-identical to the
separate calls that forward() + backward() make, and absent where a part has no fused kernel."""
import numpy as np
import pytest

from oknumba import RNN, OnlineLearner
from oknumba.cells import Cell, register_cell, CELLS
from oknumba.fused import FusedStep, by_id, kernel_id

from conftest import CELL_NAMES, random_sequence


def _run(model_kw, learner_kw, T=12, fused=True, seed=3):
    model = RNN(**model_kw, seed=0)
    learner = OnlineLearner(model, **learner_kw)
    xs, ys, resets = random_sequence(model, T, learner.batch, seed=seed)
    if model.readout.name == "linear":
        ys = np.random.default_rng(seed).normal(size=(T, learner.batch, model.n_out))
        ys[0, 0, 0] = np.nan
    xs = xs.astype(model.dtype)
    losses = []
    for t in range(T):
        reset = resets[t] if t else None
        if fused:
            losses.append(learner.step(xs[t], ys[t], reset=reset))
        else:                       # the separate calls: forward, the built-in loss, backward
            out = learner.forward(xs[t], reset=reset)
            g = np.zeros_like(out)
            y, n_valid = learner._check_step_targets(ys[t])
            loss = model.readout.loss_grad(out, y, g)
            learner.backward(g)
            losses.append(loss / n_valid if n_valid else 0.0)
    return learner, np.array(losses)


def _assert_same(model_kw, learner_kw):
    a, la = _run(model_kw, learner_kw, fused=True)
    b, lb = _run(model_kw, learner_kw, fused=False)
    assert isinstance(a._fused, FusedStep), "the step should have run fused"
    assert b._fused is None
    np.testing.assert_array_equal(la, lb)
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
        np.testing.assert_array_equal(a.grads[k], b.grads[k])
    np.testing.assert_array_equal(a.state, b.state)
    for k, v in a.estimator.state_dict().items():
        np.testing.assert_array_equal(v, b.estimator.state_dict()[k])
    assert a.last_grad_norms == b.last_grad_norms
    assert (a.steps, a.updates) == (b.steps, b.updates)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("method,kw", [("uoro", {}), ("ok", {"rank": 2}), ("kf", {})])
def test_fused_step_is_bit_identical(cell, method, kw):
    _assert_same(dict(cell=cell, n_in=3, n_hidden=5, n_out=4),
                 dict(method=method, batch=2, seed=1, threads=1, **kw))


@pytest.mark.parametrize("model_kw,learner_kw", [
    (dict(cell="rhn", depth=2), dict(method="ok", rank=3, batch=1)),
    (dict(cell="vanilla", readout="linear"), dict(method="uoro", batch=2, optimizer="sgd", lr=0.05)),
    (dict(cell="gru", dtype="float32"), dict(method="kf-avg", rank=2, batch=2, clip=None)),
    (dict(cell="lstm"), dict(method="ok-truncated", rank=2, batch=1, update_every=3)),
])
def test_fused_step_variants(model_kw, learner_kw):
    _assert_same(dict(n_in=3, n_hidden=4, n_out=3, **model_kw), dict(seed=2, threads=1, **learner_kw))


@pytest.mark.parametrize("model_kw,learner_kw", [
    (dict(cell="vanilla"), dict(method="rtrl")),                       # no fused kernel
    (dict(cell="vanilla"), dict(method="tbptt", truncation=3)),        # windowed
    (dict(cell="vanilla", layers=2), dict(method="uoro")),             # a stack
    (dict(cell="vanilla"), dict(method="kf", batch=2, threads=None)),  # threads can change
])
def test_separate_calls_where_not_fused(model_kw, learner_kw):
    model = RNN(n_in=3, n_hidden=4, n_out=3, seed=0, **model_kw)
    kw = dict(batch=1, threads=1)
    kw.update(learner_kw)
    learner = OnlineLearner(model, **kw)
    x = np.ones((learner.batch, 3))
    loss = learner.step(x, np.zeros(learner.batch, np.int64))
    assert np.isfinite(loss) and learner._fused in (None, False)


def test_outside_cell_runs_the_separate_calls():
    from numba import njit
    from oknumba.cells import CellKernels

    vanilla = CELLS["vanilla"]
    k = vanilla.kernels
    forward = njit(lambda W, x, s_prev, s, rows, aux: k.forward(W, x, s_prev, s, rows, aux))

    class Outside(vanilla):          # a cell with a kernel of its own, defined outside the package
        name = "outside-test-cell"
        kernels = CellKernels(forward, k.fill_D, k.fill_H, k.jvp)

    class OutsideFillD(vanilla):     # the package's forward, a fill_D of its own
        name = "outside-test-cell-2"
        kernels = CellKernels(k.forward, njit(lambda W, s_prev, s, rows, aux, D: k.fill_D(
            W, s_prev, s, rows, aux, D)), k.fill_H, k.jvp)

    register_cell(OutsideFillD)
    try:
        learner = OnlineLearner(RNN("outside-test-cell-2", 3, 4, 3, seed=0), "kf", threads=1)
        learner.step(np.ones((1, 3)), np.zeros(1, np.int64))
        assert learner._fused is False
    finally:
        del CELLS["outside-test-cell-2"]
    register_cell(Outside)
    try:
        assert kernel_id("cell.forward", forward) is None
        model = RNN("outside-test-cell", 3, 4, 3, seed=0)
        learner = OnlineLearner(model, "uoro", threads=1)
        assert np.isfinite(learner.step(np.ones((1, 3)), np.zeros(1, np.int64)))
        assert learner._fused is False
    finally:
        del CELLS["outside-test-cell"]


def test_replaced_params_rebuild_the_fused_step():
    model = RNN("vanilla", 3, 4, 3, seed=0)
    learner = OnlineLearner(model, "uoro", threads=1)
    x, y = np.ones((1, 3)), np.zeros(1, np.int64)
    learner.step(x, y)
    first = learner._fused
    model.params["W"] = model.params["W"].copy() * 0.5
    learner.step(x, y)
    assert learner._fused is not first and learner._fused.params[0] is model.params["W"]


@pytest.mark.parametrize("method,kw", [("uoro", {}), ("ok", {"rank": 2})])
def test_state_loaded_into_a_built_fused_step_continues_bit_identically(method, kw):
    """The fused step holds the state arrays (which swap every step) and the optimizer's
    moments by reference: a checkpoint loaded into a learner whose step is already built, after
    an odd number of its own steps, and a changed lr both take effect as in the original run."""
    def make():
        model = RNN("vanilla", 3, 5, 4, seed=0)
        return model, OnlineLearner(model, method, batch=2, seed=1, threads=1, **kw)

    model, a = make()
    xs, ys, _ = random_sequence(model, 14, 2, seed=5)
    for t in range(6):
        a.step(xs[t], ys[t])
    saved = a.state_dict()
    a._optimizer.lr *= 3.0
    la = [a.step(xs[t], ys[t]) for t in range(6, 14)]
    _, b = make()
    for t in range(3):                      # b's step is built, its state arrays swapped
        b.step(xs[t + 7], ys[t + 7])
    assert isinstance(b._fused, FusedStep)
    b.load_state_dict(*saved)
    b._optimizer.lr *= 3.0
    lb = [b.step(xs[t], ys[t]) for t in range(6, 14)]
    np.testing.assert_array_equal(la, lb)
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    np.testing.assert_array_equal(a.state, b.state)
    assert a._optimizer.t == b._optimizer.t == 14 and b.updates == 14


def test_read_only_inputs_are_copied_for_the_compiled_layout():
    model = RNN("vanilla", 3, 4, 3, seed=0)
    learner = OnlineLearner(model, "kf", threads=1)
    x = np.ones((1, 3))
    x.flags.writeable = False
    assert np.isfinite(learner.step(x, np.zeros(1, np.int64)))


@pytest.mark.parametrize("readout", ["softmax", "linear"])
@pytest.mark.parametrize("method", ["uoro", "ok"])
def test_fused_value_checks_leave_everything_unchanged(readout, method):
    """Once fused, the step checks the values in its kernel: a bad input or target raises the
    same message as the checks before the kernel, and nothing (state, estimate, parameters,
    gradients, counters, the optimizer's step number) has changed; a good step then goes on
    exactly as if the bad one had not been tried."""
    model_kw = dict(cell="gru", n_in=3, n_hidden=4, n_out=3, readout=readout, seed=0)
    kw = dict(method=method, rank=2) if method == "ok" else dict(method=method)
    a, b = (OnlineLearner(RNN(**model_kw), threads=1, seed=1, **kw) for _ in range(2))
    x = np.eye(3)[[1]]
    y = np.array([2]) if readout == "softmax" else np.array([[0.5, np.nan, -1.0]])
    for learner in (a, b):
        learner.step(x, y)
        learner.step(x, y)
    assert isinstance(a._fused, FusedStep)
    bad_x = x.copy()
    bad_x[0, 1] = np.nan
    bad_y = np.array([3]) if readout == "softmax" else np.array([[np.inf, 0.0, 0.0]])
    match = "y_t must hold class ids" if readout == "softmax" else "y_t contains inf"
    before = (a.state.copy(), a.estimator.state_dict(), {k: v.copy() for k, v in a.model.params.items()},
              {k: v.copy() for k, v in a.grads.items()}, a.steps, a.updates, a._optimizer.t)
    with pytest.raises(ValueError, match="x_t contains NaN or inf"):
        a.step(bad_x, y)
    with pytest.raises(ValueError, match=match):
        a.step(x, bad_y)
    after = (a.state, a.estimator.state_dict(), a.model.params, a.grads, a.steps, a.updates,
             a._optimizer.t)
    np.testing.assert_array_equal(after[0], before[0])
    for i in (1, 2, 3):
        for k in before[i]:
            np.testing.assert_array_equal(after[i][k], before[i][k])
    assert after[4:] == before[4:]
    assert a.step(x, y) == b.step(x, y)
    np.testing.assert_array_equal(a.model.params["W"], b.model.params["W"])


def test_by_id_only_in_jitted_code():
    with pytest.raises(TypeError, match="jitted"):
        by_id("cell.forward", 0)


def test_outside_readout_subclass_runs_the_separate_calls():
    from oknumba.readouts import READOUTS, SoftmaxReadout, register_readout

    class Scaled(SoftmaxReadout):    # inherits the package's kernel but changes the loss
        name = "scaled-softmax-test"

        def loss_grad(self, out, y, g):
            loss = super().loss_grad(out, y, g)
            g *= 2.0
            return 2.0 * loss

    register_readout(Scaled())
    try:
        model = RNN("vanilla", 3, 4, 3, seed=0, readout="scaled-softmax-test")
        learner = OnlineLearner(model, "uoro", threads=1)
        learner.step(np.ones((1, 3)), np.zeros(1, np.int64))
        assert learner._fused is False
    finally:
        del READOUTS["scaled-softmax-test"]


def test_method_replaced_on_an_instance_runs_the_separate_calls():
    """A wrapper put on the optimizer (as conftest.record_updates does) is still called."""
    learner = OnlineLearner(RNN("vanilla", 3, 4, 3, seed=0), "uoro", threads=1, optimizer="sgd")
    calls = []
    update = learner.optimizer.update

    def wrapped(params, grads, *args):
        calls.append(1)
        return update(params, grads, *args)

    learner.optimizer.update = wrapped
    for _ in range(3):
        learner.step(np.ones((1, 3)), np.zeros(1, np.int64))
    assert learner._fused is False and len(calls) == 3
