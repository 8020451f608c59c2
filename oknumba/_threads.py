"""Pinning Numba and BLAS threads together, and restoring them afterwards."""
import contextlib

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
    """Pins every loaded BLAS library to ``n`` threads around one call and puts the previous
    counts back, cheaply enough for every learner step (about 0.2 µs per OpenBLAS library
    through its own ``openblas_{get,set}_num_threads``; threadpoolctl's context costs about
    10 µs, which is half of a small model's step).

    Why: with the default all-cores BLAS pools, the mid-sized products of a step hand work to
    BLAS threads that wait for cores which other processes (or the other BLAS pool) hold — a
    10–50× slowdown measured on 2 busy cores. Numba's threads only matter for the parallel
    kernels, which the estimators run with the learner's ``threads`` (see
    :func:`numba_threads`)."""

    def __init__(self, n):
        import scipy.linalg  # noqa: F401  (loads scipy's BLAS, the one Numba's np.dot calls)
        from threadpoolctl import ThreadpoolController

        self.n = n
        self._raw, self._libs = [], []
        for lib in ThreadpoolController().lib_controllers:
            if lib.user_api != "blas":
                continue
            raw = _openblas_functions(lib)
            if raw is not None:
                self._raw.append(raw)
            else:
                self._libs.append(lib)

    def pin(self):
        """Set ``n`` threads; returns what :meth:`restore` needs."""
        n = self.n
        old = []
        for get, set_ in self._raw:
            k = get()
            old.append(k)
            if k != n:
                set_(n)
        for lib in self._libs:
            k = lib.get_num_threads()
            old.append(k)
            if k != n:
                lib.set_num_threads(n)
        return old

    def restore(self, old):
        n = self.n
        i = 0
        for _, set_ in self._raw:
            if old[i] != n:
                set_(old[i])
            i += 1
        for lib in self._libs:
            if old[i] != n and old[i] is not None:
                lib.set_num_threads(old[i])
            i += 1


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
