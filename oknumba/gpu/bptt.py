"""Device twin of truncated backpropagation through time (:func:`oknumba.estimators.bptt.backprop_chunk`).

The learner's window of the last k steps (``rows`` (k,B,K,a), ``Dt`` (k,B,K,P,S) — ``D``
transposed, as the cell kernel writes it —, ``H`` (k,B,S,S), ``deltas`` (k,B,S), ``resets``
(k,B)) stays on the device; every k steps the backward pass runs from the last step to the
first:

    g_t = δ_t + g_{t+1} H_{t+1}   (the second term dropped for a stream reset before t+1),
    dW += Σ_b Σ_k outer(ĥ_{k,t}, g_tᵀ D_{k,t})

``v_k = g_tᵀ D_{k,t}`` is the Kronecker methods' row projection
(:mod:`oknumba.gpu.kronecker` ``project_rows`` over the stored ``D_kᵀ``) and
``Σ_b Σ_k outer(ĥ_k, v_k)`` its gradient product ``kron_grad`` (scale 1); ``carry`` forms the next ``g`` from ``g H`` and the earlier step's δ.
"""
import types

from numba import cuda

from ._device import per_dtype


def _build(F):
    """The TBPTT kernels for float type F."""

    @cuda.jit
    def carry(g, H, reset, delta_prev, out):
        """``out[b] = δ_prev[b] + (0 if reset[b] else g[b]ᵀ H[b])``."""
        e = cuda.grid(1)
        B, S = g.shape
        if e < B * S:
            b = e // S
            i = e % S
            acc = F(0)
            if reset[b] == 0:
                for p in range(S):
                    gp = g[b, p]
                    if gp != 0.0:
                        acc += gp * H[b, p, i]
            out[b, i] = acc + delta_prev[b, i]

    @cuda.jit
    def assign(src, dst):
        """``dst = src`` (element-wise, flat views)."""
        e = cuda.grid(1)
        if e < dst.shape[0]:
            dst[e] = src[e]

    return types.SimpleNamespace(carry=carry,
                                 assign=assign)


get = per_dtype(_build)
