"""Device twin of the optimizer step (:mod:`oknumba.optim`): gradient scale (1/B), per-parameter
norm clipping ``g ← g · min(1, c/‖g‖)`` and Adam (bias corrections folded into the step size and
ε, as on the CPU) or SGD; the gradient is zeroed after the update. The two norms (before
clipping) land in a float64 result vector the step copies back once.
"""
import math
import types

import numpy as np
from numba import cuda

from ._device import TPB, per_dtype


def _build(F):
    """The optimizer kernels for float type F."""
    f64 = np.float64

    @cuda.jit
    def grad_norms(gW, gV, scale, out, idx):
        """One block: ``out[idx] = ‖scale·gW‖``, ``out[idx+1] = ‖scale·gV‖`` (float64)."""
        sh = cuda.shared.array((2, TPB), f64)
        tid = cuda.threadIdx.x
        a0 = 0.0
        for e in range(tid, gW.shape[0], TPB):
            g = F(gW[e] * scale)
            a0 += g * g
        a1 = 0.0
        for e in range(tid, gV.shape[0], TPB):
            g = F(gV[e] * scale)
            a1 += g * g
        sh[0, tid] = a0
        sh[1, tid] = a1
        cuda.syncthreads()
        half = TPB // 2
        while half > 0:
            if tid < half:
                sh[0, tid] += sh[0, tid + half]
                sh[1, tid] += sh[1, tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            out[idx] = math.sqrt(sh[0, 0])
            out[idx + 1] = math.sqrt(sh[1, 0])

    @cuda.jit(device=True)
    def scaled_clipped(g, e, norm, scale, max_norm):
        gi = F(g[e] * scale)
        if max_norm > 0.0 and norm > max_norm:
            gi = F(gi * (max_norm / norm))
        return gi

    @cuda.jit
    def adam(p, g, m, v, norms, idx, scale, max_norm, lr_t, b1, b2, eps_t):
        """Scale, clip (by ``norms[idx]``), Adam step (bias corrections folded into lr_t and
        eps_t), zero the gradient — as :func:`oknumba.optim._adam_pair` for one parameter."""
        e = cuda.grid(1)
        if e < p.shape[0]:
            gi = scaled_clipped(g, e, norms[idx], scale, max_norm)
            m[e] = b1 * m[e] + (1.0 - b1) * gi
            v[e] = b2 * v[e] + (1.0 - b2) * gi * gi
            p[e] -= lr_t * m[e] / (math.sqrt(v[e]) + eps_t)
            g[e] = 0.0

    @cuda.jit
    def sgd(p, g, norms, idx, scale, max_norm, lr):
        e = cuda.grid(1)
        if e < p.shape[0]:
            gi = scaled_clipped(g, e, norms[idx], scale, max_norm)
            p[e] -= lr * gi
            g[e] = 0.0

    return types.SimpleNamespace(grad_norms=grad_norms, adam=adam, sgd=sgd)


get = per_dtype(_build)
