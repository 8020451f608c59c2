"""What every GPU kernel module shares: launch constants, the per-float-type kernel factory,
and small device helpers.

Kernels are generated per float type by a module's ``build(F)`` (constants such as ``1`` are
cast to the array type where the CPU kernel works in that type) and compiled on first launch;
:func:`per_dtype` caches the result. Block sizes are small under the simulator (each simulated
thread is a Python thread) so that tiny test problems still span several blocks and tiles.
Importing this module under the simulator installs the fix for its shared-memory race
(:mod:`oknumba.gpu._simulator`).
"""
import math

import numpy as np
from numba import config, cuda

from . import _simulator

SIM = bool(config.ENABLE_CUDASIM)
if SIM:
    _simulator.install()

#: tile of the batched matmul (TILE × TILE threads per block)
TILE = 4 if SIM else 16
#: threads per block of the per-stream and element-wise kernels (a power of two)
TPB = 8 if SIM else 128
#: columns of the stored rows staged in shared memory per pass of the Gram kernel
GRAM_COLS = 4 if SIM else 32
#: columns handled by one Gram block (split-K; partials summed in order)
GRAM_SPLIT = 16 if SIM else 2048
#: most terms k = r + K the Gram kernel and the small reduction take
KMAX = 64


def blocks(n, tpb=TPB):
    """Blocks of ``tpb`` threads covering ``n`` items (at least one)."""
    return max(1, (n + tpb - 1) // tpb)


def per_dtype(build):
    """``get(dtype)``: ``build(F)`` for the NumPy scalar type F, built once per dtype."""
    cache = {}

    def get(dtype):
        dt = np.dtype(dtype)
        if dt not in cache:
            cache[dt] = build(dt.type)
        return cache[dt]

    get.__doc__ = build.__doc__
    return get


@cuda.jit(device=True)
def stream_block():
    """``(b, tid, nt)``: the layout of every per-stream kernel — block b works on stream b, its
    ``nt`` threads stride over the stream's items starting at ``tid``."""
    return cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x


@cuda.jit(device=True)
def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))
