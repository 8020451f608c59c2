"""Stacked recurrent layers (oknumba.stack): every method against finite differences, BPTT
and exact RTRL; unbiasedness; the OK reduction on a layer's downstream terms; the learner."""
import itertools

import numpy as np
import pytest

import oknumba
from conftest import random_sequence, record_updates, rel_err
from oknumba.methods import METHODS, method_names
from oknumba.stack import make_stack_run
from oknumba.testing import loss_gradient_fd, unbiasedness_z

#: (cells, hidden sizes, depths): every cell, mixed cells, 2 and 3 layers, deep RHN layers
STACKS = {
    "rhn-rhn": (["rhn", "rhn"], [4, 3], 1),
    "vanilla-lstm": (["vanilla", "lstm"], [3, 4], 1),
    "gru-vanilla": (["gru", "vanilla"], [4, 3], 1),
    "lstm-gru-rhn": (["lstm", "gru", "rhn"], [3, 3, 4], 1),
    "rhn2-gru": (["rhn", "gru"], [3, 4], [2, 1]),
    "vanilla-rhn3": (["vanilla", "rhn"], [3, 3], [1, 3]),
}
N_IN, N_OUT = 3, 3


def _model(name, readout="softmax", dtype=np.float64, scale=0.5, seed=0):
    cells, hidden, depth = STACKS[name]
    return oknumba.RNN(cells, N_IN, hidden, N_OUT, seed=seed, dtype=dtype, init="normal",
                       init_scale=scale, readout=readout, depth=depth)


def _sequence(model, T, B, seed, reset_prob=0.15):
    xs, ys, resets = random_sequence(model, T=T, B=B, seed=seed, reset_prob=reset_prob)
    if model.readout.name == "linear":
        rng = np.random.default_rng(seed + 100)
        ys = rng.normal(size=(T, B, model.n_out))
        ys[rng.random((T, B, model.n_out)) < 0.1] = np.nan
    return xs, ys, resets


def _full_ranks(model):
    return [c.a for c in model.cell.layers]


def test_sizes_and_layout():
    m = _model("lstm-gru-rhn")
    st = m.cell
    assert m.layers == 3 and st.L == 3
    assert m.cell_name == ["lstm", "gru", "rhn"] and m.n_hidden == [3, 3, 4]
    assert st.S == 2 * 3 + 3 + 4 and st.n == 4                # top layer first: readout reads h_top
    assert st.offsets == [7, 4, 0] and st.S_down == [13, 7, 4]
    assert sorted(m.params) == ["V", "W0", "W1", "W2"]
    assert m.params["W1"].shape == (3 + 3 + 1, 3 * 3)         # layer 1 reads layer 0's h (3)
    assert m.params["V"].shape == (5, N_OUT)
    assert "layers=3" in repr(m)


@pytest.mark.parametrize("readout", ["softmax", "linear"])
@pytest.mark.parametrize("name", list(STACKS))
def test_bptt_matches_finite_differences(name, readout):
    model = _model(name, readout)
    xs, ys, resets = _sequence(model, T=7, B=2, seed=1)
    _, g = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    rng = np.random.default_rng(2)
    for k, p in model.params.items():
        idx = rng.choice(p.size, size=min(10, p.size), replace=False)
        fd = loss_gradient_fd(model, xs, ys, resets, k, idx, 1e-6)
        assert rel_err(g[k].flat[idx], fd) <= 1e-6 * max(1.0, np.abs(g[k]).max() / np.abs(fd).max()), k
        assert np.abs(fd).max() > 0


@pytest.mark.parametrize("readout", ["softmax", "linear"])
@pytest.mark.parametrize("name", list(STACKS))
def test_exact_methods_agree(name, readout):
    """rtrl = bptt (1e-10); ok with rank a_l per layer = rtrl (1e-9); tbptt(T) = bptt;
    the loss equals sequence_loss."""
    model = _model(name, readout)
    T = 8
    xs, ys, resets = _sequence(model, T=T, B=2, seed=3)
    lb, gb = oknumba.sequence_grad(model, xs, ys, "bptt", resets=resets)
    lr_, gr = oknumba.sequence_grad(model, xs, ys, "rtrl", resets=resets)
    assert lb == pytest.approx(lr_, rel=1e-12)
    assert lb == pytest.approx(oknumba.sequence_loss(model, xs, ys, resets), rel=1e-12)
    _, go = oknumba.sequence_grad(model, xs, ys, "ok", resets=resets, rank=_full_ranks(model), seed=1)
    _, gt = oknumba.sequence_grad(model, xs, ys, "tbptt", resets=resets, truncation=T)
    for k in model.params:
        assert rel_err(gr[k], gb[k]) <= 1e-10, k
        assert rel_err(go[k], gr[k]) <= 1e-9, k
        assert rel_err(gt[k], gb[k]) <= 1e-12, k


def test_truncated_bptt_cuts_gradient_flow_between_chunks():
    """tbptt(4) over 8 steps = BPTT of the first chunk + the second chunk's losses
    backpropagated within the second chunk only."""
    model = _model("gru-vanilla")
    xs, ys, _ = _sequence(model, T=8, B=2, seed=4)
    _, gt = oknumba.sequence_grad(model, xs, ys, "tbptt", truncation=4)
    _, gfirst = oknumba.sequence_grad(model, xs[:4], ys[:4], "bptt")
    later = ys.copy()
    later[:4] = -1                                     # only the second chunk's targets
    _, gt_later = oknumba.sequence_grad(model, xs, later, "tbptt", truncation=4)
    _, gb_later = oknumba.sequence_grad(model, xs, later, "bptt")
    for k in model.params:
        assert rel_err(gt[k] - gfirst[k], gt_later[k]) <= 1e-10, k
    assert rel_err(gt_later["W0"], gb_later["W0"]) > 1e-3     # BPTT reaches the first chunk


@pytest.mark.parametrize("name", ["rhn-rhn", "lstm-gru-rhn", "rhn2-gru"])
@pytest.mark.parametrize("method, rank", [("ok", 2), ("kf", None), ("uoro", None)])
def test_stochastic_estimators_are_unbiased(name, method, rank):
    """Every layer's gradient: the mean of 400 samples within 5.5 standard errors of exact RTRL
    in every live coordinate, and exact where there is no noise."""
    model = _model(name)
    xs, ys, resets = _sequence(model, T=5, B=2, seed=5, reset_prob=0.2)
    for l in range(model.layers):
        z_max, live, mean, exact, _ = unbiasedness_z(model, xs, ys, resets, method, rank, n_seeds=400,
                                                     key=f"W{l}")
        assert live.sum() > 10
        assert z_max < 5.5, (l, z_max)
        np.testing.assert_allclose(mean[~live], exact[~live], atol=1e-10)


def test_layers_draw_independent_signs():
    """Different layers' estimators start from different random states (same seed)."""
    model = _model("rhn-rhn")
    run = make_stack_run("ok", model.cell, 2, np.float64, rank=2, seed=7)
    s0, s1 = (e.rng_state for e in run.estimators)
    assert not np.array_equal(s0, s1)
    again = make_stack_run("ok", model.cell, 2, np.float64, rank=2, seed=7)
    np.testing.assert_array_equal(again.estimators[1].rng_state, s1)


def test_ok_reduction_of_a_layers_downstream_terms_meets_the_theorem():
    """Exact enumeration on a real stack: the k = r + 1 terms layer 0's OK estimator holds
    within a step (r carried terms propagated by H_down, and the step's ĥ ⊗ D_down, whose
    factors span both layers' states) reduced to r: the mean over all 2^k sign vectors is
    their sum and every draw's squared error is the theorem's minimum variance."""
    from oknumba.estimators.reduce import MODE_OPTIMAL, reduce_terms

    model = _model("vanilla-lstm")
    xs, ys, resets = _sequence(model, T=3, B=1, seed=6, reset_prob=0.0)
    run = make_stack_run("ok", model.cell, 1, np.float64, rank=2, seed=0)
    W, V = model.check_params()
    s_prev, s = model.zero_state(1), model.zero_state(1)
    for t in range(2):
        run.forward(W, xs[t], s_prev, s, t)
        run.backward(W, np.zeros((1, model.cell.S)), {"W0": np.zeros_like(W[0]), "W1": np.zeros_like(W[1])})
        s_prev, s = s, s_prev
    est, view = run.estimators[0], run.views[0]
    run.forward(W, xs[2], s_prev, s, 2)
    rows, D, H, _ = run.cur[0]
    # the terms: the carried r terms propagated by H_down, then the step's K terms
    carried = est.dense()[0]                                             # (S_down, a, P)
    r = est.rank
    C_prev = carried.transpose(1, 0, 2).reshape(view.a, -1)              # (a, S_down·P)
    U, s_vals, Vt = np.linalg.svd(C_prev, full_matrices=False)
    U_terms = (U[:, :r] * s_vals[:r]).T
    A_terms = np.stack([np.einsum("ij,jp->ip", H[0], Vt[i].reshape(view.S, view.P)).reshape(-1)
                        for i in range(r)])
    U_new = rows[0]
    A_new = D[0].reshape(view.n_terms, -1)
    Uk = np.concatenate([U_terms, U_new])
    Ak = np.concatenate([A_terms, A_new])
    k = Uk.shape[0]
    assert k == r + 1
    C = Uk.T @ Ak
    min_var = oknumba.ok_min_variance(np.linalg.svd(C, compute_uv=False), r)
    assert min_var > 0 and view.S == model.cell.S                       # layer 0 sees both layers
    total = np.zeros_like(C)
    for signs in itertools.product([-1.0, 1.0], repeat=k):
        oU, oA = np.zeros((r, Uk.shape[1])), np.zeros((r, Ak.shape[1]))
        reduce_terms(Uk, Ak, r, np.asarray(signs), 0.5, MODE_OPTIMAL, oU, oA)
        Cp = oU.T @ oA
        total += Cp
        assert abs(np.sum((Cp - C) ** 2) - min_var) <= 1e-9 * min_var
    assert rel_err(total / 2 ** k, C) <= 1e-12


# --- the online learner ----------------------------------------------------------------------

def _method_kwargs(name):
    param = METHODS[name].param
    return {} if param is None else {param: 3 if param == "truncation" else 2}


def _learner_run(name, method, dtype, steps=9, readout="softmax"):
    model = _model(name, readout, dtype=dtype)
    xs, ys, resets = _sequence(model, T=steps, B=2, seed=9)
    kw = _method_kwargs(method)
    if method == "ok":
        # float32 against float64 needs a draw that is a smooth function of the terms: a
        # reduction's random combination depends on the signs of singular vectors, which
        # the two precisions may choose differently (equally valid, about the noise's size
        # apart); at rank a_l the reduction is exact (the unbiasedness tests cover rank 2)
        kw["rank"] = _full_ranks(model)
    learner = oknumba.OnlineLearner(model, method, batch=2, optimizer="sgd", lr=1e-2, clip=None,
                                    seed=5, **kw)
    seen = record_updates(learner)
    ys = ys.astype(dtype) if readout == "linear" else ys
    losses = [learner.step(xs[t].astype(dtype), ys[t], resets[t]) for t in range(steps)]
    return losses, seen


@pytest.mark.parametrize("method", method_names())
def test_online_learner_every_method_both_precisions(method):
    l64, g64 = _learner_run("lstm-gru-rhn", method, np.float64)
    l32, g32 = _learner_run("lstm-gru-rhn", method, np.float32)
    assert np.all(np.isfinite(l64)) and np.all(np.isfinite(l32))
    assert len(g64) == len(g32) >= 3
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    for a, b in zip(g32, g64):
        assert sorted(a) == ["V", "W0", "W1", "W2"] and a["W1"].dtype == np.float32
        for k in b:
            assert np.all(np.isfinite(b[k]))
            assert rel_err(a[k], b[k]) < 1e-4, (k, rel_err(a[k], b[k]))


@pytest.mark.parametrize("method", ["rtrl", "ok", "uoro"])
def test_learners_first_gradient_is_sequence_grads(method):
    """Before the first update the learner's gradient is sequence_grad's over one step / B."""
    model = _model("vanilla-rhn3")
    xs, ys, _ = _sequence(model, T=1, B=2, seed=11)
    kw = {"rank": 2} if method == "ok" else {}
    _, g = oknumba.sequence_grad(model, xs, ys, method, seed=4, **kw)
    learner = oknumba.OnlineLearner(model, method, batch=2, update_every=2, seed=4, **kw)
    learner.step(xs[0], ys[0])
    for k in g:
        assert rel_err(learner.grads[k], g[k]) <= 1e-12, k


def test_forward_backward_reproduces_step_bit_for_bit():
    def run(split):
        model = _model("gru-vanilla")
        xs, ys, resets = _sequence(model, T=6, B=2, seed=12)
        learner = oknumba.OnlineLearner(model, "ok", rank=2, batch=2, seed=1)
        for t in range(6):
            if split:
                out = learner.forward(xs[t], reset=resets[t])
                g = np.zeros_like(out)
                model.readout.loss_grad(out.copy(), ys[t], g)
                learner.backward(g)
            else:
                learner.step(xs[t], ys[t], reset=resets[t])
        return model.params

    a, b = run(True), run(False)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_state_dict_round_trip_continues_bit_identically():
    def make():
        model = _model("lstm-gru-rhn")
        return model, oknumba.OnlineLearner(model, "kf", batch=2, seed=3)

    model, learner = make()
    xs, ys, resets = _sequence(model, T=10, B=2, seed=13)
    for t in range(5):
        learner.step(xs[t], ys[t], resets[t])
    arrays, meta = learner.state_dict()
    assert meta["config"]["layers"] == 3 and meta["config"]["cell"] == ["lstm", "gru", "rhn"]
    model2, learner2 = make()
    learner2.load_state_dict(arrays, meta)
    for t in range(5, 10):
        assert learner.step(xs[t], ys[t], resets[t]) == learner2.step(xs[t], ys[t], resets[t])
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], model2.params[k])


def test_replaced_layer_parameter_is_checked_before_the_next_step():
    model = _model("rhn-rhn")
    learner = oknumba.OnlineLearner(model, "uoro", batch=2)
    xs, ys, _ = _sequence(model, T=2, B=2, seed=14)
    learner.step(xs[0], ys[0])
    model.params["W1"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="W1"):
        learner.step(xs[1], ys[1])


def test_stack_options_are_checked():
    with pytest.raises(ValueError, match="cell has 3 entries for 2 layers"):
        oknumba.RNN(["rhn", "gru", "lstm"], 3, 4, 3, layers=2)
    with pytest.raises(ValueError, match="different lengths"):
        oknumba.RNN(["rhn", "gru"], 3, [4, 4, 4], 3)
    with pytest.raises(ValueError, match="layers must be"):
        oknumba.RNN("rhn", 3, 4, 3, layers=0)
    with pytest.raises(ValueError, match="no depth option"):
        oknumba.RNN(["rhn", "gru"], 3, 4, 3, depth=2)
    m = oknumba.RNN("gru", 3, 4, 3, layers=2)
    assert m.cell_name == ["gru", "gru"] and m.n_hidden == [4, 4]
    one = oknumba.RNN(["rhn"], 3, [4], 3)
    assert one.layers == 1 and sorted(one.params) == ["V", "W"]
    with pytest.raises(ValueError, match="one recurrent layer"):
        oknumba.OnlineLearner(m, "ok", rank=2, device="gpu")
    with pytest.raises(ValueError, match="rank has 3 entries for 2 layers"):
        oknumba.sequence_grad(m, *random_sequence(m, 3, 1)[:2], "ok", rank=[2, 2, 2])
