"""The GPU path (:mod:`oknumba.gpu`) against the CPU learner, at tiny sizes.

Every test is marked ``cuda``: the default run deselects them (``addopts = -m "not cuda"``);
they run in their own invocation, without a GPU in the CUDA simulator:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda tests/test_gpu.py   # scripts/test_gpu_sim.sh

The simulator runs every CUDA thread as a Python thread, so sizes stay tiny (n ≤ 8, B ≤ 3,
T ≤ 6) and the kernels use small blocks there (:mod:`oknumba.gpu._device`). The claim tested:
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
try:   # module level: simulated kernels look `cuda` up in their globals
    from numba import cuda
except ImportError:  # pragma: no cover - numba-cuda missing: the tests skip
    cuda = None

import oknumba.gpu as gpu
from conftest import rel_err
from oknumba import RNN, OnlineLearner

pytestmark = [
    pytest.mark.cuda,
    # the simulator runs splitmix64 on NumPy uint64 scalars, whose intended wrap-around warns
    pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning:oknumba._rng"),
]

TOL = {np.float64: 1e-10, np.float32: 5e-5}


@pytest.fixture(autouse=True)
def _fast_simulator():
    """The simulator's block scheduler busy-polls its Python threads; a short GIL switch
    interval lets the kernel threads run (about 10× faster here). Restored after each test.
    ``OKNUMBA_SIM_SWITCH_INTERVAL`` overrides it (scripts/stress_gpu_parity.py varies it)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(float(os.environ.get("OKNUMBA_SIM_SWITCH_INTERVAL", "5e-5")))
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def need_gpu():
    if not gpu.gpu_available():
        pytest.skip("no usable CUDA GPU and the simulator is off: " + gpu.gpu_status()[1])


def _learner(cell, method, rank=None, dtype=np.float64, B=3, n=4, n_in=3, n_out=3, seed=1,
             device="cpu", **kw):
    model = RNN(cell, n_in, n, n_out, seed=seed, dtype=dtype, init="normal", init_scale=0.5)
    return OnlineLearner(model, method, rank=rank, batch=B, seed=seed + 10, device=device, **kw)


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


def _compare(cpu, gl, tol, what=""):
    """Every piece of learner state the GPU run keeps, read through the public attributes
    (which bring the device's values back by themselves: no ``sync()`` here)."""
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
    if cpu.estimator.has_influence:
        checks["influence"] = (gl.estimator.dense(), cpu.estimator.dense())
    else:                      # TBPTT: its window, through the public state_dict
        g_arrays, c_arrays = gl.state_dict()[0], cpu.state_dict()[0]
        for k in ("rows", "D", "H", "deltas", "resets"):
            checks[f"window {k}"] = (g_arrays[f"estimator.{k}"], c_arrays[f"estimator.{k}"])
    for name, (g, c) in checks.items():
        assert rel_err(g, c) <= tol, f"{what}{name}: relative difference {rel_err(g, c):.2e} > {tol:g}"
    if hasattr(cpu.estimator, "rng_state"):
        np.testing.assert_array_equal(gl.estimator.rng_state, cpu.estimator.rng_state)
    assert (gl.steps, gl.updates, gl.optimizer.t) == (cpu.steps, cpu.updates, cpu.optimizer.t)


def _run_pair(cell, method, rank=None, dtype=np.float64, T=6, B=3, every_step=True, **kw):
    """The same run on the CPU and through ``OnlineLearner(device="gpu")``; compared after
    every step (each comparison reads the host views, so the next step re-uploads them) or,
    with ``every_step=False``, only at the end (the device state evolves untouched)."""
    cpu = _learner(cell, method, rank, dtype, B=B, **kw)
    gl = _learner(cell, method, rank, dtype, B=B, device="gpu", **kw)
    m = cpu.model
    xs, ys, resets = _inputs(T, B, m.n_in, m.n_out, dtype)
    tol = TOL[dtype]
    for t in range(T):
        loss_cpu = cpu.step(xs[t], ys[t], resets[t])
        loss_gpu = gl.step(xs[t], ys[t], resets[t])
        assert abs(loss_gpu - loss_cpu) <= tol * abs(loss_cpu), (t, loss_gpu, loss_cpu)
        if every_step or t == T - 1:
            _compare(cpu, gl, tol, f"step {t}: ")
    return cpu, gl


METHODS = [("ok", 2), ("ok-truncated", 2), ("kf", None), ("kf-avg", 2), ("uoro", None),
           ("rtrl", None), ("tbptt", None)]


def _kw(method):
    return {"truncation": 2} if method == "tbptt" else {}


# --- same numbers as the CPU --------------------------------------------------------------

@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru", "rhn"])
@pytest.mark.parametrize("method, rank", METHODS)
def test_gpu_matches_cpu(need_gpu, cell, method, rank):
    """Every method × every cell, float64, resets and missing targets, public API."""
    _run_pair(cell, method, rank, **_kw(method))


@pytest.mark.parametrize("method, rank", METHODS)
def test_gpu_matches_cpu_float32(need_gpu, method, rank):
    _run_pair("rhn", method, rank, np.float32, **_kw(method))


@pytest.mark.parametrize("cell, method, rank", [
    ("rhn", "ok", 1, ),        # k = r + 1 with r = 1
    ("gru", "ok", 2),          # two new terms: k = r + 2, systematic sampling
    ("rhn", "ok", 8),          # r ≥ a: the exact path (OK = exact RTRL)
    ("lstm", "kf-avg", 3),
])
def test_gpu_matches_cpu_special_ranks(need_gpu, cell, method, rank):
    _run_pair(cell, method, rank)


@pytest.mark.parametrize("method, rank", [("ok", 3), ("uoro", None), ("tbptt", None)])
def test_gpu_matches_cpu_n8_untouched(need_gpu, method, rank):
    """n = 8: several matmul tiles, Gram splits and strided thread loops per stream; the
    device state is compared only at the end (no round trips in between)."""
    _run_pair("rhn", method, rank, T=5, B=2, n=8, every_step=False, **{"truncation": 3} if method == "tbptt" else {})


@pytest.mark.parametrize("method, rank", [("ok", 2), ("rtrl", None), ("uoro", None)])
def test_gpu_matches_cpu_sgd_every_second_step_no_clip(need_gpu, method, rank):
    """Gradients accumulate between updates (compared after every step), SGD, no clipping."""
    _run_pair("rhn", method, rank, T=5, optimizer="sgd", lr=0.05, clip=None, update_every=2)


def test_gpu_checkpoint_round_trip(need_gpu):
    """state_dict of a GPU run → load into a fresh GPU learner → it continues exactly where
    an uninterrupted CPU run is."""
    T, B = 5, 2
    cpu = _learner("rhn", "ok", 2, B=B)
    gl = _learner("rhn", "ok", 2, B=B, device="gpu")
    m = cpu.model
    xs, ys, resets = _inputs(T, B, m.n_in, m.n_out, np.float64, seed=3)
    for t in range(3):
        cpu.step(xs[t], ys[t], resets[t])
        gl.step(xs[t], ys[t], resets[t])
    arrays, meta = gl.state_dict()
    fresh = _learner("rhn", "ok", 2, B=B, device="gpu")
    fresh.load_state_dict(arrays, meta)
    for t in range(3, T):
        loss_cpu = cpu.step(xs[t], ys[t], resets[t])
        loss_gpu = fresh.step(xs[t], ys[t], resets[t])
        assert abs(loss_gpu - loss_cpu) <= 1e-10 * abs(loss_cpu)
    _compare(cpu, fresh, 1e-10)


def test_gpu_reads_are_never_stale_and_writes_are_not_lost(need_gpu):
    """12 GPU steps, then ``model.params`` without ``sync()``: the current values, not the
    initial ones. A change written into the host arrays reaches the device's next step."""
    T, B = 12, 2
    cpu = _learner("rhn", "kf", B=B)
    gl = _learner("rhn", "kf", B=B, device="gpu")
    W0 = gl.model._params["W"].copy()
    m = cpu.model
    xs, ys, resets = _inputs(T, B, m.n_in, m.n_out, np.float64, seed=5)
    for t in range(T):
        cpu.step(xs[t], ys[t], resets[t])
        gl.step(xs[t], ys[t], resets[t])
    assert rel_err(gl.model._params["W"], W0) == 0.0     # the raw host copy is behind ...
    assert rel_err(gl.model.params["W"], cpu.model.params["W"]) <= 1e-10   # ... never a read
    assert rel_err(gl.model.params["W"], W0) > 1e-3
    assert rel_err(gl.state, cpu.state) <= 1e-10
    assert np.array_equal(gl.state_dict()[0]["params.W"], gl.model.params["W"])
    for ln in (cpu, gl):                                  # a user edit between steps
        ln.model.params["V"][...] *= 0.5
    for t in range(3):
        cpu.step(xs[t], ys[t], resets[t])
        gl.step(xs[t], ys[t], resets[t])
    _compare(cpu, gl, 1e-10)


@pytest.mark.parametrize("method", ["uoro", "tbptt"])
def test_gpu_run_folder_and_resume(need_gpu, tmp_path, method):
    """``oknumba train copy --device gpu`` writes the CPU run's params.npz and checkpoint (read
    through the host views), and resuming it on the GPU ends where an uninterrupted CPU run does."""
    from oknumba import runner

    settings = dict(cell="rhn", hidden=4, method=method, batch=2, steps=8, seed=3, log_every=4,
                    checkpoint_every=4, threads=1)
    if method == "tbptt":
        settings["truncation"] = 2
    cpu_cfg = runner.make_config("copy", **settings)
    gpu_cfg = runner.make_config("copy", device="gpu", **dict(settings, steps=4))
    runner.train(cpu_cfg, tmp_path / "cpu")
    runner.train(gpu_cfg, tmp_path / "gpu")
    runner.resume(tmp_path / "gpu", steps=8)
    for name in ("params.npz",):
        with np.load(tmp_path / "cpu" / name) as c, np.load(tmp_path / "gpu" / name) as g:
            for k in c.files:
                assert rel_err(g[k], c[k]) <= 1e-10, (name, k)


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru", "rhn"])
def test_cell_kernels_match_cpu(need_gpu, cell):
    """Forward, input rows, D (stored transposed), H and the JVP ``H v`` of one step."""
    from numba import cuda

    from oknumba.cells import make_cell
    from oknumba.gpu import cells as gcells
    from oknumba.gpu._device import TPB

    c = make_cell(cell, 3, 5)
    B = 2
    rng = np.random.default_rng(0)
    W = c.init_W(rng, np.float64, "normal", 0.5)
    x = rng.normal(size=(B, c.n_in))
    s_prev = rng.normal(size=(B, c.S)) * 0.5
    v = rng.normal(size=(B, c.S))
    buf = c.buffers(B, np.float64)
    s = np.zeros((B, c.S))
    c.step(W, x, s_prev, s, buf["rows"], buf["aux"], buf["D"], buf["H"], True)
    jv = np.zeros((B, c.S))
    c.jvp(W, s_prev, s, buf["rows"], buf["aux"], v, jv)
    coef_shape, jvp_shape = gcells.scratch_shapes(c, B)
    d = {k: cuda.to_device(np.zeros(shape)) for k, shape in
         dict(s=(B, c.S), rows=(B, c.n_terms, c.a), aux=(B, c.P), Dt=(B, c.n_terms, c.P, c.S),
              H=(B, c.S, c.S), coef=coef_shape, out=(B, c.S), scratch=jvp_shape).items()}
    d_W, d_s_prev = cuda.to_device(W), cuda.to_device(s_prev)
    k = gcells.get(np.float64)
    k.step[cell][B, TPB](d_W, cuda.to_device(x), d_s_prev, d["s"], d["rows"], d["aux"], d["Dt"],
                         d["H"], d["coef"], True)
    k.jvp[cell][B, TPB](d_W, d_s_prev, d["s"], d["coef"], cuda.to_device(v), d["out"], d["scratch"])
    assert rel_err(d["s"].copy_to_host(), s) < 1e-14
    assert rel_err(d["rows"].copy_to_host(), buf["rows"]) < 1e-14
    assert rel_err(d["Dt"].copy_to_host().transpose(0, 1, 3, 2), buf["D"]) < 1e-14
    assert rel_err(d["H"].copy_to_host(), buf["H"]) < 1e-13
    assert rel_err(d["out"].copy_to_host(), jv) < 1e-13


def test_mixing_rule_has_one_source(need_gpu):
    """The device reduction calls the CPU's own mixing functions (no hand-kept copy)."""
    from oknumba.estimators import mixing, reduce
    from oknumba.gpu import reduction

    assert reduction.mixing_coefficients_into is mixing.mixing_coefficients_into
    assert reduction.split_point is mixing.split_point is reduce.split_point
    src = open(reduction.__file__).read()
    assert "def mixing_coefficients" not in src and "def split_point" not in src


def test_registry_names_each_device_estimator(need_gpu):
    """Every registered method's ``gpu`` entry is a device estimator class, and the splitmix64
    draws are the CPU's own functions."""
    from oknumba import _rng
    from oknumba.gpu import _rng as gpu_rng
    from oknumba.gpu import estimators
    from oknumba.methods import METHODS

    for info in METHODS.values():
        assert isinstance(getattr(estimators, info.gpu), type), info.name
    assert gpu_rng.next_u64 is _rng.next_u64 and gpu_rng.uniform is _rng.uniform


def _block_sum(out):
    """Each of 8 threads stores its index in shared memory; each then sums all 8 (= 28)."""
    sh = cuda.shared.array(8, np.float64)
    t = cuda.threadIdx.x
    sh[t] = t
    cuda.syncthreads()
    acc = 0.0
    for i in range(8):
        acc += sh[i]
    out[cuda.blockIdx.x, t] = acc


def _block_sum_kernel():
    return cuda.jit(_block_sum)


def test_simulator_shared_arrays_are_block_wide(need_gpu, monkeypatch):
    """The root cause of the old intermittent parity failures, shown deterministically: with
    a slow allocation, numba-cuda's own ``FakeCUDAShared.array`` hands two threads of one
    block different "shared" arrays (check-then-insert without a lock); the locked version
    installed by :mod:`oknumba.gpu._simulator` never does."""
    import time
    import types

    if not gpu.simulator_enabled():
        pytest.skip("a property of the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)")
    from numba.cuda.simulator import kernelapi

    from oknumba.gpu import _device, _simulator  # noqa: F401  (importing _device installs the fix)

    assert kernelapi.FakeCUDAShared.array is _simulator._locked_shared_array

    class SlowNumpy(types.ModuleType):
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def empty(*args, **kwargs):
            time.sleep(0.002)            # a GIL switch inside the allocation window
            return np.empty(*args, **kwargs)

    slow = SlowNumpy("slow_numpy")
    monkeypatch.setattr(kernelapi, "np", slow)
    monkeypatch.setattr(_simulator, "np", slow)

    def bad_launches():
        bad = 0
        for _ in range(3):
            out = np.zeros((2, 8))
            _block_sum_kernel()[2, 8](out)
            bad += int(np.any(out != 28.0))
        return bad

    assert bad_launches() == 0
    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", kernelapi.FakeCUDAShared._unpatched_array)
    assert bad_launches() > 0, ("numba-cuda's simulator no longer races on shared arrays:"
                                " oknumba.gpu._simulator's fix may be dropped")


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
    with pytest.raises(RuntimeError, match="device='gpu' is not available"):
        _learner("rhn", "kf", device="gpu")


def test_import_touches_no_cuda():
    """Importing oknumba.gpu imports neither numba.cuda nor numba_cuda (no driver probe)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import sys, oknumba, oknumba.gpu\n"
            "assert 'numba.cuda' not in sys.modules and 'numba_cuda' not in sys.modules\n"
            "assert 'oknumba.gpu.backend' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
