"""Device registration of :mod:`oknumba._rng`: the very splitmix64 functions of the CPU,
compiled for numba.cuda, on the same per-stream ``uint64`` states, so a GPU run draws the same
signs as a CPU run with the same seed."""
from numba.cuda.extending import register_jitable

from .._rng import next_u64, rademacher, uniform   # (the simulator's uint64 wrap-around
                                                    # warnings are filtered there)

for _f in (next_u64, rademacher, uniform):
    register_jitable(_f)

__all__ = ["next_u64", "rademacher", "uniform"]
