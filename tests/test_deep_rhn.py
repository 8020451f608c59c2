"""Deep-transition RHN (Zilly et al. 2017, arXiv 1607.03474): ``RNN("rhn", …, depth=d)``.

The cell's step against a NumPy reference and central finite differences (F = Σ_k ĥ_k ⊗ D_k,
H, the JVP); sequence gradients of every exact method against finite differences and each
other; the stochastic estimators' unbiasedness with K = d Kronecker terms; the online
learner in both precisions; depth 1 left exactly as it was."""
import numpy as np
import pytest

import oknumba
from conftest import random_sequence, record_updates
from oknumba.testing import forward_step as _forward
from oknumba.testing import (filled_step, loss_gradient_fd, rel_err, step_jacobians, step_jacobians_fd,
                             unbiasedness_z)
from oknumba.cells import RHN, make_cell
from oknumba.cells import rhn as rhn_module
from oknumba.methods import METHODS, method_names

EPS = 1e-6
DEPTHS = [2, 3]
N_IN, N, N_OUT = 3, 4, 4


def _model(depth, n=N, dtype=np.float64, seed=1, scale=0.6):
    return oknumba.RNN("rhn", N_IN, n, N_OUT, seed=seed, dtype=dtype, init="normal",
                       init_scale=scale, depth=depth)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _reference_step(W, x, h, depth):
    """The deep RHN step written out in NumPy: returns h = s⁽ᵈ⁾ and the input rows ĥ_k."""
    n, n_in = h.shape[1], x.shape[1]
    s, rows = h, []
    for k in range(depth):
        xin = x if k == 0 else np.zeros_like(x)
        row = np.concatenate([xin, s, np.ones((x.shape[0], 1))], axis=1)
        z = row @ W[:, 2 * n * k:2 * n * (k + 1)]
        c, f = 2.0 * _sigmoid(z[:, :n]) - 1.0, _sigmoid(z[:, n:])
        s = f * s + (1.0 - f) * c
        rows.append(row)
    assert W.shape == (n_in + n + 1, 2 * n * depth)
    return s, np.stack(rows, axis=1)


# --- one step ------------------------------------------------------------------------------

def _step_setup(depth, B=2, seed=0):
    model = _model(depth, n=5, seed=seed)
    cell = model.cell
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(B, N_IN))
    s_prev = rng.normal(scale=0.8, size=(B, cell.S))
    s_prev[0] = 0.0  # a stream just after a reset
    return model, cell, x, s_prev


@pytest.mark.parametrize("depth", DEPTHS)
def test_sizes_and_repr(depth):
    model = _model(depth)
    cell = model.cell
    assert (cell.depth, cell.n_terms, cell.n_blocks) == (depth, depth, 2 * depth)
    assert (cell.S, cell.P, cell.a) == (N, 2 * depth * N, N_IN + N + 1)
    assert model.params["W"].shape == (cell.a, cell.P)
    assert cell.kernels is rhn_module.DEEP_KERNELS
    buf = cell.buffers(2, np.float64)
    assert buf["rows"].shape == (2, depth, cell.a) and buf["D"].shape == (2, depth, N, cell.P)
    assert repr(cell) == f"RHN(n_in={N_IN}, n_hidden={N}, depth={depth})"
    assert f"depth={depth}" in repr(model)


@pytest.mark.parametrize("depth", DEPTHS)
def test_forward_matches_numpy_reference(depth):
    """The state, the rows ĥ_k (intermediate states; x in the first only) and aux = z."""
    model, cell, x, s_prev = _step_setup(depth)
    W = model.params["W"]
    s, buf = _forward(cell, W, x, s_prev)
    s_ref, rows_ref = _reference_step(W, x, s_prev, depth)
    assert rel_err(s, s_ref) < 1e-14
    assert rel_err(buf["rows"], rows_ref) < 1e-14
    np.testing.assert_array_equal(buf["rows"][:, 0, :N_IN], x)
    np.testing.assert_array_equal(buf["rows"][:, 0, N_IN:-1], s_prev)
    np.testing.assert_array_equal(buf["rows"][:, 1:, :N_IN], 0.0)
    np.testing.assert_array_equal(buf["rows"][:, :, -1], 1.0)
    z_ref = np.concatenate([rows_ref[:, k] @ W[:, 2 * cell.n * k:2 * cell.n * (k + 1)]
                            for k in range(depth)], axis=1)
    assert rel_err(buf["aux"], z_ref) < 1e-14


@pytest.mark.parametrize("depth", DEPTHS)
def test_F_matches_finite_differences_and_D_lives_in_its_block(depth):
    """F = ∂h/∂W = Σ_k ĥ_k ⊗ D_k against central differences of the forward step in every
    entry of W; D_k is nonzero only in block k."""
    model, cell, x, s_prev = _step_setup(depth)
    W = model.params["W"]
    s, buf = filled_step(cell, W, x, s_prev)
    _, _, F = step_jacobians(cell, W, x, s_prev)
    _, fd = step_jacobians_fd(cell, W, x, s_prev, EPS)
    err = rel_err(F, fd)
    assert err < 1e-6, err
    n = cell.n
    for k in range(depth):
        outside = np.ones(cell.P, bool)
        outside[2 * n * k:2 * n * (k + 1)] = False
        assert not buf["D"][:, k][..., outside].any()
        assert np.abs(buf["D"][:, k][..., ~outside]).max() > 0
    # the x-rows of the deeper blocks never act
    assert not F[:, :, :N_IN, 2 * n:].any()
    np.testing.assert_array_equal(fd[:, :, :N_IN, 2 * n:], 0.0)


@pytest.mark.parametrize("depth", DEPTHS)
def test_H_matches_finite_differences_and_jvp_equals_H_v(depth):
    model, cell, x, s_prev = _step_setup(depth)
    W = model.params["W"]
    s, buf = filled_step(cell, W, x, s_prev)
    fd, _ = step_jacobians_fd(cell, W, x, s_prev, EPS)
    err = rel_err(buf["H"], fd)
    assert err < 1e-6, err
    v = np.random.default_rng(5).normal(size=s.shape)
    out = np.zeros_like(v)
    cell.jvp(W, s_prev, s, buf["rows"], buf["aux"], v, out)
    assert rel_err(out, np.einsum("bpi,bi->bp", buf["H"], v)) < 1e-12


@pytest.mark.parametrize("depth", DEPTHS)
def test_float32_step_matches_float64(depth):
    model, cell, x, s_prev = _step_setup(depth)
    W = model.params["W"]
    s64, b64 = filled_step(cell, W, x, s_prev)
    s32, b32 = filled_step(cell, W.astype(np.float32), x.astype(np.float32), s_prev.astype(np.float32))
    assert s32.dtype == np.float32 and b32["D"].dtype == np.float32
    for a32, a64 in [(s32, s64), (b32["H"], b64["H"]), (b32["D"], b64["D"])]:
        assert rel_err(a32, a64) < 1e-5


# --- sequences -----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", DEPTHS)
def test_bptt_matches_finite_differences(depth):
    model = _model(depth, scale=0.5)
    xs, ys, resets = random_sequence(model, T=8, B=2, seed=2)
    _, g = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    rng = np.random.default_rng(3)
    n, P = model.cell.n, model.cell.P
    for k in ("W", "V"):
        p = model.params[k]
        flat_g = g[k].reshape(-1)
        idx = list(rng.choice(p.size, size=12, replace=False))
        if k == "W":   # a recurrent entry of every block, a bias of the last, an unused x-row
            idx += [(N_IN + 1) * P + 2 * n * blk + 1 for blk in range(depth)]
            idx += [(p.shape[0] - 1) * P + P - 1, 2 * n + 1]
        fd = loss_gradient_fd(model, xs, ys, resets, k, idx, EPS)
        assert np.abs(fd - flat_g[idx]).max() <= 1e-6 * np.abs(flat_g).max(), k


@pytest.mark.parametrize("depth", DEPTHS)
def test_exact_methods_agree(depth):
    """rtrl = bptt; ok with rank a (k = a + d terms reduced to a) = rtrl; tbptt(T) = bptt;
    the x-rows of blocks k > 1 get exactly zero gradient."""
    model = _model(depth, scale=0.5)
    T = 10
    xs, ys, resets = random_sequence(model, T=T, B=2, seed=3)
    lb, gb = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    lr, gr = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    assert lb == pytest.approx(lr, rel=1e-12)
    assert lb == pytest.approx(oknumba.sequence_loss(model, xs, ys, resets), rel=1e-12)
    for k in model.params:
        assert rel_err(gr[k], gb[k]) <= 1e-10
    _, go = oknumba.sequence_grad(model, xs, ys, "ok", resets=resets, rank=model.cell.a, seed=1)
    assert rel_err(go["W"], gr["W"]) <= 1e-9
    assert rel_err(go["V"], gr["V"]) <= 1e-12
    _, gt = oknumba.sequence_grad(model, xs, ys, "tbptt", resets=resets, truncation=T)
    assert rel_err(gt["W"], gb["W"]) <= 1e-12
    for g in (gb, gr, go, gt):
        np.testing.assert_array_equal(g["W"][:N_IN, 2 * model.cell.n:], 0.0)
        assert np.abs(g["W"][N_IN:, 2 * model.cell.n:]).max() > 0


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("method, rank", [("ok", 2), ("kf", None), ("uoro", None)])
def test_stochastic_estimators_are_unbiased(depth, method, rank):
    """With K = d Kronecker terms per step (OK reduces k = r + d terms, KF mixes d + 1): the
    mean of N samples is within 5.5 standard errors of the exact gradient in every live
    coordinate, and exact where the estimator has no noise. The unused x-rows of blocks
    k > 1 (exact gradient 0) are noise-free for UORO (no outer product reaches them) but
    noisy for OK and KF, whose mixed factors ĥ_1 ± ĥ_k carry x into every block's term."""
    model = _model(depth, n=3, scale=0.5)
    xs, ys, resets = random_sequence(model, T=6, B=2, seed=4, reset_prob=0.2)
    z_max, live, mean, exact, samples = unbiasedness_z(model, xs, ys, resets, method, rank, n_seeds=400)
    assert live.sum() > 10
    assert z_max < 5.5, z_max
    np.testing.assert_allclose(mean[~live], exact[~live], atol=1e-10)
    unused = samples[:, :N_IN, 2 * model.cell.n:]
    np.testing.assert_array_equal(exact[:N_IN, 2 * model.cell.n:], 0.0)
    if method == "uoro":
        np.testing.assert_array_equal(unused, 0.0)
    else:
        assert live[:N_IN, 2 * model.cell.n:].all()


# --- the online learner -------------------------------------------------------------------

def _method_kwargs(name):
    param = METHODS[name].param
    return {} if param is None else {param: 3 if param == "truncation" else 2}


def _learner_run(depth, method, dtype, steps=9):
    """Online steps with plain SGD (no clipping): the losses and every update's gradients."""
    model = _model(depth, dtype=dtype, scale=0.5)
    xs, ys, resets = random_sequence(model, T=steps, B=2, seed=9)
    learner = oknumba.OnlineLearner(model, method, batch=2, optimizer="sgd", lr=1e-2, clip=None,
                                    seed=5, **_method_kwargs(method))
    seen = record_updates(learner)
    losses = [learner.step(xs[t].astype(dtype), ys[t], resets[t]) for t in range(steps)]
    return losses, seen


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("method", method_names())
def test_online_learner_every_method_both_precisions(depth, method):
    l64, g64 = _learner_run(depth, method, np.float64)
    l32, g32 = _learner_run(depth, method, np.float32)
    assert np.all(np.isfinite(l64)) and np.all(np.isfinite(l32))
    assert len(g64) == len(g32) >= 3
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    for a, b in zip(g32, g64):
        assert a["W"].dtype == np.float32
        for k in b:
            assert np.all(np.isfinite(b[k]))
            assert rel_err(a[k], b[k]) < 1e-4, (k, rel_err(a[k], b[k]))


# --- depth 1 and the depth option ----------------------------------------------------------

def test_depth_one_is_the_existing_cell():
    for cell in (oknumba.RNN("rhn", N_IN, N, N_OUT, depth=1).cell, make_cell("rhn", N_IN, N),
                 RHN(N_IN, N, depth=1)):
        assert type(cell) is RHN
        # nothing set on the instance beyond the sizes: every class attribute as before
        assert set(vars(cell)) == {"n_in", "n", "S", "P", "a"}
        assert (cell.depth, cell.n_blocks, cell.n_terms, cell.P) == (1, 2, 1, 2 * N)
        assert cell.kernels is RHN.kernels
        assert tuple(cell.kernels) == (rhn_module._forward, rhn_module._fill_D,
                                       rhn_module._fill_H, rhn_module._jvp)
        assert repr(cell) == f"RHN(n_in={N_IN}, n_hidden={N})"
    assert (RHN.n_blocks, RHN.n_terms, RHN.depth, RHN.max_depth) == (2, 1, 1, 10)
    assert "depth" not in repr(oknumba.RNN("rhn", N_IN, N, N_OUT))


def test_saturated_second_carry_gate_reduces_to_depth_one():
    """f₂ = σ(40) = 1 to double precision makes s⁽²⁾ = s⁽¹⁾: the depth-2 step equals the
    depth-1 cell on block 1 of W."""
    deep, shallow = _model(2, n=5).cell, _model(1, n=5).cell
    rng = np.random.default_rng(7)
    W = rng.normal(scale=0.6, size=(deep.a, deep.P))
    W[:, 3 * 5:] = 0.0
    W[-1, 3 * 5:] = 40.0
    x, s_prev = rng.normal(size=(2, N_IN)), rng.normal(size=(2, 5))
    s_deep, _ = _forward(deep, W, x, s_prev)
    s_one, _ = _forward(shallow, np.ascontiguousarray(W[:, :2 * 5]), x, s_prev)
    assert rel_err(s_deep, s_one) < 1e-14


def test_depth_option_is_checked():
    with pytest.raises(ValueError, match="takes depth <= 10, got 11"):      # make_cell's message
        oknumba.RNN("rhn", N_IN, N, N_OUT, depth=11)
    with pytest.raises(ValueError, match="depth must be <= 10"):
        RHN(N_IN, N, depth=11)
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        oknumba.RNN("rhn", N_IN, N, N_OUT, depth=0)
    with pytest.raises(TypeError, match="depth must be an integer"):
        oknumba.RNN("rhn", N_IN, N, N_OUT, depth=2.0)
    assert oknumba.RNN("rhn", N_IN, N, N_OUT, depth=np.int64(2)).cell.depth == 2
    with pytest.raises(TypeError, match="depth must be an integer"):
        RHN(N_IN, N, depth=2.0)
    with pytest.raises(ValueError, match="no depth option"):
        oknumba.RNN("gru", N_IN, N, N_OUT, depth=2)
    assert oknumba.RNN("rhn", N_IN, N, N_OUT, depth=10).cell.P == 20 * N
