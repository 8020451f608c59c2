"""The GPU path (:mod:`oknumba.gpu`) against the CPU learner, at tiny sizes.

Every test is marked ``cuda``: the default run deselects them (``addopts = -m "not cuda"``);
they run in their own invocation, without a GPU in the CUDA simulator:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda tests/test_gpu.py   # scripts/test_gpu_sim.sh

The simulator runs every CUDA thread as a Python thread, so sizes stay tiny (n ≤ 8, B ≤ 3,
T ≤ 6) and the kernels use small blocks there (:mod:`oknumba.gpu.kernels`). The claim tested:
for the same seed and the same inputs (resets included) the GPU path gives the CPU's losses,
gradients (their norms before clipping, and the accumulated gradients between updates),
parameters, states and influence estimates — float64 to 1e-10 relative, float32 to float32
accuracy.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import oknumba.gpu as gpu
from conftest import rel_err
from oknumba import RNN, OnlineLearner

pytestmark = [
    pytest.mark.cuda,
    # the simulator runs splitmix64 on NumPy uint64 scalars, whose intended wrap-around warns
    pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning:oknumba.gpu._rng"),
]

TOL = {np.float64: 1e-10, np.float32: 5e-5}


@pytest.fixture(autouse=True)
def _fast_simulator():
    """The simulator's block scheduler busy-polls its Python threads; a short GIL switch
    interval lets the kernel threads run (about 10× faster here). Restored after each test."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def need_gpu():
    if not gpu.gpu_available():
        pytest.skip("no usable CUDA GPU and the simulator is off: " + gpu.gpu_status()[1])


def _learner(cell, method, rank=None, dtype=np.float64, B=3, n=4, n_in=3, n_out=3, seed=1, **kw):
    model = RNN(cell, n_in, n, n_out, seed=seed, dtype=dtype, init="normal", init_scale=0.5)
    return OnlineLearner(model, method, rank=rank, batch=B, seed=seed + 10, **kw)


def _inputs(T, B, n_in, n_out, dtype, seed=0):
    """Random dense inputs, some missing targets, random resets plus a forced one at t = 2."""
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, n_in)).astype(dtype)
    ys = rng.integers(0, n_out, size=(T, B))
    ys[rng.random((T, B)) < 0.2] = -1
    resets = rng.random((T, B)) < 0.3
    resets[0] = False
    resets[2, 0] = True
    return xs, ys, resets


def _hint(cpu):
    from oknumba.estimators import reduce

    if cpu.method.startswith("ok") and not hasattr(reduce, "EIG_RTOL"):
        return (" — the CPU reduction lacks the rounding-noise eigenvalue rule"
                " (oknumba.estimators.reduce.EIG_RTOL): after resets its estimate depends on"
                " noise directions no other implementation reproduces")
    return ""


def _compare(cpu, gl, tol, what=""):
    """Every piece of learner state the GPU backend mirrors (after ``to_host``)."""
    checks = {"W": (gl.model.params["W"], cpu.model.params["W"]),
              "V": (gl.model.params["V"], cpu.model.params["V"]),
              "grad W": (gl.grads["W"], cpu.grads["W"]), "grad V": (gl.grads["V"], cpu.grads["V"]),
              "state": (gl.state, cpu.state)}
    if cpu.optimizer.name == "adam":
        for k in ("W", "V"):
            checks[f"adam m {k}"] = (gl.optimizer.m[k], cpu.optimizer.m[k])
            checks[f"adam v {k}"] = (gl.optimizer.v[k], cpu.optimizer.v[k])
    if cpu.last_grad_norms:
        checks["grad norms"] = (gl.last_grad_norms, cpu.last_grad_norms)
    checks["influence"] = (gl.estimator.dense(), cpu.estimator.dense())
    for name, (g, c) in checks.items():
        assert rel_err(g, c) <= tol, \
            f"{what}{name}: relative difference {rel_err(g, c):.2e} > {tol:g}{_hint(cpu)}"
    if hasattr(cpu.estimator, "rng_state"):
        np.testing.assert_array_equal(gl.estimator.rng_state, cpu.estimator.rng_state)
    assert (gl.steps, gl.updates, gl.optimizer.t) == (cpu.steps, cpu.updates, cpu.optimizer.t)


def _run_pair(cell, method, rank=None, dtype=np.float64, T=6, B=3, **kw):
    cpu = _learner(cell, method, rank, dtype, B=B, **kw)
    gl = _learner(cell, method, rank, dtype, B=B, **kw)
    backend = gpu.GPUBackend(gl)
    m = cpu.model
    xs, ys, resets = _inputs(T, B, m.n_in, m.n_out, dtype)
    tol = TOL[dtype]
    for t in range(T):
        loss_cpu = cpu.step(xs[t], ys[t], resets[t])
        loss_gpu = backend.step(xs[t], ys[t], resets[t])
        assert abs(loss_gpu - loss_cpu) <= tol * abs(loss_cpu), (t, loss_gpu, loss_cpu)
        backend.to_host()
        _compare(cpu, gl, tol, f"step {t}: ")
    return cpu, gl, backend


# --- same numbers as the CPU --------------------------------------------------------------

@pytest.mark.parametrize("cell, method, rank, dtype", [
    ("rhn", "ok", 2, np.float64),        # rotation construction (k = r + 1), resets
    ("rhn", "ok", 1, np.float64),
    ("vanilla", "ok", 2, np.float64),
    ("lstm", "ok", 2, np.float64),       # S = 2n
    ("gru", "ok", 2, np.float64),        # two new terms: k = r + 2, systematic sampling
    ("rhn", "ok", 8, np.float64),        # r ≥ a: the exact path (OK = exact RTRL)
    ("rhn", "ok-truncated", 2, np.float64),
    ("rhn", "kf", None, np.float64),
    ("gru", "kf", None, np.float64),
    ("rhn", "kf-avg", 2, np.float64),
    ("rhn", "rtrl", None, np.float64),
    ("vanilla", "rtrl", None, np.float64),
    ("lstm", "rtrl", None, np.float64),
    ("gru", "rtrl", None, np.float64),
    ("rhn", "ok", 2, np.float32),
    ("rhn", "kf", None, np.float32),
    ("rhn", "rtrl", None, np.float32),
])
def test_gpu_matches_cpu(need_gpu, cell, method, rank, dtype):
    _run_pair(cell, method, rank, dtype)


def test_gpu_matches_cpu_n8(need_gpu):
    """n = 8: several matmul tiles, Gram splits and strided thread loops per stream."""
    _run_pair("rhn", "ok", 3, T=4, B=2, n=8)


@pytest.mark.parametrize("method, rank", [("ok", 2), ("rtrl", None)])
def test_gpu_matches_cpu_sgd_every_second_step_no_clip(need_gpu, method, rank):
    """Gradients accumulate between updates (compared after every step), SGD, no clipping."""
    _run_pair("rhn", method, rank, T=5, optimizer="sgd", lr=0.05, clip=None, update_every=2)


def test_gpu_checkpoint_round_trip(need_gpu):
    """to_host → state_dict → load into a fresh learner → a new backend continues exactly
    where an uninterrupted CPU run is."""
    T, B = 5, 2
    cpu = _learner("rhn", "ok", 2, B=B)
    gl = _learner("rhn", "ok", 2, B=B)
    backend = gpu.GPUBackend(gl)
    m = cpu.model
    xs, ys, resets = _inputs(T, B, m.n_in, m.n_out, np.float64, seed=3)
    for t in range(3):
        cpu.step(xs[t], ys[t], resets[t])
        backend.step(xs[t], ys[t], resets[t])
    backend.to_host()
    arrays, meta = gl.state_dict()
    fresh = _learner("rhn", "ok", 2, B=B)
    fresh.load_state_dict(arrays, meta)
    backend2 = gpu.GPUBackend(fresh)
    for t in range(3, T):
        loss_cpu = cpu.step(xs[t], ys[t], resets[t])
        loss_gpu = backend2.step(xs[t], ys[t], resets[t])
        assert abs(loss_gpu - loss_cpu) <= 1e-10 * abs(loss_cpu)
    backend2.to_host()
    _compare(cpu, fresh, 1e-10)


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru", "rhn"])
def test_cell_kernels_match_cpu(need_gpu, cell):
    """Forward, input rows, D (stored transposed) and H of one step, all four cells."""
    from numba import cuda

    from oknumba.cells import make_cell
    from oknumba.gpu.kernels import TPB, get_kernels

    c = make_cell(cell, 3, 5)
    B = 2
    rng = np.random.default_rng(0)
    W = c.init_W(rng, np.float64, "normal", 0.5)
    x = rng.normal(size=(B, c.n_in))
    s_prev = rng.normal(size=(B, c.S)) * 0.5
    buf = c.buffers(B, np.float64)
    s = np.zeros((B, c.S))
    c.step(W, x, s_prev, s, buf["rows"], buf["aux"], buf["D"], buf["H"], True)
    d = {k: cuda.to_device(np.zeros(shape)) for k, shape in
         dict(s=(B, c.S), rows=(B, c.n_terms, c.a), aux=(B, c.P), Dt=(B, c.n_terms, c.P, c.S),
              H=(B, c.S, c.S), tmp=(B, 6 * c.n)).items()}
    get_kernels(np.float64).cells[cell][B, TPB](cuda.to_device(W), cuda.to_device(x),
                                               cuda.to_device(s_prev), d["s"], d["rows"], d["aux"],
                                               d["Dt"], d["H"], d["tmp"])
    assert rel_err(d["s"].copy_to_host(), s) < 1e-14
    assert rel_err(d["rows"].copy_to_host(), buf["rows"]) < 1e-14
    assert rel_err(d["Dt"].copy_to_host().transpose(0, 1, 3, 2), buf["D"]) < 1e-14
    assert rel_err(d["H"].copy_to_host(), buf["H"]) < 1e-13


# --- errors ---------------------------------------------------------------------------------

def test_error_without_numba_cuda(monkeypatch):
    monkeypatch.setattr(gpu, "_numba_cuda_installed", lambda: False)
    assert not gpu.gpu_available()
    with pytest.raises(RuntimeError, match=r'pip install "oknumba\[cuda\]"') as err:
        gpu.require_gpu()
    assert "NUMBA_ENABLE_CUDASIM=1" in str(err.value)


def test_error_without_driver(monkeypatch):
    pytest.importorskip("numba_cuda")
    monkeypatch.setattr(gpu, "_driver_available", lambda: False)
    assert not gpu.gpu_available()
    with pytest.raises(RuntimeError, match=r"no CUDA driver/device was found \(numba\.cuda\.is_available\(\) is False\)") as err:
        gpu.require_gpu()
    assert "NUMBA_ENABLE_CUDASIM=1" in str(err.value)
    learner = _learner("rhn", "kf")
    with pytest.raises(RuntimeError, match="device='gpu' is not available"):
        gpu.GPUBackend(learner)


def test_unsupported_methods_say_what_is_supported(need_gpu):
    for method, kw in [("uoro", {}), ("tbptt", {"truncation": 2})]:
        with pytest.raises(NotImplementedError, match="supports the methods"):
            gpu.GPUBackend(_learner("rhn", method, **kw))


def test_import_touches_no_cuda():
    """Importing oknumba.gpu imports neither numba.cuda nor numba_cuda (no driver probe)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import sys, oknumba, oknumba.gpu\n"
            "assert 'numba.cuda' not in sys.modules and 'numba_cuda' not in sys.modules\n"
            "assert 'oknumba.gpu.kernels' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
