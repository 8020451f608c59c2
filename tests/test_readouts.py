"""Readouts (softmax, linear), losses of one's own (forward/backward), predictions and saved
models — the API an embedding user meets (oknumba/readouts.py, oknumba/model_io.py)."""
import numpy as np
import pytest

import oknumba
from conftest import rel_err, random_sequence
from oknumba.model_io import ModelFileError
from oknumba.testing import loss_gradient_fd


def _linear_model(cell="gru", n_in=3, n=5, n_out=2, dtype=np.float64, seed=0):
    return oknumba.RNN(cell, n_in, n, n_out, seed=seed, dtype=dtype, init="normal", init_scale=0.5,
                       readout="linear")


def _real_sequence(model, T=8, B=2, seed=1, nan_prob=0.2):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, model.n_in))
    ys = rng.normal(size=(T, B, model.n_out))
    ys[rng.random(ys.shape) < nan_prob] = np.nan
    resets = rng.random((T, B)) < 0.15
    return xs, ys, resets


def test_linear_readout_gradients_are_exact(cell_name):
    """BPTT against central finite differences of the squared error; RTRL and OK (rank ≥ a)
    equal BPTT — the linear readout through every exact path."""
    model = _linear_model(cell_name)
    xs, ys, resets = _real_sequence(model)
    loss, gb = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    assert loss == pytest.approx(oknumba.sequence_loss(model, xs, ys, resets), rel=1e-12)
    _, gr = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    _, go = oknumba.sequence_grad(model, xs, ys, "ok", resets=resets, rank=model.cell.a, seed=0)
    for k in ("W", "V"):
        assert rel_err(gr[k], gb[k]) <= 1e-10
        assert rel_err(go[k], gb[k]) <= 1e-9
    rng = np.random.default_rng(3)
    for k in ("W", "V"):
        idx = rng.choice(model.params[k].size, size=8, replace=False)
        fd = loss_gradient_fd(model, xs, ys, resets, k, idx)
        assert np.abs(fd - gb[k].reshape(-1)[idx]).max() <= 1e-6 * np.abs(gb[k]).max(), k


def test_nan_targets_contribute_nothing():
    model = _linear_model()
    xs, ys, resets = _real_sequence(model, nan_prob=0.0)
    all_nan = np.full_like(ys, np.nan)
    loss, g = oknumba.sequence_grad(model, xs, all_nan, "bptt", resets=resets)
    assert loss == 0.0 and not g["W"].any() and not g["V"].any()
    with pytest.raises(ValueError, match="inf"):
        oknumba.sequence_loss(model, xs, np.full_like(ys, np.inf))
    with pytest.raises(ValueError, match=r"shape \(8, 2, 2\)"):
        oknumba.sequence_loss(model, xs, ys[..., 0])
    with pytest.raises(TypeError, match="integer array of class ids"):
        oknumba.sequence_loss(oknumba.RNN("rhn", 3, 4, 2), xs, ys)


@pytest.mark.parametrize("method, rank", [("ok", 2), ("kf", None), ("uoro", None), ("rtrl", None),
                                          ("tbptt", None)])
def test_forward_backward_with_the_builtin_gradient_is_step_bit_for_bit(method, rank):
    """``step`` is forward + the built-in loss's gradient + backward: the same numbers."""
    kw = {"truncation": 3} if method == "tbptt" else {}
    ms = [oknumba.RNN("lstm", 3, 4, 3, seed=2, init="normal", init_scale=0.5) for _ in range(2)]
    a, b = (oknumba.OnlineLearner(m, method, rank=rank, batch=2, seed=5, **kw) for m in ms)
    xs, ys, resets = random_sequence(ms[0], T=9, B=2, seed=4)
    for t in range(9):
        la = a.step(xs[t], ys[t], resets[t])
        out = b.forward(xs[t], resets[t])
        g = np.zeros_like(out)
        lb = ms[1].readout.loss_grad(out, ys[t], g)
        b.backward(g)
        n = max(1, int((ys[t] >= 0).sum()))
        assert la == lb / n
    for k in ("W", "V"):
        np.testing.assert_array_equal(ms[0].params[k], ms[1].params[k])
    np.testing.assert_array_equal(a.state, b.state)


def test_forward_and_backward_are_paired_and_checked():
    model = _linear_model()
    L = oknumba.OnlineLearner(model, "kf", batch=2)
    x = np.zeros((2, 3))
    with pytest.raises(RuntimeError, match="forward"):
        L.backward(np.zeros((2, 2)))
    L.forward(x)
    with pytest.raises(RuntimeError, match="backward"):
        L.forward(x)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        L.backward(np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        L.backward(np.full((2, 2), np.nan))
    L.backward(np.ones((2, 2)))
    assert L.steps == 1 and L.updates == 1


def test_custom_loss_through_backward():
    """A loss of one's own (absolute error) trains through forward/backward."""
    model = _linear_model("vanilla", n_in=1, n=6, n_out=1, seed=3)
    L = oknumba.OnlineLearner(model, "ok", rank=2, batch=1, lr=3e-3)
    sig = np.sin(0.2 * np.arange(1500))
    errs = []
    for t in range(len(sig) - 1):
        out = L.forward(sig[t:t + 1, None])
        r = out - sig[t + 1]
        errs.append(abs(r.item()))
        L.backward(np.sign(r))            # ∂|r|/∂out
    assert np.mean(errs[-200:]) < 0.5 * np.mean(errs[:200])


def test_streaming_regression_example():
    """The README's "embed it" example: online next-value prediction of a noisy sine."""
    rng = np.random.default_rng(0)
    t = np.arange(4000)
    signal = np.sin(0.1 * t) + 0.5 * np.sin(0.023 * t) + 0.05 * rng.normal(size=t.size)
    model = oknumba.RNN("gru", n_in=1, n_hidden=16, n_out=1, seed=0, readout="linear")
    learner = oknumba.OnlineLearner(model, "ok", rank=4, lr=3e-3)
    losses = [learner.step(signal[i:i + 1, None], signal[i + 1:i + 2, None]) for i in range(t.size - 1)]
    first, last = np.mean(losses[:300]), np.mean(losses[-300:])
    assert last < 0.01 and last < 0.1 * first          # ½ squared error per step
    preds, state = model.predict(signal[:100, None, None])
    assert preds.shape == (100, 1, 1) and state.shape == (1, model.cell.S)


def test_predict_carries_state_and_gives_probabilities():
    model = oknumba.RNN("rhn", 3, 5, 4, seed=1, init="normal", init_scale=0.5)
    xs = np.random.default_rng(0).normal(size=(10, 2, 3))
    p, final = model.predict(xs)
    assert p.shape == (10, 2, 4) and np.allclose(p.sum(-1), 1.0)
    p1, s1 = model.predict(xs[:6])
    p2, s2 = model.predict(xs[6:], state=s1)
    np.testing.assert_allclose(np.concatenate([p1, p2]), p, rtol=1e-12)
    np.testing.assert_allclose(s2, final, rtol=1e-12)
    with pytest.raises(ValueError, match="state must have shape"):
        model.predict(xs, state=np.zeros((3, 5)))


@pytest.mark.parametrize("readout", ["softmax", "linear"])
def test_save_load_predict_identical(tmp_path, readout):
    model = oknumba.RNN("lstm", 3, 4, 2, seed=4, dtype=np.float32, init="normal", init_scale=0.5,
                        readout=readout)
    path = model.save(tmp_path / "m", vocab={"kind": "char", "symbols": ["a", "b"], "unk": False, "size": 2})
    assert path.endswith(".npz")
    loaded = oknumba.load_model(path)
    assert loaded.readout.name == readout and loaded.dtype == np.float32 and loaded.vocab["size"] == 2
    xs = np.random.default_rng(1).normal(size=(7, 2, 3))
    np.testing.assert_array_equal(model.predict(xs)[0], loaded.predict(xs)[0])


def test_load_refuses_files_that_do_not_match(tmp_path):
    model = oknumba.RNN("gru", 3, 4, 2)
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "bad.npz", W=arrays["W"][:-1], V=arrays["V"], config=arrays["config"])
    with pytest.raises(ModelFileError, match="needs float64"):
        oknumba.load_model(tmp_path / "bad.npz")
    np.savez(tmp_path / "noconf.npz", W=arrays["W"])
    with pytest.raises(ModelFileError, match="no model configuration"):
        oknumba.load_model(tmp_path / "noconf.npz")
    with pytest.raises(ModelFileError, match="no such model file"):
        oknumba.load_model(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ModelFileError, match="not a readable"):
        oknumba.load_model(tmp_path / "text.npz")


def test_run_folder_loads_as_a_model(tmp_path):
    from oknumba import cli

    out = str(tmp_path / "run")
    assert cli.main(["train", "copy", "--hidden", "5", "--rank", "2", "--batch", "2", "--steps", "20",
                     "--quiet", "--out", out]) == 0
    model = oknumba.load_model(out)
    with np.load(tmp_path / "run" / "params.npz") as z:
        np.testing.assert_array_equal(model.params["W"], z["W"])
    assert model.n_in == 4 and model.n_hidden == 5


def test_gpu_refuses_the_linear_readout():
    with pytest.raises(ValueError, match="softmax readout only"):
        oknumba.OnlineLearner(_linear_model(), "kf", batch=2, device="gpu")
