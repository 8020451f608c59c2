"""Package-level properties: import compiles nothing, the public names exist."""
import subprocess
import sys


def test_import_compiles_no_kernel():
    code = (
        "import sys, oknumba\n"
        "from numba.core.registry import CPUDispatcher\n"
        "compiled = [f'{m}.{k}' for m, mod in list(sys.modules.items()) if m.startswith('oknumba')\n"
        "            for k, v in vars(mod).items() if isinstance(v, CPUDispatcher) and v.signatures]\n"
        "n = sum(isinstance(v, CPUDispatcher) for m, mod in list(sys.modules.items())\n"
        "        if m.startswith('oknumba') for v in vars(mod).values())\n"
        "assert n > 20, n\n"
        "assert not compiled, compiled\n"
        "assert 'numba.cuda' not in sys.modules or 'NUMBA_ENABLE_CUDASIM' in __import__('os').environ\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api():
    """The names and call signatures the README documents (a changed signature fails here)."""
    import inspect

    import oknumba
    from oknumba.checkpoint import load_checkpoint, save_checkpoint

    documented = {
        "RNN": "cell, n_in, n_hidden, n_out, seed, dtype, init, init_scale, readout, depth, layers",
        "OnlineLearner": "model, method, rank, batch, optimizer, lr, clip, update_every, truncation,"
                         " seed, threads, device",
        "sequence_loss": "model, xs, ys, resets",
        "sequence_grad": "model, xs, ys, method, resets, rank, seed, truncation, threads",
        "predict": "model, xs, resets, state",
        "load_model": "path",
        "ok_reduce": "us, As, rank, rng, method",
        "ok_min_variance": "singular_values, rank",
        "measure_noise": "model, xs, methods, seeds, ys, resets, burn_in",
    }
    for name, params in documented.items():
        obj = getattr(oknumba, name)
        assert callable(obj), name
        got = ", ".join(inspect.signature(obj).parameters)
        assert got == params, f"oknumba.{name}({got}) differs from the documented ({params})"
    assert callable(oknumba.stream_loss) and callable(save_checkpoint) and callable(load_checkpoint)
    for method, params in {"predict": "xs, resets, state", "save": "path, vocab"}.items():
        got = ", ".join(inspect.signature(getattr(oknumba.RNN, method)).parameters)
        assert got == "self, " + params, f"RNN.{method}({got})"
    for method, params in {"step": "x_t, y_t, reset", "forward": "x_t, reset", "backward": "g"}.items():
        got = ", ".join(inspect.signature(getattr(oknumba.OnlineLearner, method)).parameters)
        assert got == "self, " + params, f"OnlineLearner.{method}({got})"
    for name in oknumba.__all__:
        assert getattr(oknumba, name) is not None, name


def test_kernel_cache_is_stamped_with_the_whole_package():
    """A change anywhere in the package must invalidate every cached kernel (Numba alone only
    watches the kernel's own file)."""
    import os

    code = ("from oknumba._jit import CACHE, package_source_hash\n"
            "from oknumba.estimators.ok import kron_step\n"
            "assert CACHE\n"
            "locator = kron_step._cache._impl.locator\n"
            "assert type(locator).__name__.startswith('Oknumba'), type(locator)\n"
            "assert locator.get_source_stamp() == package_source_hash()\n")
    # checked in a fresh process with the cache on, whatever this test run's OKNUMBA_CACHE
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, OKNUMBA_CACHE="1"))
    off = ("from oknumba.estimators.ok import kron_step\n"
           "from numba.core.caching import NullCache\n"
           "assert isinstance(kron_step._cache, NullCache), type(kron_step._cache)\n")
    subprocess.run([sys.executable, "-c", off], check=True, env=dict(os.environ, OKNUMBA_CACHE="0"))


def test_correctness_subset_without_jit():
    """The kernels stay valid Python: a subset of the exactness tests passes with
    NUMBA_DISABLE_JIT=1 (pure-Python execution of every kernel)."""
    import os
    import pathlib

    tests = pathlib.Path(__file__).parent
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subset = ("rtrl_equals_bptt or tbptt_truncation_one or full_rank_equals_exact"
              " or enumeration_of_sign_draws or parallel_stream or jvp_equals or H_matches")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", subset,
                           str(tests / "test_functional.py"), str(tests / "test_estimators.py"),
                           str(tests / "test_cells.py")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
