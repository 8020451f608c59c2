"""KF-RTRL kernels (spec section 4), shared by ``kf`` and ``kf-avg``: the product of each
copy's factor with H, the mixing of every copy with the new terms, and the batched step."""
import numpy as np
from numba import prange

from .._jit import kernel
from .._rng import rademacher
from ._kernels import kron_gradient_stream


@kernel
def kron_sum_product_stream(H_b, At_b, work_b, us_b, rows_b, D_b, us_work_b):
    """Fill one stream's k = r + K term block: ``work_b[:r] = At_b Hᵀ`` (one GEMM),
    ``work_b[r+k] = D_kᵀ``, ``us_work_b = [us_b; rows_b]``."""
    r, P, S = At_b.shape
    K = rows_b.shape[0]
    np.dot(At_b.reshape(r * P, S), H_b.T, work_b[:r].reshape(r * P, S))
    for kk in range(K):
        for p in range(S):
            for j in range(P):
                work_b[r + kk, j, p] = D_b[kk, p, j]
    us_work_b[:r] = us_b
    us_work_b[r:] = rows_b


@kernel
def kf_mix_stream(us_work_b, work_b, signs, us_b, At_b):
    """One stream: mix each copy i's propagated term ``(us_work_b[i], work_b[i])`` with the K
    new terms ``(us_work_b[r+k], work_b[r+k])`` into one term, with signs ``signs[i, :]``
    (length K + 1). Factors are stored transposed, ``work_b`` (r+K, P, S)."""
    k, P, S = work_b.shape
    r = At_b.shape[0]
    K = k - r
    dt = us_b.dtype
    u_new = np.empty(us_b.shape[1], dt)
    A_new = np.empty((P, S), dt)
    p_new = np.empty(K, dt)
    for kk in range(K):
        nD = np.sqrt(np.sum(work_b[r + kk] * work_b[r + kk]))
        nR = np.sqrt(np.sum(us_work_b[r + kk] * us_work_b[r + kk]))
        p_new[kk] = np.sqrt(nD / nR) if (nD > 0.0 and nR > 0.0) else 0.0
    for i in range(r):
        nu = np.sqrt(np.sum(us_work_b[i] * us_work_b[i]))
        nA = np.sqrt(np.sum(work_b[i] * work_b[i]))
        u_new[:] = 0.0
        A_new[:] = 0.0
        if nu > 0.0 and nA > 0.0:
            p1 = np.sqrt(nA / nu)
            c = signs[i, 0]
            u_new += (c * p1) * us_work_b[i]
            A_new += (c / p1) * work_b[i]
        for kk in range(K):
            if p_new[kk] > 0.0:
                c = signs[i, kk + 1]
                u_new += (c * p_new[kk]) * us_work_b[r + kk]
                A_new += (c / p_new[kk]) * work_b[r + kk]
        us_b[i] = u_new
        At_b[i] = A_new


@kernel
def kf_stream_update(b, H, At, work, us, rows, D, us_work, rng_state):
    """Advance stream b's r copies: the product, then the mixing with signs drawn from
    ``rng_state[b]`` (only sign products matter: each copy's first sign stays +1)."""
    r = At.shape[1]
    k = work.shape[1]
    kron_sum_product_stream(H[b], At[b], work[b], us[b], rows[b], D[b], us_work[b])
    signs = np.ones((r, k - r + 1), us.dtype)
    for i in range(r):
        for kk in range(1, k - r + 1):
            signs[i, kk] = rademacher(rng_state, b)
    kf_mix_stream(us_work[b], work[b], signs, us[b], At[b])


@kernel
def kf_step(H, At, work, us, rows, D, us_work, rng_state, delta, scale, dW, with_gradient):
    """All streams in turn: :func:`kf_stream_update`, then (optionally) the gradient
    ``dW += scale · δ_bᵀ G̃_b`` of the updated estimate."""
    v = np.empty(At.shape[2], dW.dtype)
    for b in range(At.shape[0]):
        kf_stream_update(b, H, At, work, us, rows, D, us_work, rng_state)
        if with_gradient:
            kron_gradient_stream(us[b], At[b], delta[b], scale, dW, v)


@kernel(parallel=True)
def kf_step_parallel(H, At, work, us, rows, D, us_work, rng_state, delta, scale, dW,
                     with_gradient, proj):
    """:func:`kf_step` with streams spread over Numba threads (use with one BLAS thread). The
    gradient goes through per-stream projections ``proj[b, i] = A_iᵀ δ_b`` (B,r,P) summed
    after the parallel loop, so no two threads write to ``dW``."""
    B, r, P, S = At.shape
    for b in prange(B):
        kf_stream_update(b, H, At, work, us, rows, D, us_work, rng_state)
        if with_gradient:
            np.dot(At[b].reshape(r * P, S), delta[b], proj[b].reshape(r * P))
    if with_gradient:
        for b in range(B):
            dW += scale * np.dot(np.ascontiguousarray(us[b].T), proj[b])
