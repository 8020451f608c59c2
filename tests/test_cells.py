"""Cells: H, D and ĥ against central finite differences of the forward step."""
import numpy as np
import pytest

import oknumba
from oknumba.testing import filled_step, rel_err, step_jacobians, step_jacobians_fd

EPS = 1e-6


def _setup(cell_name, B=3, n_in=3, n=5, seed=0):
    model = oknumba.RNN(cell_name, n_in, n, 4, seed=seed, init="normal", init_scale=0.6)
    cell = model.cell
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(B, n_in))
    s_prev = rng.normal(scale=0.8, size=(B, cell.S))
    s_prev[0] = 0.0  # a stream just after a reset
    return model, cell, x, s_prev


def test_H_and_F_match_finite_differences(cell_name):
    """H = ∂s/∂s₋, and F = ∂s/∂W = Σ_k ĥ_k ⊗ D_k (which checks the rows ĥ_k and D_k
    together), against central differences of the forward step."""
    model, cell, x, s_prev = _setup(cell_name)
    W = model.params["W"]
    _, H, F = step_jacobians(cell, W, x, s_prev)
    fd_H, fd_F = step_jacobians_fd(cell, W, x, s_prev, EPS)
    assert rel_err(H, fd_H) < 1e-6
    assert rel_err(F, fd_F) < 1e-6
    # the first input row is always (x, h₋, 1)
    _, buf = filled_step(cell, W, x, s_prev)
    np.testing.assert_array_equal(buf["rows"][:, 0, :cell.n_in], x)
    np.testing.assert_array_equal(buf["rows"][:, 0, cell.n_in:-1], s_prev[:, :cell.n])
    np.testing.assert_array_equal(buf["rows"][:, 0, -1], 1.0)


def test_D_is_block_diagonal_for_single_term_cells(cell_name):
    model, cell, x, s_prev = _setup(cell_name)
    if cell.n_terms != 1:
        pytest.skip("the GRU's reset gate couples units: D₀ has a dense r block")
    s, buf = filled_step(cell, model.params["W"], x, s_prev)
    D = buf["D"][:, 0]
    for p in range(cell.S):
        unit = p % cell.n
        allowed = {blk * cell.n + unit for blk in range(cell.n_blocks)}
        nz = set(np.nonzero(np.any(D[:, p, :] != 0, axis=0))[0].tolist())
        assert nz <= allowed


def test_jvp_equals_H_times_v(cell_name):
    model, cell, x, s_prev = _setup(cell_name)
    W = model.params["W"]
    s, buf = filled_step(cell, W, x, s_prev)
    v = np.random.default_rng(5).normal(size=s.shape)
    out = np.zeros_like(v)
    cell.jvp(W, s_prev, s, buf["rows"], buf["aux"], v, out)
    assert rel_err(out, np.einsum("bpi,bi->bp", buf["H"], v)) < 1e-12


def test_float32_forward_matches_float64(cell_name):
    model, cell, x, s_prev = _setup(cell_name)
    W = model.params["W"]
    s64, b64 = filled_step(cell, W, x, s_prev)
    s32, b32 = filled_step(cell, W.astype(np.float32), x.astype(np.float32), s_prev.astype(np.float32))
    assert s32.dtype == np.float32 and b32["H"].dtype == np.float32
    for a32, a64 in [(s32, s64), (b32["H"], b64["H"]), (b32["D"], b64["D"])]:
        assert rel_err(a32, a64) < 1e-5


def test_unknown_cell_and_bad_sizes():
    with pytest.raises(ValueError, match="cell must be one of"):
        oknumba.RNN("elman", 2, 3, 2)
    with pytest.raises(ValueError, match="n_hidden"):
        oknumba.RNN("rhn", 2, 0, 2)
    with pytest.raises(TypeError, match="n_in"):
        oknumba.RNN("rhn", 2.5, 3, 2)
    with pytest.raises(ValueError, match="n_out"):
        oknumba.RNN("rhn", 2, 3, -1)
    with pytest.raises(TypeError, match="dtype"):
        oknumba.RNN("rhn", 2, 3, 2, dtype=np.int32)
    with pytest.raises(ValueError, match="init"):
        oknumba.RNN("rhn", 2, 3, 2, init="he")


def test_paper_initialisation_scale():
    m = oknumba.RNN("rhn", 4, 64, 4, seed=3)
    assert m.params["W"].shape == (4 + 64 + 1, 128)
    assert m.params["V"].shape == (65, 4)
    assert abs(m.params["W"].std() - 0.01) < 1e-3
    assert abs(m.params["V"].std() - 0.01) < 2e-3
