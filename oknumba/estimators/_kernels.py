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
def kron_gradient_stream(us_b, At_b, g_b, scale, dW, v):
    """``dW += scale · Σ_i outer(us_b[i], A_iᵀ g_b)`` for one stream's factors ``us_b``
    (r,a) and transposed ``At_b`` (r,P,S) (identity ``δᵀ(u⊗A) = u ⊗ (δᵀA)``); ``v`` is a
    (P,) work array."""
    r, P, S = At_b.shape
    for i in range(r):
        for j in range(P):
            acc = 0.0
            for p in range(S):
                acc += At_b[i, j, p] * g_b[p]
            v[j] = acc
        for q in range(us_b.shape[1]):
            uq = scale * us_b[i, q]
            if uq != 0.0:
                for j in range(P):
                    dW[q, j] += uq * v[j]


@kernel
def add_kron_gradient(us, At, g, scale, dW):
    """:func:`kron_gradient_stream` summed over the streams of ``us`` (B,r,a), ``At`` (B,r,P,S)."""
    v = np.empty(At.shape[2], dtype=dW.dtype)
    for b in range(At.shape[0]):
        kron_gradient_stream(us[b], At[b], g[b], scale, dW, v)


@kernel
def batched_matmul(H, A, out):
    """``out[b] = H[b] @ A[b]`` with ``A`` viewed as (S, ·): the dominant product of RTRL-type
    methods, one BLAS GEMM per stream."""
    for b in range(H.shape[0]):
        np.dot(H[b], A[b], out[b])
