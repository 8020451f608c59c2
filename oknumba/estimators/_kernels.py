"""Kernels shared by several estimators."""
import numpy as np

from .._jit import kernel


@kernel(fastmath=True)
def add_outer_rows_D(rows, D, g, scale, dW):
    """``dW += scale · Σ_b Σ_k outer(rows[b,k], g[b]ᵀ D[b,k])`` — the gradient of a loss with
    ``∂L/∂s = g`` through ``F = Σ_k ĥ_k ⊗ D_k`` (identity ``δᵀ(u⊗A) = u ⊗ (δᵀA)``)."""
    B, K, S, P = D.shape
    a = rows.shape[2]
    v = np.empty(P, dtype=dW.dtype)
    for b in range(B):
        for k in range(K):
            for j in range(P):
                v[j] = 0.0
            for p in range(S):
                gp = g[b, p]
                if gp != 0.0:
                    for j in range(P):
                        v[j] += gp * D[b, k, p, j]
            for q in range(a):
                rq = scale * rows[b, k, q]
                if rq != 0.0:
                    for j in range(P):
                        dW[q, j] += rq * v[j]


@kernel
def batched_matmul(H, A, out):
    """``out[b] = H[b] @ A[b]`` with ``A`` viewed as (S, ·): the dominant product of RTRL-type
    methods, one BLAS GEMM per stream."""
    for b in range(H.shape[0]):
        np.dot(H[b], A[b], out[b])
