"""Pinning Numba and BLAS threads together, and restoring them afterwards."""
import contextlib
import copy
import os

import numba


@contextlib.contextmanager
def pinned_threads(n):
    """Within the block, use ``n`` Numba threads and ``n`` BLAS threads (numpy's and the one
    Numba's ``np.dot`` calls through scipy). ``n=None`` changes nothing."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be an integer >= 1, got {n!r}")
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS so the limit reaches it)
    from threadpoolctl import threadpool_limits

    n = min(n, numba.config.NUMBA_NUM_THREADS)
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(old)


_controller = None


def blas_single_threaded():
    """Context manager: every loaded BLAS (numpy's and scipy's, which Numba's ``np.dot``
    calls) on one thread — for kernels that already spread work over Numba threads and call
    BLAS from each of them (otherwise T × T threads fight over T cores)."""
    global _controller
    if _controller is None:
        import scipy.linalg  # noqa: F401  (loads scipy's BLAS so the controller sees it)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


class StepThreads:
    """Pins every loaded BLAS library to ``n`` threads around one call, cheaply enough for
    every learner step (about 1 µs per OpenBLAS library through its own
    ``openblas_{get,set}_num_threads``; threadpoolctl's context costs about 10 µs, which is
    half of a small model's step), and puts the previous counts back — except for the BLAS
    that scipy bundles for itself (``scipy.libs``), which only Numba's kernels and
    ``scipy.linalg`` call: that one stays at ``n`` after the step.

    Why pin: with the default all-cores BLAS pools, the mid-sized products of a step hand work
    to BLAS threads that wait for cores which other processes (or the other BLAS pool) hold —
    a 3–50× slowdown measured on 2 busy cores. Why scipy's stays pinned: raising a pool's
    count again after every step wakes its threads, and on busy cores they then take CPU
    from the next step — measured 1.09–1.20× slower than a pinned loop (Intel Xeon, 2 cores,
    one other CPU-bound process), against 0.94–1.00× when only numpy's count is put back.
    Numba's threads only matter for the parallel kernels, which the estimators run with the
    learner's ``threads`` (see :func:`numba_threads`)."""

    def __init__(self, n):
        import scipy.linalg  # noqa: F401  (loads scipy's BLAS, the one Numba's np.dot calls)
        from threadpoolctl import ThreadpoolController

        self.n = n
        self._raw, self._libs = [], []      # (get, set, restore?) and (controller, restore?)
        for lib in ThreadpoolController().lib_controllers:
            if lib.user_api != "blas":
                continue
            restore = not _scipy_private(lib.filepath)
            raw = _openblas_functions(lib)
            if raw is not None:
                self._raw.append((*raw, restore))
            else:
                self._libs.append((lib, restore))
        self._restores = any(restore for *_, restore in self._raw + self._libs)

    def for_kernels(self):
        """The same pin for the BLAS that compiled kernels call (Numba's ``np.dot`` goes
        through scipy): only scipy's own copy where it bundles one — numpy's BLAS, which no
        kernel calls, is then neither read nor changed (three ctypes calls less per step of
        the fused learner step) — else every BLAS, as :meth:`pin`."""
        if not any(not restore for *_, restore in self._raw + self._libs):
            return self
        pin = copy.copy(self)
        pin._raw = [e for e in self._raw if not e[-1]]
        pin._libs = [e for e in self._libs if not e[-1]]
        pin._restores = False
        return pin

    def pin(self):
        """Set ``n`` threads; returns what :meth:`restore` needs (None: nothing to put back)."""
        n = self.n
        old = []
        for get, set_, _ in self._raw:
            k = get()
            old.append(k)
            if k != n:
                set_(n)
        for lib, _ in self._libs:
            k = lib.get_num_threads()
            old.append(k)
            if k != n:
                lib.set_num_threads(n)
        return old if self._restores else None

    def restore(self, old):
        if old is None:
            return
        n = self.n
        i = 0
        for _, set_, restore in self._raw:
            if restore and old[i] != n:
                set_(old[i])
            i += 1
        for lib, restore in self._libs:
            if restore and old[i] != n and old[i] is not None:
                lib.set_num_threads(old[i])
            i += 1


def _scipy_private(path):
    """Whether a BLAS library file is the copy scipy's wheel bundles for itself (numpy has
    its own), which numpy code never calls."""
    parts = os.path.normpath(path).split(os.sep)
    return "scipy.libs" in parts


def _openblas_functions(lib):
    """``(get, set)`` ctypes functions of an OpenBLAS library with a pthreads pool, else None."""
    if lib.internal_api != "openblas" or getattr(lib, "threading_layer", None) != "pthreads":
        return None
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            get = getattr(lib.dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib.dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                return get, set_
    return None


@contextlib.contextmanager
def numba_threads(n):
    """Within the block, Numba's parallel kernels use ``n`` threads (``None``: unchanged)."""
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(old)
