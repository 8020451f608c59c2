"""Device twin of the softmax readout (:func:`oknumba.model.readout_loss_grad`).

Per stream b with a target ``y_b ≥ 0``: logits ``o = [h, 1] V``, ``p = softmax(o)``, the loss
``−log p_y`` (float64, into ``lossv[b]``), ``g_b = p − onehot(y_b)`` (= ∂L/∂o) and
``δ_b = ∂L/∂s = V_h g_b`` (zero on the state entries the readout does not see); the V gradient
``dV += Σ_b [h_b, 1]ᵀ g_b`` is summed over the streams in order. Streams without a target
(``y_b = −1``) contribute nothing.
"""
import math
import types

import numpy as np
from numba import cuda

from ._device import per_dtype, stream_block


def _build(F):
    """The readout kernels for float type F."""
    f64 = np.float64

    @cuda.jit
    def readout(V, s, y, n, g, delta, lossv):
        """Per stream (one block): logits, softmax, loss (float64, into ``lossv[b]``),
        ``g[b] = p − onehot(y)`` and ``delta[b] = ∂L/∂s``."""
        b, tid, nt = stream_block()
        n_out = V.shape[1]
        S = s.shape[1]
        sh = cuda.shared.array(1, f64)
        if y[b] < 0:
            for o in range(tid, n_out, nt):
                g[b, o] = 0.0
            for i in range(tid, S, nt):
                delta[b, i] = 0.0
            if tid == 0:
                lossv[b] = 0.0
            return
        for o in range(tid, n_out, nt):
            acc = V[n, o]
            for i in range(n):
                acc += s[b, i] * V[i, o]
            g[b, o] = acc
        cuda.syncthreads()
        if tid == 0:
            mx = g[b, 0]
            for o in range(1, n_out):
                if g[b, o] > mx:
                    mx = g[b, o]
            z = 0.0
            for o in range(n_out):
                g[b, o] = math.exp(g[b, o] - mx)
                z += g[b, o]
            yb = y[b]
            lossv[b] = math.log(z) + mx - (math.log(g[b, yb]) + mx)
            sh[0] = z
        cuda.syncthreads()
        z = sh[0]
        for o in range(tid, n_out, nt):
            g[b, o] = g[b, o] / z
        cuda.syncthreads()
        if tid == 0:
            g[b, y[b]] -= 1.0
        cuda.syncthreads()
        for i in range(tid, S, nt):
            if i < n:
                acc = 0.0
                for o in range(n_out):
                    acc += g[b, o] * V[i, o]
                delta[b, i] = acc
            else:
                delta[b, i] = 0.0

    @cuda.jit
    def readout_dV(s, y, g, n, dV):
        """``dV[i, o] += Σ_b [h_b, 1]_i g[b, o]`` (streams in order; one thread per entry)."""
        e = cuda.grid(1)
        n_out = dV.shape[1]
        if e < dV.shape[0] * n_out:
            i = e // n_out
            o = e % n_out
            acc = dV[i, o]
            for b in range(y.shape[0]):
                if y[b] >= 0:
                    if i < n:
                        acc += s[b, i] * g[b, o]
                    else:
                        acc += g[b, o]
            dV[i, o] = acc

    return types.SimpleNamespace(readout=readout, readout_dV=readout_dV)


get = per_dtype(_build)
