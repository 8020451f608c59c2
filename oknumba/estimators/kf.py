"""KF-RTRL (method ``"kf"``) and the r-KF-RTRL average (method ``"kf-avg"``).

KF-RTRL keeps one Kronecker term ``G̃ = u ⊗ A``. Each step the terms
``(u, HA), (ĥ_1, D_1), …, (ĥ_K, D_K)`` are mixed into one with independent signs ``c_t``:

    p_t = sqrt(‖A_t‖ / ‖u_t‖),   u ← Σ_t c_t p_t u_t,   A ← Σ_t c_t A_t / p_t

which is unbiased (cross terms vanish in expectation) and, for two terms, has the
variance-optimal ``Var = 2(‖u‖‖ĥ‖‖B‖‖D‖ + ⟨u,ĥ⟩⟨B,D⟩)`` with ``B = HA`` (spec section 4).
Terms with a zero factor are dropped (e.g. after a reset). Cost O(S² P) = O(n³).

``"kf-avg"`` is the mean of ``rank`` independent KF-RTRL copies — the paper's equal-cost
baseline for r-OK; it shares OK's factor layout and product.
"""
import numpy as np

from .._jit import kernel
from .._rng import rademacher
from ._kernels import kron_gradient_stream
from .ok import KroneckerSumEstimator, kron_sum_product_stream


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
def kf_step(H, At, work, us, rows, D, us_work, rng_state, delta, scale, dW, with_gradient):
    """Per stream: product, KF mixing of every copy with signs from ``rng_state[b]`` (only
    sign products matter: the first sign of each copy is fixed to +1), optional gradient."""
    B, r, P, S = At.shape
    K = rows.shape[1]
    signs = np.ones((r, K + 1), us.dtype)
    v = np.empty(P, dW.dtype)
    for b in range(B):
        kron_sum_product_stream(H[b], At[b], work[b], us[b], rows[b], D[b], us_work[b])
        for i in range(r):
            for kk in range(K):
                signs[i, kk + 1] = rademacher(rng_state, b)
        kf_mix_stream(us_work[b], work[b], signs, us[b], At[b])
        if with_gradient:
            kron_gradient_stream(us[b], At[b], delta[b], scale, dW, v)


class KFAverage(KroneckerSumEstimator):
    """Mean of ``rank`` independent KF-RTRL copies (method ``"kf-avg"``)."""

    method = "kf-avg"

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed)
        self.gradient_scale = 1.0 / self.rank

    def _step(self, H, rows, D, delta, dW, with_gradient):
        kf_step(H, self.At, self._work, self.us, rows, D, self._us_work, self.rng_state, delta,
                self.dtype.type(self.gradient_scale), dW, with_gradient)


class KF(KFAverage):
    """KF-RTRL (method ``"kf"``): one Kronecker term, ``G̃ = u ⊗ A``."""

    method = "kf"
    takes_rank = False

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype, 1, seed)
