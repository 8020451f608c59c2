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
    import oknumba

    for name in ("RNN", "OnlineLearner", "sequence_loss", "sequence_grad", "stream_loss",
                 "ok_reduce", "ok_min_variance", "measure_noise"):
        assert hasattr(oknumba, name), name


def test_kernel_cache_is_stamped_with_the_whole_package():
    """A change anywhere in the package must invalidate every cached kernel (Numba alone only
    watches the kernel's own file)."""
    from oknumba._jit import CACHE, package_source_hash
    from oknumba.estimators.ok import kron_step

    if not CACHE:
        return
    locator = kron_step._cache._impl.locator
    assert type(locator).__name__.startswith("Oknumba")
    assert locator.get_source_stamp() == package_source_hash()


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
