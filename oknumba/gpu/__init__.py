"""Optional GPU path (numba.cuda) for the online learner.

Importing :mod:`oknumba` or :mod:`oknumba.gpu` never touches a CUDA driver and does not even
import ``numba.cuda``; the probe runs on the first call of :func:`gpu_available` or
:func:`require_gpu`, and the kernels compile on first use.

* :func:`gpu_available` — True when ``numba-cuda`` is installed and either a CUDA driver with a
  usable device is found or the CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` set before
  numba is imported; slow, for tests at tiny sizes).
* :func:`require_gpu` — raises :class:`RuntimeError` saying how to get one working.
* :class:`GPUBackend` (lazy) — keeps a learner's parameters, optimizer moments, states,
  influence factors and random states resident on the device and runs
  :meth:`oknumba.OnlineLearner.step` there (see :mod:`oknumba.gpu.backend`).

The kernels mirror the CPU ones operation by operation, one module per concept as on the CPU
side: :mod:`~oknumba.gpu.cells`, :mod:`~oknumba.gpu.readout`, :mod:`~oknumba.gpu.products`
(batched matmul), :mod:`~oknumba.gpu.kronecker` (the Kronecker methods' stored rows, in the
CPU's layout), :mod:`~oknumba.gpu.reduction` (Gram, QR, Jacobi and the theorem's mixing rule —
the CPU's own source, :mod:`oknumba.estimators.mixing`, compiled as a device function),
:mod:`~oknumba.gpu.uoro`, :mod:`~oknumba.gpu.bptt`, :mod:`~oknumba.gpu.optim`; per-method
orchestration in :mod:`~oknumba.gpu.estimators`. Random signs come from the same per-stream
splitmix64 states (:mod:`oknumba._rng`) in the same draw order, so CPU and GPU runs with the
same seed draw the same signs and agree to rounding.
"""
import importlib.util
import os

#: methods of :class:`oknumba.OnlineLearner` the GPU backend runs (all of them)
SUPPORTED_METHODS = ("ok", "ok-truncated", "kf", "kf-avg", "uoro", "rtrl", "tbptt")
#: cells with GPU kernels
SUPPORTED_CELLS = ("vanilla", "lstm", "gru", "rhn")

_INSTALL = 'install the optional extra: pip install "oknumba[cuda]" (it pulls numba-cuda)'
_SIM = ("or, to run the same code without a GPU in the (slow) CUDA simulator, set "
        "NUMBA_ENABLE_CUDASIM=1 in the environment before Python starts")


def _numba_cuda_installed():
    return importlib.util.find_spec("numba_cuda") is not None


def _driver_available():
    """``numba.cuda.is_available()`` (True in the simulator). Imports numba.cuda lazily."""
    from numba import cuda

    return bool(cuda.is_available())


def simulator_enabled():
    """Whether numba runs CUDA kernels in its simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    try:
        from numba import config
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    return bool(getattr(config, "ENABLE_CUDASIM", False))


def gpu_status():
    """``(ok, reason)``: whether the GPU path can run here and, if not, why and how to fix it."""
    if not _numba_cuda_installed():
        return False, ("the GPU path needs numba-cuda, which is not installed: " + _INSTALL
                       + "; " + _SIM + ".")
    try:
        found = _driver_available()
    except Exception as exc:  # a broken CUDA installation
        found, detail = False, f" ({type(exc).__name__}: {exc})"
    else:
        detail = ""
    if not found:
        late = ""
        if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0") and not simulator_enabled():
            late = (" NUMBA_ENABLE_CUDASIM is set but numba was imported before it was: set it"
                    " in the environment before Python starts.")
        return False, ("no CUDA GPU is usable: numba-cuda is installed but no CUDA driver/device"
                       f" was found (numba.cuda.is_available() is False){detail}. Install an NVIDIA"
                       " driver and the CUDA runtime (pip install \"numba-cuda[cu12]\" or"
                       " \"numba-cuda[cu13]\" brings the toolkit libraries), check"
                       " `python -c \"from numba import cuda; cuda.detect()\"`, " + _SIM + "."
                       + late)
    return True, "simulator" if simulator_enabled() else "driver"


def gpu_available():
    """True when the GPU path can run: numba-cuda installed and a CUDA device found (or the
    simulator on). Never raises."""
    try:
        return gpu_status()[0]
    except Exception:
        return False


def require_gpu():
    """Raise :class:`RuntimeError` with instructions unless :func:`gpu_available`."""
    ok, reason = gpu_status()
    if not ok:
        raise RuntimeError("device='gpu' is not available: " + reason)


def __getattr__(name):
    if name == "GPUBackend":
        from .backend import GPUBackend

        return GPUBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["gpu_available", "gpu_status", "require_gpu", "simulator_enabled", "GPUBackend",
           "SUPPORTED_METHODS", "SUPPORTED_CELLS"]
