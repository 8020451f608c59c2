"""Device twins of :mod:`oknumba._rng`: the same splitmix64 generator on the same per-stream
``uint64`` states, so a GPU run draws the same signs as a CPU run with the same seed."""
import warnings

import numpy as np
from numba import config, cuda

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11, _S63 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11), np.uint64(63)
_ONE = np.uint64(1)

if config.ENABLE_CUDASIM:
    # The simulator runs device code on NumPy uint64 scalars, whose (intended) wrap-around
    # warns; the compiled kernels wrap silently like the CPU kernels.
    warnings.filterwarnings("ignore", message="overflow encountered in scalar",
                            category=RuntimeWarning, module=__name__)


@cuda.jit(device=True)
def next_u64(state, b):
    z = state[b] + _GOLDEN
    state[b] = z
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True)
def rademacher(state, b):
    """±1.0 with probability 1/2 each (as :func:`oknumba._rng.rademacher`)."""
    return 1.0 if (next_u64(state, b) >> _S63) == _ONE else -1.0


@cuda.jit(device=True)
def uniform(state, b):
    """Uniform in [0, 1) with 53 random bits (as :func:`oknumba._rng.uniform`)."""
    return float(next_u64(state, b) >> _S11) * (1.0 / 9007199254740992.0)
