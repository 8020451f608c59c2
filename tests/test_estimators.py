"""Estimators against exact RTRL and the OK theorem (Benzing et al. 2019, arXiv 1902.03993)."""
import itertools

import numpy as np
import pytest

import oknumba
from oknumba.testing import unbiasedness_z
from conftest import random_sequence, rel_err
from oknumba.estimators import make_estimator
from oknumba.estimators.kf_kernels import kf_coefficients
from oknumba.estimators.reduce import (MODE_OPTIMAL, MODE_SAMPLING, MODE_TRUNCATED, reduce_terms,
                                       reduce_terms_gram)


def _terms(k, a=6, S=3, P=4, seed=0, scales=None):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(k, a))
    A = rng.normal(size=(k, S * P))
    if scales is not None:
        A *= np.asarray(scales)[:, None]
    return U, A


def _reduce(U, A, r, signs, offset=0.5, mode=MODE_OPTIMAL, gram=False):
    oU = np.zeros((r, U.shape[1]))
    oA = np.zeros((r, A.shape[1]))
    if gram:
        reduce_terms_gram(U, A, r, np.asarray(signs, float), offset, mode, oU, oA)
    else:
        reduce_terms(U, A, r, np.asarray(signs, float), offset, mode, oU, oA)
    return oU.T @ oA, None


# --- the reduction itself -------------------------------------------------------------

@pytest.mark.parametrize("gram", [False, True], ids=["qr", "gram"])
@pytest.mark.parametrize("r", [1, 2, 3, 4, 5, 6, 7, 8])
def test_ok_reduce_exact_enumeration_of_sign_draws(r, gram):
    """k = r + 1: the mean over all 2^k sign vectors is C, and every draw's error equals the
    theorem's minimum variance."""
    k = r + 1
    U, A = _terms(k, a=10, S=3, P=5, seed=r, scales=np.linspace(0.2, 3.0, k))
    C = U.T @ A
    min_var = oknumba.ok_min_variance(np.linalg.svd(C, compute_uv=False), r)
    assert min_var > 0
    total = np.zeros_like(C)
    for signs in itertools.product([-1.0, 1.0], repeat=k):
        Cp, _ = _reduce(U, A, r, signs, gram=gram)
        total += Cp
        assert abs(np.sum((Cp - C) ** 2) - min_var) <= 1e-9 * min_var
    assert rel_err(total / 2 ** k, C) <= 1e-12


def test_ok_min_variance_matches_theorem_by_hand():
    # σ = (3, 1, 1), r = 2: m = 1? (2·3 ≤ 5 is false) → m = 2: (1·1 ≤ 2) → s₁ = 2, s₂ = 2
    assert oknumba.ok_min_variance([3.0, 1.0, 1.0], 2) == pytest.approx(2.0 ** 2 / 1 - 2.0)
    # σ = (1, 1, 1), r = 2: m = 1 since 2·1 ≤ 3 → 9/2 − 3
    assert oknumba.ok_min_variance([1.0, 1.0, 1.0], 2) == pytest.approx(1.5)
    # two terms, r = 1: 2σ₁σ₂
    assert oknumba.ok_min_variance([2.0, 0.5], 1) == pytest.approx(2.0)
    assert oknumba.ok_min_variance([2.0, 0.5], 2) == 0.0
    assert oknumba.ok_min_variance([2.0, 0.0, 0.0], 1) == 0.0


@pytest.mark.parametrize("gram", [False, True], ids=["qr", "gram"])
@pytest.mark.parametrize("r, k", [(1, 3), (2, 5), (3, 4), (4, 7)])
@pytest.mark.parametrize("mode", [MODE_OPTIMAL, MODE_SAMPLING])
def test_general_k_reduction_is_unbiased_with_minimal_variance(r, k, mode, gram):
    """Monte Carlo: mean within 5 standard errors of C in every entry, and the mean squared
    error within 5 standard errors of the theorem's minimum."""
    U, A = _terms(k, a=7, S=2, P=4, seed=10 * r + k, scales=np.linspace(0.3, 2.0, k))
    C = U.T @ A
    min_var = oknumba.ok_min_variance(np.linalg.svd(C, compute_uv=False), r)
    rng = np.random.default_rng(0)
    N = 4000
    samples = np.empty((N,) + C.shape)
    for t in range(N):
        samples[t], _ = _reduce(U, A, r, rng.integers(0, 2, k) * 2.0 - 1, rng.random(), mode, gram)
    se = samples.std(axis=0) / np.sqrt(N)
    z = np.abs(samples.mean(axis=0) - C) / np.maximum(se, 1e-12)
    assert z.max() < 5.0
    errs = np.sum((samples - C) ** 2, axis=(1, 2))
    assert abs(errs.mean() - min_var) < 5 * errs.std() / np.sqrt(N) + 1e-9 * min_var


def test_ok_reduce_rank_deficient_input_is_exact():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(2, 5))
    # four terms spanning only a 2-dimensional space on the u side
    us = np.concatenate([u, 2 * u[:1] - u[1:], u[1:] * 0.5])
    As = rng.normal(size=(4, 3, 4))
    C = np.einsum("ka,ksp->asp", us, As)
    for seed in range(5):
        ou, oA = oknumba.ok_reduce(us, As, 2, rng=seed)
        assert rel_err(np.einsum("ka,ksp->asp", ou, oA), C) < 1e-12
    zu, zA = oknumba.ok_reduce(np.zeros((3, 5)), np.zeros((3, 3, 4)), 2, rng=0)
    assert zu.shape == (2, 5) and not zu.any() and not zA.any()


@pytest.mark.parametrize("mode", [MODE_OPTIMAL, MODE_TRUNCATED])
def test_gram_reduction_exact_when_small_side_is_rank_deficient(mode):
    """k > r terms whose u factors span ≤ r dimensions are reproduced for every draw."""
    rng = np.random.default_rng(4)
    base = rng.normal(size=(2, 6))
    U = rng.normal(size=(5, 2)) @ base          # 5 terms, rank 2 on the u side
    A = rng.normal(size=(5, 12))
    for seed in range(4):
        Cp, _ = _reduce(U, A, 2, rng.integers(0, 2, 5) * 2.0 - 1, rng.random(), mode, gram=True)
        assert rel_err(Cp, U.T @ A) < 1e-12


def test_ok_reduce_rank_at_least_k_returns_terms_padded():
    U, A = _terms(3)
    us, As = U, A.reshape(3, 3, 4)
    ou, oA = oknumba.ok_reduce(us, As, 5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(ou[:3], us)
    np.testing.assert_array_equal(oA[:3], As)
    assert not ou[3:].any() and not oA[3:].any()


def test_ok_reduce_bad_input():
    us, As = np.ones((3, 4)), np.ones((3, 2, 2))
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        oknumba.ok_reduce(us, As, 0)
    with pytest.raises(TypeError, match="rank must be an integer"):
        oknumba.ok_reduce(us, As, 1.5)
    with pytest.raises(ValueError, match="same k"):
        oknumba.ok_reduce(us, np.ones((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="same k"):
        oknumba.ok_reduce(us, np.ones((3, 4)), 1)
    bad = As.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        oknumba.ok_reduce(us, bad, 1)
    with pytest.raises(ValueError, match="method must be one of"):
        oknumba.ok_reduce(us, As, 1, method="svd")
    with pytest.raises(TypeError, match="rng"):
        oknumba.ok_reduce(us, As, 1, rng="seed")
    with pytest.raises(ValueError, match="singular_values"):
        oknumba.ok_min_variance([1.0, -1.0], 1)


def test_one_ok_never_worse_than_kf_per_step():
    """Two terms (u, B) and (ĥ, D): 1-OK's error (the same for every draw) against KF-RTRL's
    exact variance (both of its sign draws enumerated, through the KF kernel)."""
    rng = np.random.default_rng(2)
    for trial in range(50):
        a, S, P = 5, 3, 4
        us = rng.normal(size=(1, 1, a))
        Bp = rng.normal(size=(1, S, 1, P)) * rng.uniform(0.1, 5)
        rows = rng.normal(size=(1, 1, a))
        if trial % 3 == 0:
            rows[0, 0] = us[0, 0] + 0.1 * rng.normal(size=a)  # correlated factors
        D = rng.normal(size=(1, 1, S, P))
        C = np.outer(us[0, 0], Bp[0, :, 0].ravel()) + np.outer(rows[0, 0], D[0, 0].ravel())
        kf_var = 0.0
        us_work = np.concatenate([us, rows], axis=1)[0]                  # (2, a)
        work = np.stack([Bp[0, :, 0].ravel(), D[0, 0].ravel()])          # (2, S·P)
        G = work @ work.T
        for c in (-1.0, 1.0):
            ou, X = np.zeros((1, a)), np.zeros((2, 1))
            kf_coefficients(us_work, G, 1, np.array([[1.0, c]]), ou, X)
            kf_var += 0.5 * np.sum((np.outer(ou[0], X.T @ work) - C) ** 2)
        U = np.stack([us[0, 0], rows[0, 0]])
        A = np.stack([Bp[0, :, 0].ravel(), D[0, 0].ravel()])
        Cp, _ = _reduce(U, A, 1, [1.0, -1.0])
        ok_var = np.sum((Cp - C) ** 2)
        assert ok_var <= kf_var * (1 + 1e-10)


# --- estimators on sequences ------------------------------------------------------------

def _model(cell_name, n=4, dtype=np.float64):
    return oknumba.RNN(cell_name, 3, n, 4, seed=1, dtype=dtype, init="normal", init_scale=0.5)


@pytest.mark.parametrize("method", ["ok", "ok-truncated"])
def test_ok_with_full_rank_equals_exact_rtrl(cell_name, method):
    model = _model(cell_name)
    xs, ys, resets = random_sequence(model, T=10, B=3, seed=3)
    _, g_exact = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    for rank in (model.cell.a, model.cell.a + 2):
        _, g = oknumba.sequence_grad(model, xs, ys, method, resets=resets, rank=rank, seed=1)
        assert rel_err(g["W"], g_exact["W"]) <= 1e-9
        assert rel_err(g["V"], g_exact["V"]) <= 1e-12


@pytest.mark.parametrize("cell", ["rhn", "lstm", "gru"])
@pytest.mark.parametrize("method, rank", [("ok", 1), ("ok", 3), ("kf", None), ("kf-avg", 2), ("uoro", None)])
def test_stochastic_estimators_are_unbiased(cell, method, rank):
    """The mean of N independent gradient samples is within 5.5 standard errors of the exact
    gradient in every coordinate (max |z| over ~100 coordinates; a false alarm needs a
    5.5σ excursion)."""
    model = _model(cell, n=3)
    xs, ys, resets = random_sequence(model, T=6, B=2, seed=4, reset_prob=0.2)
    z_max, live, mean, exact, _ = unbiasedness_z(model, xs, ys, resets, method, rank, n_seeds=600)
    assert live.sum() > 10
    assert z_max < 5.5
    # where the estimator has no noise it must be exact
    np.testing.assert_allclose(mean[~live], exact[~live], atol=1e-10)


def test_ok_truncated_is_biased_but_deterministic():
    model = _model("rhn")
    xs, ys, resets = random_sequence(model, T=10, B=2, seed=5)
    _, g_exact = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    _, g1 = oknumba.sequence_grad(model, xs, ys, "ok-truncated", resets=resets, rank=1, seed=0)
    _, g2 = oknumba.sequence_grad(model, xs, ys, "ok-truncated", resets=resets, rank=1, seed=9)
    np.testing.assert_array_equal(g1["W"], g2["W"])
    assert rel_err(g1["W"], g_exact["W"]) > 1e-6


def test_noise_ordering_on_the_spec_small_rhn():
    """Noise with frozen weights on one fixed trajectory, exact RTRL alongside: RHN n_in 4,
    n 12, T 30, 100 seeds, relative influence error at t = 29: UORO > KF-RTRL > 1-OK and
    8-OK < 8-KF-AVG / 100."""
    model = oknumba.RNN("rhn", 4, 12, 4, seed=0, init="normal", init_scale=0.3)
    rng = np.random.default_rng(0)
    xs = np.eye(4)[rng.integers(0, 4, size=(30, 1))]
    res = oknumba.measure_noise(model, xs, ["uoro", "kf", "ok:1", "kf-avg:8", "ok:8"], seeds=100)
    last = {k: v["influence"][-1] for k, v in res.items()}
    assert last["uoro"] > last["kf"] > last["ok:1"]
    assert last["ok:8"] < last["kf-avg:8"] / 100
    assert res["ok:8"]["summary"]["cosine"] > 0.999
    assert 0 < res["uoro"]["summary"]["cosine"] < 0.9


def test_measure_noise_exact_method_has_zero_noise():
    model = _model("lstm", n=3)
    xs, ys, resets = random_sequence(model, T=5, B=2, seed=6)
    res = oknumba.measure_noise(model, xs, [("ok", model.cell.a), "kf"], seeds=3, ys=ys, resets=resets)
    assert np.all(res[f"ok:{model.cell.a}"]["influence"] < 1e-20)
    assert np.all(res["kf"]["influence"][1:] > 0)
    with pytest.raises(ValueError, match="unknown method"):
        oknumba.measure_noise(model, xs, ["bptt"], seeds=2)
    with pytest.raises(ValueError, match="burn_in"):
        oknumba.measure_noise(model, xs, ["kf"], seeds=2, burn_in=5)


@pytest.mark.parametrize("method, rank", [("ok", 2), ("kf", None), ("kf-avg", 2), ("uoro", None), ("ok", 12)])
def test_float32_estimators_track_float64(method, rank):
    """Same seed, same sign draws: float32 follows float64 (rank 12 ≥ a is the exact path).
    OK's reduction works on Gram matrices; eigenvalues below its rounding floor (EIG_RTOL)
    count as zero in both precisions, so the stochastic rank-2 case tracks too."""
    m64, m32 = _model("rhn"), _model("rhn", dtype=np.float32)
    xs, ys, resets = random_sequence(m64, T=8, B=2, seed=7)
    _, g64 = oknumba.sequence_grad(m64, xs, ys, method, resets=resets, rank=rank, seed=3)
    _, g32 = oknumba.sequence_grad(m32, xs.astype(np.float32), ys, method, resets=resets, rank=rank, seed=3)
    assert g32["W"].dtype == np.float32
    assert rel_err(g32["W"], g64["W"]) < 1e-4


def test_estimator_options_are_checked():
    model = _model("rhn")
    xs, ys, _ = random_sequence(model, T=3, B=1, seed=8)
    with pytest.raises(ValueError, match="needs rank"):
        oknumba.sequence_grad(model, xs, ys, "ok")
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        oknumba.sequence_grad(model, xs, ys, "kf-avg", rank=0)
    with pytest.raises(ValueError, match="rank is not used"):
        oknumba.sequence_grad(model, xs, ys, "uoro", rank=3)


@pytest.mark.parametrize("kind", ["ok", "kf"])
def test_parallel_stream_kernel_matches_serial(kind):
    """The thread-parallel driver (used for large steps) computes what the serial one does."""
    import numba

    from oknumba.estimators.ok import (KIND_KF, KIND_OK, kron_step, kron_step_parallel,
                                     kron_work_size)

    rng = np.random.default_rng(11)
    B, r, K, a, S, P, chunk = 4, 3, 1, 7, 6, 10, 3
    k = r + K
    H = rng.normal(size=(B, S, S))
    us0 = rng.normal(size=(B, r, a))
    W0 = rng.normal(size=(B, k * P * S))
    X0 = rng.normal(size=(B, k, r))
    rows = rng.normal(size=(B, K, a))
    D = rng.normal(size=(B, K, S, P))
    delta = rng.normal(size=(B, S))
    state0 = np.arange(1, B + 1, dtype=np.uint64) * np.uint64(12345)
    out = []
    for parallel in (False, True):
        us, W, X, state = us0.copy(), W0.copy(), X0.copy(), state0.copy()
        dW = np.zeros((a, P))
        work = np.zeros(kron_work_size(B, k, r, a, P, S, chunk))
        args = (KIND_OK if kind == "ok" else KIND_KF, MODE_OPTIMAL, chunk, 1, H, W, X, us, state,
                rows, D, work, delta, 1.0, dW, True)
        old = numba.get_num_threads()
        numba.set_num_threads(min(2 if parallel else 1, numba.config.NUMBA_NUM_THREADS))
        try:
            (kron_step_parallel if parallel else kron_step)(*args)
        finally:
            numba.set_num_threads(old)
        out.append((us, W, X, dW, state))
    (u1, W1, X1, g1, s1), (u2, W2, X2, g2, s2) = out
    np.testing.assert_array_equal(s1, s2)
    assert rel_err(u2, u1) < 1e-12 and rel_err(W2, W1) < 1e-12 and rel_err(g2, g1) < 1e-12
    assert rel_err(X2, X1) < 1e-12


@pytest.mark.parametrize("cell", ["rhn", "gru"])
def test_ok_chunked_pass_does_not_depend_on_chunk_size(cell, monkeypatch):
    """The chunked pass (ragged last chunk included) gives the whole-row result: the same
    gradients and factors for chunks of 1, 3 and all P rows."""
    from oknumba.estimators import ok as ok_module
    from oknumba.functional import run_estimator

    model = _model(cell, n=5)
    xs, ys, resets = random_sequence(model, T=8, B=2, seed=6, reset_prob=0.2)
    p = model.params
    results = []
    for chunk_bytes in (1, 3 * 9 * model.cell.S * 8, 1 << 30):   # k = 3 (rhn), 4 (gru)
        monkeypatch.setattr(ok_module, "CHUNK_BYTES", chunk_bytes)
        est = make_estimator("ok", model.cell, 2, model.dtype, rank=2, seed=3)
        _, dW, _ = run_estimator(model, p["W"], p["V"], xs, ys, resets, est)
        results.append((est.chunk, dW, est.dense()))
    assert [c for c, _, _ in results][0] == 1 and results[-1][0] == model.cell.P
    for _, dW, G in results[1:]:
        assert rel_err(dW, results[0][1]) < 1e-12 and rel_err(G, results[0][2]) < 1e-12


def test_ok_state_round_trip_and_legacy_factors():
    """state_dict/load_state_dict continue bit-identically; explicit ``At`` factors (the
    format of earlier checkpoints) load as the same estimate."""
    from oknumba.functional import run_estimator

    model = _model("rhn", n=5)
    p = model.params
    xs, ys, resets = random_sequence(model, T=12, B=2, seed=7)
    est = make_estimator("ok", model.cell, 2, model.dtype, rank=3, seed=4)
    run_estimator(model, p["W"], p["V"], xs[:6], ys[:6], resets[:6], est)
    state = est.state_dict()
    twin = make_estimator("ok", model.cell, 2, model.dtype, rank=3, seed=99)
    twin.load_state_dict(state)
    np.testing.assert_array_equal(twin.dense(), est.dense())
    legacy = make_estimator("ok", model.cell, 2, model.dtype, rank=3, seed=99)
    legacy.load_state_dict({"us": est.us, "At": est.At, "rng_state": est.rng_state})
    assert rel_err(legacy.dense(), est.dense()) < 1e-14
    # the implicit rows must not leak: a reset stream's estimate is exactly zero
    est.reset(np.array([True, False]))
    assert np.all(est.dense()[0] == 0.0) and np.any(est.dense()[1] != 0.0)
    with pytest.raises(ValueError, match="'X'"):
        twin.load_state_dict({k: v for k, v in state.items() if k != "X"})
    with pytest.raises(ValueError, match="'W'"):
        twin.load_state_dict({**state, "W": state["W"][:, :1]})
    # continuing from the loaded state gives the same gradients
    _, g1, _ = run_estimator(model, p["W"], p["V"], xs[6:], ys[6:], resets[6:], est)
    est2 = make_estimator("ok", model.cell, 2, model.dtype, rank=3, seed=99)
    est2.load_state_dict(state)
    est2.reset(np.array([True, False]))
    _, g2, _ = run_estimator(model, p["W"], p["V"], xs[6:], ys[6:], resets[6:], est2)
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("k, r", [(1, 1), (2, 1), (3, 1), (5, 4), (6, 3), (7, 2), (9, 8), (17, 16),
                                  (18, 5)])
def test_blocked_gram_and_recombination_match_numpy(k, r, dtype, tol, tmp_path, monkeypatch):
    """The register-blocked large-side kernels (any k, r: padded blocks included) against
    NumPy: ``gram`` = A Aᵀ, ``combine_rows`` = Xᵀ A, and the accumulating lower-triangle form
    in every register block; the block the machine chooses gives the reference block's bits."""
    from oknumba import _tuning
    from oknumba.estimators.ok import gram_block
    from oknumba.estimators.reduce import GRAM_BLOCKS, combine_rows, gram, gram_lower_accumulate

    rng = np.random.default_rng(k * 31 + r)
    A = rng.normal(size=(k, 37)).astype(dtype)
    X = rng.normal(size=(k, r)).astype(dtype)
    G = np.full((k, k), np.nan, dtype)
    gram(A, G)
    ref = A.astype(np.float64) @ A.T.astype(np.float64)
    assert rel_err(G, ref) < tol
    low = np.tril_indices(k)
    blocks = []
    for block in GRAM_BLOCKS.values():
        acc = np.ones((k, k), dtype)
        gram_lower_accumulate(A, acc, block)
        assert rel_err(acc[low], 1.0 + ref[low]) < tol and np.all(acc[np.triu_indices(k, 1)] == 1.0)
        blocks.append(acc)
    # the choice between them (oknumba._tuning), measured afresh here, keeps the 4 × 4 block's
    # bits: on AVX2 both blocks give them, on AVX-512 the 2 × 4 one rounds differently
    monkeypatch.setenv("OKNUMBA_TUNING_CACHE", str(tmp_path / "tuning.json"))
    monkeypatch.setattr(_tuning, "_memory", {})
    chosen = gram_block(k, A.shape[1], dtype)
    np.testing.assert_array_equal(blocks[list(GRAM_BLOCKS.values()).index(chosen)], blocks[0])
    out = np.full((r, 37), np.nan, dtype)
    combine_rows(X, A, out)
    assert rel_err(out, X.T.astype(np.float64) @ A.astype(np.float64)) < tol


@pytest.mark.parametrize("m, n", [(1, 1), (5, 7), (13, 37), (130, 129), (64, 68)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_scaled_transpose_is_the_plain_product(m, n, accumulate):
    """The blocked transposing copy (rows 8 at a time, the rest singly) writes
    ``out[j, i] (+)= c_j A[r0 + i, c0 + j]``: the single product exactly, the accumulated
    one to rounding; unscaled it is a plain copy."""
    from oknumba._transpose import scaled_transpose

    rng = np.random.default_rng(m * 7 + n)
    A = rng.normal(size=(n + 3, m + 2))
    coef = rng.normal(size=m)
    start = rng.normal(size=(m, n))
    for scaled in (False, True):
        out = start.copy()
        scaled_transpose(A, 3, 2, coef, scaled, accumulate, out)
        prod = (coef[:, None] if scaled else 1.0) * A[3:3 + n, 2:2 + m].T
        if accumulate:
            np.testing.assert_allclose(out, start + prod, rtol=1e-15, atol=1e-15)
        else:
            np.testing.assert_array_equal(out, prod)


@pytest.mark.parametrize("method, rank", [("ok", 2), ("kf", None), ("kf-avg", 3)])
def test_kron_update_then_add_gradient_equals_step(method, rank):
    """``update`` + ``add_gradient`` (the interface's two halves) give the fused ``step``'s
    estimate and gradient, and ``add_gradient`` is δᵀ·dense()."""
    model = _model("gru", n=5)
    cell, p = model.cell, model.params
    B = 2
    rng = np.random.default_rng(8)
    buf = cell.buffers(B, model.dtype, with_H=True)
    s_prev, s = rng.normal(size=(B, cell.S)) * 0.3, np.zeros((B, cell.S))
    x = rng.normal(size=(B, model.n_in))
    cell.step(p["W"], x, s_prev, s, buf["rows"], buf["aux"], buf["D"], buf["H"], True)
    delta = rng.normal(size=(B, cell.S))
    fused = make_estimator(method, cell, B, model.dtype, rank=rank, seed=5)
    split = make_estimator(method, cell, B, model.dtype, rank=rank, seed=5)
    args = (p["W"], s_prev, s, buf["rows"], buf["aux"], buf["D"], buf["H"])
    for _ in range(3):                       # a few steps, so the estimate has rank > 1
        g1, g2 = np.zeros_like(p["W"]), np.zeros_like(p["W"])
        fused.step(*args, delta, g1)
        split.update(*args)
        split.add_gradient(delta, g2)
        assert rel_err(g2, g1) < 1e-12 and rel_err(split.dense(), fused.dense()) < 1e-12
    expect = np.einsum("bs,bsaj->aj", delta, split.dense())
    assert rel_err(g2, expect) < 1e-12
