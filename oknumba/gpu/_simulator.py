"""A fix for a race in numba-cuda's CUDA simulator, applied only when the simulator is on.

**The race.** The simulator runs each CUDA thread of a block as a Python thread. A call
``cuda.shared.array(shape, dtype)`` must give every thread of the block the *same* array; the
simulator keys the arrays by the calling source line (``FakeCUDAShared.array`` in
``numba/cuda/simulator/kernelapi.py``)::

    stack = traceback.extract_stack(sys._getframe())   # slow: walks and formats the stack
    caller = stack[-2][0:2]
    res = self._allocations.get(caller)
    if res is None:
        res = np.empty(shape, dtype)
        self._allocations[caller] = res                 # check-then-insert, no lock
    return res

Two threads of a block that reach the same ``cuda.shared.array`` line while the entry is
still missing both see ``None`` (a GIL switch lands inside the slow ``extract_stack`` often,
more so on a process's first launches when ``linecache`` reads the sources from disk, i.e.
after a cold compile); each allocates, the last ``insert`` wins, and the other thread keeps a
*private* "shared" array for the whole launch. Everything it stores there (a Householder
scale, a Jacobi rotation, a staged Gram tile) is invisible to the block, and it reads
uninitialised memory: the intermittent GPU-vs-CPU mismatches (``influence 2.1e-1``, NaN
parameters) of the parity tests, in about one run in eight. No real GPU has this problem —
shared memory is one allocation per block — so the kernels are right and the witness was
wrong.

**The fix.** The same lookup under one lock, keyed by the caller's frame
(``sys._getframe(1)``: file name and line, the key the simulator uses) instead of a formatted
stack. :func:`install` swaps it in once; ``tests/test_gpu.py`` shows the unpatched
allocation racing and the patched one not, deterministically.
"""
import sys
import threading

import numpy as np

_LOCK = threading.Lock()


def _locked_shared_array(self, shape, dtype, alignment=None):
    """``FakeCUDAShared.array`` with the allocation under a lock (module docstring)."""
    from numba.core import types
    from numba.np import numpy_support

    if alignment is not None:
        raise RuntimeError("Array alignment is not supported in cudasim")
    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    if shape == 0:       # dynamic shared memory: one buffer for every call, no allocation
        count = self._dynshared_size // np.dtype(dtype).itemsize
        return np.frombuffer(self._dynshared.data, dtype=dtype, count=count)
    frame = sys._getframe(1)
    caller = (frame.f_code.co_filename, frame.f_lineno)
    with _LOCK:
        res = self._allocations.get(caller)
        if res is None:
            res = np.empty(shape, dtype)
            self._allocations[caller] = res
    return res


def install():
    """Replace the simulator's racy shared-array allocation (idempotent). A no-op unless the
    simulator is enabled (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config

    if not config.ENABLE_CUDASIM:
        return False
    from numba.cuda.simulator import kernelapi

    cls = kernelapi.FakeCUDAShared
    if cls.array is not _locked_shared_array:
        cls._unpatched_array = cls.array
        cls.array = _locked_shared_array
    return True
