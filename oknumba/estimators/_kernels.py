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


@kernel(fastmath=True)
def add_kron_gradient(us, At, g, scale, dW):
    """``dW += scale · Σ_b Σ_i outer(us[b,i], A_iᵀ g[b])`` for factors stored as ``us``
    (B,r,a) and transposed ``At`` (B,r,P,S) — the gradient of a Kronecker-sum influence
    (identity ``δᵀ(u⊗A) = u ⊗ (δᵀA)``)."""
    B, r, P, S = At.shape
    a = us.shape[2]
    v = np.empty(P, dtype=dW.dtype)
    for b in range(B):
        for i in range(r):
            for j in range(P):
                acc = 0.0
                for p in range(S):
                    acc += At[b, i, j, p] * g[b, p]
                v[j] = acc
            for q in range(a):
                uq = scale * us[b, i, q]
                if uq != 0.0:
                    for j in range(P):
                        dW[q, j] += uq * v[j]


@kernel
def batched_matmul(H, A, out):
    """``out[b] = H[b] @ A[b]`` with ``A`` viewed as (S, ·): the dominant product of RTRL-type
    methods, one BLAS GEMM per stream."""
    for b in range(H.shape[0]):
        np.dot(H[b], A[b], out[b])
