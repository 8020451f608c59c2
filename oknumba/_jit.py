"""The one place that decides how oknumba's kernels are compiled.

Every kernel in the package is decorated with :func:`kernel`, so the Numba policy
(on-disk caching, fast-math flags, parallelism) changes in one line.

* ``OKNUMBA_CACHE=0`` turns the on-disk cache off (it is on by default; Numba writes the
  cache beside the sources, or under ``NUMBA_CACHE_DIR`` for read-only installs).
* Fast-math uses a flag set without ``nnan``/``ninf`` so NaN and inf still propagate.
* Floating-point division follows NumPy (``x/0`` is inf or NaN, no exception), so loops
  with a division vectorise.

Numba invalidates a cached kernel only when *its own* source file changes, not when a kernel
it calls in another module does, so an upgrade or an edit could silently run stale code. The
locators below therefore stamp every oknumba kernel with a hash of the whole package's
sources: any change to any module recompiles all of them.

Decorating is lazy: importing :mod:`oknumba` never compiles anything.
"""
import hashlib
import os
import pathlib

from numba import njit
from numba.core import caching

CACHE = os.environ.get("OKNUMBA_CACHE", "1") != "0"
#: Division by zero gives inf/NaN as in NumPy instead of raising ZeroDivisionError: the
#: Python-semantics check is a branch in every division that keeps loops from vectorising
#: (the Adam step ran 2× slower with it).
ERROR_MODEL = "numpy"
#: Fast-math flags that keep IEEE NaN/inf semantics (see reference/toolchain.md).
SAFE_FASTMATH = {"contract", "reassoc", "arcp", "nsz", "afn"}


_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
_package_stamp = None


def package_source_hash():
    """sha256 over the relative paths and contents of every ``.py`` file of the package."""
    global _package_stamp
    if _package_stamp is None:
        h = hashlib.sha256()
        for path in sorted(_PACKAGE_DIR.rglob("*.py")):
            h.update(str(path.relative_to(_PACKAGE_DIR)).encode())
            h.update(path.read_bytes())
        _package_stamp = h.hexdigest()
    return _package_stamp


def _package_locator(base):
    class Locator(base):
        def get_source_stamp(self):
            return package_source_hash()

        @classmethod
        def from_function(cls, py_func, py_file):
            try:
                inside = pathlib.Path(py_file).resolve().is_relative_to(_PACKAGE_DIR)
            except (OSError, ValueError):
                inside = False
            return super().from_function(py_func, py_file) if inside else None

    Locator.__name__ = Locator.__qualname__ = f"Oknumba{base.__name__}"
    return Locator


def _numba_name(name):
    return getattr(caching, name, None) or getattr(caching, "_" + name)


def _install_locators():
    impl = _numba_name("CacheImpl")
    if not any(getattr(c, "__name__", "").startswith("Oknumba") for c in impl._locator_classes):
        ours = [_package_locator(_numba_name(b)) for b in
                ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")]
        impl._locator_classes[0:0] = ours


if CACHE:
    _install_locators()


def kernel(fn=None, *, parallel=False, fastmath=False):
    """``numba.njit`` with the project's policy. Use as ``@kernel`` or ``@kernel(...)``."""

    def wrap(f):
        return njit(cache=CACHE, parallel=parallel, error_model=ERROR_MODEL,
                    fastmath=SAFE_FASTMATH if fastmath else False, nogil=True)(f)

    return wrap(fn) if fn is not None else wrap
