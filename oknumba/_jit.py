"""The one place that decides how oknumba's kernels are compiled.

Every kernel in the package is decorated with :func:`kernel`, so the Numba policy
(on-disk caching, fast-math flags, parallelism) changes in one line.

* ``OKNUMBA_CACHE=0`` turns the on-disk cache off (it is on by default; Numba writes the
  cache beside the sources, or under ``NUMBA_CACHE_DIR`` for read-only installs).
* Fast-math uses a flag set without ``nnan``/``ninf`` so NaN and inf still propagate.

Decorating is lazy: importing :mod:`oknumba` never compiles anything.
"""
import os

from numba import njit

CACHE = os.environ.get("OKNUMBA_CACHE", "1") != "0"
#: Fast-math flags that keep IEEE NaN/inf semantics (see reference/toolchain.md).
SAFE_FASTMATH = {"contract", "reassoc", "arcp", "nsz", "afn"}


def kernel(fn=None, *, parallel=False, fastmath=False):
    """``numba.njit`` with the project's policy. Use as ``@kernel`` or ``@kernel(...)``."""

    def wrap(f):
        return njit(cache=CACHE, parallel=parallel,
                    fastmath=SAFE_FASTMATH if fastmath else False, nogil=True)(f)

    return wrap(fn) if fn is not None else wrap
