"""OnlineLearner at the API level: checkpoint round trips, update schedule, optimizers and
clipping against hand-written NumPy, argument checks."""
import json
import os

import numpy as np
import pytest

import oknumba
from oknumba import OnlineLearner, sequence_grad

N_IN, N, N_OUT, B = 3, 5, 4, 2


def _model(seed=0, cell="rhn"):
    return oknumba.RNN(cell, N_IN, N, N_OUT, seed=seed, init="normal", init_scale=0.4)


def _data(T, seed=1, reset_prob=0.1):
    rng = np.random.default_rng(seed)
    xs = np.eye(N_IN)[rng.integers(0, N_IN, size=(T, B))]
    ys = rng.integers(0, N_OUT, size=(T, B))
    ys[rng.random((T, B)) < 0.1] = -1
    resets = rng.random((T, B)) < reset_prob
    resets[0] = True
    return xs, ys, resets


def _run(learner, xs, ys, resets):
    return [learner.step(xs[t], ys[t], resets[t]) for t in range(len(ys))]


def _kwargs(method):
    return {"ok": dict(rank=2), "kf-avg": dict(rank=2), "tbptt": dict(truncation=4)}.get(method, {})


# ------------------------------------------------------------------------------------------------
# state_dict round trip
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["ok", "kf", "uoro", "tbptt", "rtrl", "kf-avg"])
def test_state_dict_round_trip_continues_bit_identically(method):
    xs, ys, resets = _data(30)
    a = OnlineLearner(_model(), method, batch=B, lr=1e-2, seed=3, **_kwargs(method))
    _run(a, xs[:13], ys[:13], resets[:13])  # 13: mid-window for tbptt (k = 4)
    arrays, meta = a.state_dict()
    meta = json.loads(json.dumps(meta))  # as stored in a checkpoint
    losses_a = _run(a, xs[13:], ys[13:], resets[13:])

    b = OnlineLearner(_model(seed=99), method, batch=B, lr=1e-2, seed=3, **_kwargs(method))
    b.step(xs[0] * 0.5, ys[0], resets[0])  # dirty its state first: loading must overwrite everything
    b.load_state_dict(arrays, meta)
    assert b.steps == 13
    losses_b = _run(b, xs[13:], ys[13:], resets[13:])
    assert losses_a == losses_b
    for k in a.model.params:
        assert np.array_equal(a.model.params[k], b.model.params[k]), k
    assert a.steps == b.steps == 30 and a.updates == b.updates


def test_state_dict_is_a_copy_and_refuses_other_settings():
    xs, ys, resets = _data(5)
    a = OnlineLearner(_model(), "ok", rank=2, batch=B)
    arrays, meta = a.state_dict()
    W0 = arrays["params.W"].copy()
    _run(a, xs, ys, resets)
    assert np.array_equal(arrays["params.W"], W0)  # not a view of the live parameters
    other = OnlineLearner(_model(), "ok", rank=3, batch=B)
    with pytest.raises(ValueError, match="rank"):
        other.load_state_dict(arrays, meta)


# ------------------------------------------------------------------------------------------------
# update schedule
# ------------------------------------------------------------------------------------------------
def test_tbptt_updates_every_k_steps_with_the_window_gradient():
    k, lr = 4, 0.05
    xs, ys, resets = _data(2 * k, reset_prob=0.0)
    model = _model()
    W0, V0 = model.params["W"].copy(), model.params["V"].copy()
    L = OnlineLearner(model, "tbptt", truncation=k, batch=B, optimizer="sgd", lr=lr, clip=None)
    assert L.update_every == k
    for t in range(k - 1):
        L.step(xs[t], ys[t], resets[t])
        assert L.updates == 0 and np.array_equal(model.params["W"], W0) and np.array_equal(model.params["V"], V0)
    L.step(xs[k - 1], ys[k - 1], resets[k - 1])
    assert L.updates == 1
    _, g = sequence_grad(_model(), xs[:k], ys[:k], "bptt", resets=resets[:k])
    np.testing.assert_allclose(model.params["W"], W0 - lr * g["W"] / B, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(model.params["V"], V0 - lr * g["V"] / B, rtol=1e-10, atol=1e-13)
    for t in range(k, 2 * k):
        L.step(xs[t], ys[t], resets[t])
    assert L.updates == 2


def test_rtrl_with_update_every_k_equals_bptt_over_the_window():
    k, lr = 6, 0.05
    xs, ys, resets = _data(k, seed=4)
    model = _model()
    W0 = model.params["W"].copy()
    L = OnlineLearner(model, "rtrl", batch=B, optimizer="sgd", lr=lr, clip=None, update_every=k)
    _run(L, xs, ys, resets)
    assert L.updates == 1
    _, g = sequence_grad(_model(), xs, ys, "bptt", resets=resets)
    np.testing.assert_allclose(model.params["W"], W0 - lr * g["W"] / B, rtol=1e-9, atol=1e-13)


# ------------------------------------------------------------------------------------------------
# optimizers and clipping against NumPy
# ------------------------------------------------------------------------------------------------
def _step_grad(params, x, y):
    """Exact gradient (mean over the B streams) of one step from a zero state at ``params``."""
    ref = _model()
    for k in ref.params:
        ref.params[k][...] = params[k]
    _, g = sequence_grad(ref, x[None], y[None], "bptt")
    return {k: v / B for k, v in g.items()}


def test_adam_matches_numpy():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    xs, ys, _ = _data(4, seed=5)
    reset = np.ones(B, bool)  # each step starts from zero state: its gradient is the one-step gradient
    model = _model()
    L = OnlineLearner(model, "rtrl", batch=B, optimizer="adam", lr=lr, clip=None)
    p = {k: v.copy() for k, v in model.params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t in range(4):
        g = _step_grad(p, xs[t], ys[t])
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            mhat, vhat = m[k] / (1 - b1 ** (t + 1)), v[k] / (1 - b2 ** (t + 1))
            p[k] = p[k] - lr * mhat / (np.sqrt(vhat) + eps)
        L.step(xs[t], ys[t], reset)
        for k in p:
            np.testing.assert_allclose(model.params[k], p[k], rtol=1e-9, atol=1e-12, err_msg=f"{k} at step {t}")
        if t == 0:  # the first Adam step moves a parameter with a clear gradient by about lr
            assert np.abs(p["V"] - _model().params["V"]).max() == pytest.approx(lr, rel=1e-3)


def test_sgd_single_update_matches_hand_computation():
    lr = 0.1
    xs, ys, _ = _data(1, seed=6)
    model = _model()
    p0 = {k: v.copy() for k, v in model.params.items()}
    assert model.cell.n_terms == 1
    L = OnlineLearner(model, "kf", batch=B, optimizer="sgd", lr=lr, clip=None)
    L.step(xs[0], ys[0], np.ones(B, bool))  # from G_0 = 0, KF-RTRL's G_1 = ĥ ⊗ D is exact (one term)
    g = _step_grad(p0, xs[0], ys[0])
    for k in p0:
        np.testing.assert_allclose(model.params[k], p0[k] - lr * g[k], rtol=1e-9, atol=1e-13)


def test_sgd_descends_on_a_fixed_batch():
    """Repeated SGD steps on the same one-step problem lower its loss (a quadratic-ish check)."""
    xs, ys, _ = _data(1, seed=7)
    ys[:] = np.abs(ys)
    model = _model()
    L = OnlineLearner(model, "kf", batch=B, optimizer="sgd", lr=0.5, clip=None)
    reset = np.ones(B, bool)
    losses = [L.step(xs[0], ys[0], reset) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]
    assert all(b <= a + 1e-12 for a, b in zip(losses[:-1], losses[1:]))


@pytest.mark.parametrize("clip", [1e-3, 0.05])
def test_clipping_bounds_each_parameters_update(clip):
    xs, ys, _ = _data(1, seed=8)
    model = _model()
    p0 = {k: v.copy() for k, v in model.params.items()}
    L = OnlineLearner(model, "rtrl", batch=B, optimizer="sgd", lr=1.0, clip=clip)
    L.step(xs[0], ys[0], np.ones(B, bool))
    g = _step_grad(p0, xs[0], ys[0])
    for k in p0:
        step = p0[k] - model.params[k]
        gn = np.linalg.norm(g[k])
        assert np.linalg.norm(step) <= clip * (1 + 1e-9)
        if gn > clip:  # clipped: norm exactly clip, direction unchanged
            assert np.linalg.norm(step) == pytest.approx(clip, rel=1e-9)
            np.testing.assert_allclose(step, g[k] * (clip / gn), rtol=1e-8, atol=1e-15)
        else:
            np.testing.assert_allclose(step, g[k], rtol=1e-9, atol=1e-15)
    assert np.linalg.norm(g["W"]) > 1e-3  # the small bound really clips W


# ------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(method="bptt"), "method"),
    (dict(method="nope"), "method"),
    (dict(method="tbptt"), "truncation"),
    (dict(method="ok", rank=2, truncation=3), "truncation"),
    (dict(method="kf", lr=0.0), "lr"),
    (dict(method="kf", lr=-1e-3), "lr"),
    (dict(method="kf", lr=float("nan")), "lr"),
    (dict(method="kf", lr=float("inf")), "lr"),
    (dict(method="kf", clip=0.0), "clip"),
    (dict(method="kf", clip=-1.0), "clip"),
    (dict(method="kf", optimizer="rmsprop"), "optimizer"),
    (dict(method="kf", batch=0), "batch"),
])
def test_bad_arguments_raise(kwargs, match):
    kwargs = dict(kwargs)
    method = kwargs.pop("method")
    with pytest.raises(ValueError, match=match):
        OnlineLearner(_model(), method, **kwargs)


def test_bad_model_raises():
    with pytest.raises(TypeError, match="model"):
        OnlineLearner("rhn", "kf")


def test_bad_step_inputs_raise():
    L = OnlineLearner(_model(), "kf", batch=B)
    x = np.eye(N_IN)[[0, 1]]
    y = np.array([0, 1])
    with pytest.raises((ValueError, TypeError), match="x_t"):
        L.step(x[:1], y)  # wrong batch
    with pytest.raises((ValueError, TypeError), match="x_t"):
        L.step(np.zeros((B, N_IN + 1)), y)  # wrong width
    with pytest.raises((ValueError, TypeError), match="x_t"):
        L.step(np.zeros((B, N_IN), dtype=np.int64), y)  # ids instead of one-hot
    with pytest.raises(ValueError, match="NaN"):
        L.step(np.full((B, N_IN), np.nan), y)
    with pytest.raises(ValueError, match="y_t"):
        L.step(x, np.array([0, N_OUT]))  # class out of range
    with pytest.raises(ValueError, match="y_t"):
        L.step(x, np.array([-2, 0]))
    with pytest.raises((ValueError, TypeError), match="y_t"):
        L.step(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reset"):
        L.step(x, y, np.array([1, 0]))
    assert L.steps == 0  # nothing was consumed by the refused steps
    L.step(x, np.array([-1, -1]))  # no targets at all is fine
    assert L.steps == 1


def test_checkpoint_versions(tmp_path):
    """Version 2 is written; a version-1 file (the same arrays) loads; an unknown version is
    refused with the versions that load."""
    import zipfile

    from oknumba import checkpoint

    model = oknumba.RNN("rhn", 3, 4, 3, seed=0)
    learner = OnlineLearner(model, "ok", rank=2, batch=2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        learner.step(rng.normal(size=(2, 3)), rng.integers(0, 3, size=2))
    path = tmp_path / "ck.npz"
    checkpoint.save_checkpoint(path, learner)

    def rewrite_version(version):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        doc = json.loads(arrays["__meta__"].tobytes().decode())
        assert doc["version"] == checkpoint.VERSION == 2
        doc["version"] = version
        arrays["__meta__"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
        out = tmp_path / f"v{version}.npz"
        np.savez(out, **arrays)
        assert zipfile.is_zipfile(out)
        return out

    fresh = OnlineLearner(oknumba.RNN("rhn", 3, 4, 3, seed=0), "ok", rank=2, batch=2)
    checkpoint.load_checkpoint(rewrite_version(1), fresh)
    assert np.array_equal(fresh.estimator.dense(), learner.estimator.dense())
    with pytest.raises(ValueError, match=r"version 3.*loads versions \[1, 2\]"):
        checkpoint.load_checkpoint(rewrite_version(3), fresh)


def test_step_pins_blas_threads_and_puts_them_back():
    """Each step runs on ``threads`` BLAS threads; the caller's settings are untouched after,
    except that scipy's own bundled BLAS (which numpy never calls) stays at ``threads``."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from oknumba._threads import StepThreads

    model = oknumba.RNN("rhn", 3, 6, 3, seed=0)
    learner = oknumba.OnlineLearner(model, "ok", rank=2, batch=2)
    assert learner.threads == 1
    x, y = np.eye(3)[[0, 1]], np.array([1, 2])
    with threadpool_limits(limits=2, user_api="blas"):
        blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
        private = [os.sep + "scipy.libs" + os.sep in lib["filepath"] for lib in blas]
        before = [lib["num_threads"] for lib in blas]
        pin = StepThreads(1)
        old = pin.pin()
        inside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        pin.restore(old)
        learner.step(x, y)
        after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert inside == [1] * len(before)
    assert after == [1 if p else k for p, k in zip(private, before)]
    assert not all(private)                      # numpy's BLAS is put back


def test_fused_step_pins_only_the_blas_its_kernels_call():
    """The fused step (compiled code only) pins scipy's bundled BLAS, the one Numba's kernels
    call, and leaves numpy's alone; without a bundled copy it pins every BLAS."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from oknumba._threads import StepThreads

    model = oknumba.RNN("vanilla", 3, 6, 3, seed=0)
    learner = oknumba.OnlineLearner(model, "ok", rank=2, batch=1, threads=1)
    x, y = np.eye(3)[[0]], np.array([1])
    learner.step(x, y)
    assert learner._fused                        # the next steps run the fused kernel
    with threadpool_limits(limits=2, user_api="blas"):
        blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
        private = [os.sep + "scipy.libs" + os.sep in lib["filepath"] for lib in blas]
        pin = StepThreads(1).for_kernels()
        old = pin.pin()
        inside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        pin.restore(old)
        learner.step(x, y)
        after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert inside == [1 if p or not any(private) else 2 for p in private]
    assert after == [1 if p else 2 for p in private]       # numpy's BLAS: put back or untouched


def test_replaced_or_reshaped_params_are_refused_before_a_kernel_reads_them():
    model = oknumba.RNN("gru", 3, 5, 3, seed=0)
    learner = oknumba.OnlineLearner(model, "kf", batch=2)
    x, y = np.eye(3)[[0, 1]], np.array([1, 2])
    learner.step(x, y)
    good_V = model.params["V"]
    model.params["V"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"shape \(6, 3\).*changed after the learner was built"):
        learner.step(x, y)
    model.params["V"] = np.zeros_like(good_V)            # same shape: adopted
    assert np.isfinite(learner.step(x, y))
    assert not np.all(model.params["V"] == 0.0)          # the optimizer updated the new array
    model.params["W"].shape = model.params["W"].shape[::-1]
    with pytest.raises(ValueError, match="changed after the learner was built"):
        learner.step(x, y)
    model.params["W"].shape = model.params["W"].shape[::-1]
    model.params["W"] = model.params["W"].astype(np.float32)
    with pytest.raises(TypeError, match="dtype float64"):
        learner.step(x, y)
