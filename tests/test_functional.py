"""sequence_loss / sequence_grad: exact methods against each other and finite differences."""
import numpy as np
import pytest

import oknumba
from oknumba.testing import loss_gradient_fd
from conftest import random_sequence, rel_err


def _model(cell_name, dtype=np.float64, n=6, seed=0):
    return oknumba.RNN(cell_name, 3, n, 5, seed=seed, dtype=dtype, init="normal", init_scale=0.5)


def test_rtrl_equals_bptt_with_resets(cell_name):
    model = _model(cell_name)
    xs, ys, resets = random_sequence(model, T=12, B=3, seed=1)
    lb, gb = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    lr, gr = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    assert lb == pytest.approx(lr, rel=1e-12)
    assert lb == pytest.approx(oknumba.sequence_loss(model, xs, ys, resets), rel=1e-12)
    for k in model.params:
        assert gr[k].shape == model.params[k].shape
        assert rel_err(gr[k], gb[k]) <= 1e-10


def test_bptt_matches_finite_differences(cell_name):
    model = _model(cell_name)
    xs, ys, resets = random_sequence(model, T=8, B=2, seed=2)
    _, g = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    rng = np.random.default_rng(3)
    for k in ("W", "V"):
        idx = rng.choice(model.params[k].size, size=12, replace=False)
        fd = loss_gradient_fd(model, xs, ys, resets, k, idx)
        flat_g = g[k].reshape(-1)
        assert np.abs(fd - flat_g[idx]).max() <= 1e-6 * max(np.abs(flat_g).max(), 1e-12), k


def test_tbptt_long_truncation_equals_bptt(cell_name):
    model = _model(cell_name)
    xs, ys, resets = random_sequence(model, T=9, B=2, seed=4)
    _, gb = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    for k_trunc in (9, 20):
        _, gt = oknumba.sequence_grad(model, xs, ys, "tbptt", resets=resets, truncation=k_trunc)
        assert rel_err(gt["W"], gb["W"]) <= 1e-12


def test_tbptt_short_truncation_cuts_gradient_at_chunk_starts():
    """With a reset at every chunk start, no gradient path crosses a chunk boundary, so
    TBPTT(k) must equal BPTT exactly; without resets it must differ from BPTT."""
    model = _model("rhn")
    T, k = 12, 4
    xs, ys, _ = random_sequence(model, T=T, B=2, seed=5)
    resets = np.zeros((T, 2), bool)
    resets[::k] = True
    _, gb = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    _, gt = oknumba.sequence_grad(model, xs, ys, "tbptt", resets=resets, truncation=k)
    assert rel_err(gt["W"], gb["W"]) <= 1e-12
    no_resets = np.zeros((T, 2), bool)
    _, gb2 = oknumba.sequence_grad(model, xs, ys, "bptt", resets=no_resets)
    _, gt2 = oknumba.sequence_grad(model, xs, ys, "tbptt", resets=no_resets, truncation=k)
    assert rel_err(gt2["W"], gb2["W"]) > 1e-3
    np.testing.assert_allclose(gt2["V"], gb2["V"], rtol=1e-12)  # readout has no recurrence


def test_tbptt_truncation_one_is_sum_of_immediate_terms(cell_name):
    """With k = 1 the gradient is Σ_t δ_tᵀ F_t = Σ_t Σ_k outer(ĥ_k,t, δ_tᵀ D_k,t)."""
    model = _model(cell_name)
    xs, ys, resets = random_sequence(model, T=6, B=2, seed=6)
    _, g1 = oknumba.sequence_grad(model, xs, ys, "tbptt", resets=resets, truncation=1)
    cell, (W, V) = model.cell, model.check_params()
    buf = cell.buffers(2, model.dtype)
    s_prev, s = model.zero_state(2), model.zero_state(2)
    delta, dV, dW = np.zeros_like(s), np.zeros_like(V), np.zeros_like(W)
    out, g = np.zeros((2, model.n_out)), np.zeros((2, model.n_out))
    for t in range(6):
        s_prev[resets[t]] = 0.0
        cell.forward(W, xs[t], s_prev, s, buf["rows"], buf["aux"])
        cell.fill_D(W, s_prev, s, buf["rows"], buf["aux"], buf["D"])
        model.readout.step(V, s, cell.n, ys[t], out, g, dV, delta)
        dW += np.einsum("bkq,bkpj,bp->qj", buf["rows"], buf["D"], delta)
        s_prev, s = s.copy(), s_prev
    assert rel_err(g1["W"], dW) <= 1e-12


def test_float32_matches_float64(cell_name):
    m64 = _model(cell_name)
    m32 = _model(cell_name, dtype=np.float32)
    xs, ys, resets = random_sequence(m64, T=10, B=3, seed=7)
    for method in ("bptt", "rtrl"):
        l64, g64 = oknumba.sequence_grad(m64, xs, ys, method, resets=resets)
        l32, g32 = oknumba.sequence_grad(m32, xs.astype(np.float32), ys, method, resets=resets)
        assert g32["W"].dtype == np.float32
        assert l32 == pytest.approx(l64, rel=1e-5)
        for k in g64:
            assert rel_err(g32[k], g64[k]) < 1e-4


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(xs=np.zeros((4, 2, 2))), ValueError, "xs must have shape"),
    (dict(xs=np.zeros((4, 2))), ValueError, "xs must have shape"),
    (dict(xs=np.zeros((4, 2, 3), dtype=np.int64)), TypeError, "xs must be a floating"),
    (dict(xs=np.full((4, 2, 3), np.nan)), ValueError, "xs contains NaN"),
    (dict(ys=np.zeros((4, 2)) + 0.5), TypeError, "ys must be an integer"),
    (dict(ys=np.full((4, 2), 5)), ValueError, r"ys must hold class ids in \[0, 4\]"),
    (dict(ys=np.full((4, 2), -2)), ValueError, "ys must hold class ids"),
    (dict(ys=np.zeros((3, 2), int)), ValueError, "ys must have shape"),
    (dict(resets=np.zeros((4, 2), int)), TypeError, "resets must be a boolean"),
    (dict(resets=np.zeros((4, 3), bool)), ValueError, "resets must have shape"),
    (dict(method="sgd"), ValueError, "method must be one of"),
    (dict(method="tbptt"), ValueError, "needs truncation"),
    (dict(method="tbptt", truncation=0), ValueError, "truncation must be an integer >= 1"),
    (dict(method="tbptt", truncation=2.0), TypeError, "truncation"),
    (dict(method="rtrl", truncation=3), ValueError, "only used by method 'tbptt'"),
])
def test_bad_input_raises(kwargs, exc, match):
    model = _model("rhn", n=4)
    args = dict(xs=np.zeros((4, 2, 3)), ys=np.zeros((4, 2), int), method="bptt", resets=None)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        oknumba.sequence_grad(model, args.pop("xs"), args.pop("ys"), args.pop("method"), **args)


def test_bad_parameters_raise():
    model = _model("lstm", n=4)
    xs, ys = np.zeros((2, 1, 3)), np.zeros((2, 1), int)
    model.params["W"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"model.params\['W'\] contains NaN or inf"):
        oknumba.sequence_loss(model, xs, ys)
    model = _model("lstm", n=4)
    model.params["V"] = model.params["V"][:, :2]
    with pytest.raises(ValueError, match=r"model.params\['V'\] must be an ndarray of shape"):
        oknumba.sequence_grad(model, xs, ys, "rtrl")
    model = _model("lstm", n=4)
    model.params["W"] = model.params["W"].astype(np.float32)
    with pytest.raises(TypeError, match="must have dtype float64"):
        oknumba.sequence_grad(model, xs, ys, "bptt")
    with pytest.raises(TypeError, match="model must be an oknumba.RNN"):
        oknumba.sequence_loss("rhn", xs, ys)


def test_targets_minus_one_contribute_nothing():
    model = _model("gru")
    xs, ys, resets = random_sequence(model, T=5, B=2, seed=8, missing_prob=0.0)
    ys_none = np.full_like(ys, -1)
    assert oknumba.sequence_loss(model, xs, ys_none, resets) == 0.0
    _, g = oknumba.sequence_grad(model, xs, ys_none, "rtrl", resets=resets)
    assert not g["W"].any() and not g["V"].any()
