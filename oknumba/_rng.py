"""Explicit per-stream random state for kernels (splitmix64).

Each stream b owns one ``uint64`` word ``state[b]``; kernels draw from it and advance it, so
results depend only on the seed and never on global state, thread scheduling or the device
(the GPU path can run the same generator). ``seed_streams(seed, B)`` derives independent
stream states from one seed through ``numpy.random.SeedSequence``.

splitmix64 (Steele, Lea & Flood 2014): ``z ← state + 0x9E3779B97F4A7C15``;
``z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9``; ``z ← (z ⊕ z≫27)·0x94D049BB133111EB``; output ``z ⊕ z≫31``.
"""
import numbers
import warnings

import numpy as np

from numba.extending import register_jitable

# With NUMBA_DISABLE_JIT=1 these kernels run on NumPy uint64 scalars, whose (intended)
# wrap-around warns; compiled kernels wrap silently.
warnings.filterwarnings("ignore", message="overflow encountered in scalar",
                        category=RuntimeWarning, module=__name__)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11, _S63 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11), np.uint64(63)
_ONE = np.uint64(1)


# Plain functions in the subset Numba compiles for both targets: registered here for the CPU
# kernels (numba.extending.register_jitable) and in oknumba.gpu._rng for numba.cuda, so both
# devices draw from this one source.

def next_u64(state, b):
    """Advance ``state[b]`` and return the next splitmix64 output (uint64)."""
    z = state[b] + _GOLDEN
    state[b] = z
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def rademacher(state, b):
    """±1.0 with probability 1/2 each."""
    return 1.0 if (next_u64(state, b) >> _S63) == _ONE else -1.0


def uniform(state, b):
    """Uniform in [0, 1) with 53 random bits."""
    return float(next_u64(state, b) >> _S11) * (1.0 / 9007199254740992.0)


for _f in (next_u64, rademacher, uniform):
    register_jitable(_f)


def seed_streams(seed, batch):
    """Independent per-stream states (B,) uint64 from an integer seed, a
    ``numpy.random.Generator`` (one integer is drawn from it) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2 ** 63))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an integer, a numpy.random.Generator or None, got {type(seed).__name__}")
    return np.random.SeedSequence(seed).generate_state(batch, dtype=np.uint64)
