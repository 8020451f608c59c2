"""Device twins of the large products: the batched ``X_b Y_b`` of the influence update, the
exact-RTRL gradient, and masked zeroing for resets.

* :func:`bmm` — tiled shared-memory matmul ``C_b = X_b Y_b`` (or ``X_b Y_bᵀ``), one z-slice of
  the grid per stream: the Kronecker methods' dominant product ``W_i ← A_i Hᵀ`` (stored
  transposed: ``W_iᵀ = A_iᵀ Hᵀ``) and exact RTRL's ``G' = H G + Σ_k ĥ_k ⊗ D_k`` with the
  Kronecker terms added in the epilogue (:mod:`oknumba.estimators.rtrl`);
* ``rtrl_grad`` — ``dW += Σ_b δ_bᵀ G_b``;
* ``zero_rows`` — ``arr[b] = 0`` for the streams flagged in a reset mask.
"""
import types

from numba import cuda

from ._device import TILE, per_dtype


def _build(F):
    """The product kernels for float type F."""

    @cuda.jit
    def bmm(X, Y, C, transY, kron, rows, Dt):
        """Tiled shared-memory ``C[b] = X[b] Y[b]`` (``Y[b]ᵀ`` if ``transY``) for X (B,M,Kd).
        With ``kron`` (exact RTRL, C = G (B,S,a·P)) the epilogue adds the Kronecker terms
        ``Σ_k rows[b,k,q] Dt[b,k,j,p]`` at ``C[b, p, q·P + j]``."""
        sX = cuda.shared.array((TILE, TILE), F)
        sY = cuda.shared.array((TILE, TILE), F)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        b = cuda.blockIdx.z
        M = C.shape[1]
        N = C.shape[2]
        Kd = X.shape[2]
        n0 = cuda.blockIdx.x * TILE
        m = cuda.blockIdx.y * TILE + ty
        n = n0 + tx
        acc = F(0)
        for k0 in range(0, Kd, TILE):
            kx = k0 + tx
            if m < M and kx < Kd:
                sX[ty, tx] = X[b, m, kx]
            else:
                sX[ty, tx] = 0.0
            if transY:       # sY[k, n] = Y[b, n, k], loaded along k (coalesced)
                nn = n0 + ty
                if nn < N and kx < Kd:
                    sY[tx, ty] = Y[b, nn, kx]
                else:
                    sY[tx, ty] = 0.0
            else:
                ky = k0 + ty
                if ky < Kd and n < N:
                    sY[ty, tx] = Y[b, ky, n]
                else:
                    sY[ty, tx] = 0.0
            cuda.syncthreads()
            for t in range(TILE):
                acc += sX[ty, t] * sY[t, tx]
            cuda.syncthreads()
        if m < M and n < N:
            if kron:
                P = Dt.shape[2]
                q = n // P
                j = n % P
                for kt in range(rows.shape[1]):
                    acc += rows[b, kt, q] * Dt[b, kt, j, m]
            C[b, m, n] = acc

    @cuda.jit
    def rtrl_grad(G, delta, dWf):
        """``dW_flat[c] += Σ_b Σ_p δ[b,p] G[b,p,c]``."""
        c = cuda.grid(1)
        if c < dWf.shape[0]:
            acc = dWf[c]
            for b in range(G.shape[0]):
                t = F(0)
                for p in range(G.shape[1]):
                    t += delta[b, p] * G[b, p, c]
                acc += t
            dWf[c] = acc

    @cuda.jit
    def zero_rows(mask, arr):
        """``arr[b] = 0`` (arr viewed (B, ·)) for the streams with ``mask[b]``."""
        b = cuda.blockIdx.y
        if mask[b] != 0:
            step = cuda.gridDim.x * cuda.blockDim.x
            for e in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, arr.shape[1], step):
                arr[b, e] = 0.0

    return types.SimpleNamespace(bmm=bmm, rtrl_grad=rtrl_grad, zero_rows=zero_rows)


get = per_dtype(_build)
