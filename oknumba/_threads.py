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
