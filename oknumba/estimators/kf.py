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
from .ok import KroneckerSumEstimator


@kernel
def kf_mix_step(us_work, work, signs, us, At):
    """Per stream b and copy i: mix ``(us_work[b,i], work[b,i])`` (the propagated term) and
    the K new terms ``(us_work[b,r+k], work[b,r+k])`` into one, with signs ``signs[b,i,:]``
    (length K + 1). Factors are stored transposed, ``work`` (B, r+K, P, S)."""
    B, k, P, S = work.shape
    r = At.shape[1]
    K = k - r
    dt = us.dtype
    u_new = np.empty(us.shape[2], dt)
    A_new = np.empty((P, S), dt)
    p_new = np.empty(K, dt)
    for b in range(B):
        for kk in range(K):
            nD = np.sqrt(np.sum(work[b, r + kk] * work[b, r + kk]))
            nR = np.sqrt(np.sum(us_work[b, r + kk] * us_work[b, r + kk]))
            p_new[kk] = np.sqrt(nD / nR) if (nD > 0.0 and nR > 0.0) else 0.0
        for i in range(r):
            nu = np.sqrt(np.sum(us_work[b, i] * us_work[b, i]))
            nA = np.sqrt(np.sum(work[b, i] * work[b, i]))
            u_new[:] = 0.0
            A_new[:] = 0.0
            if nu > 0.0 and nA > 0.0:
                p1 = np.sqrt(nA / nu)
                c = signs[b, i, 0]
                u_new += (c * p1) * us_work[b, i]
                A_new += (c / p1) * work[b, i]
            for kk in range(K):
                if p_new[kk] > 0.0:
                    c = signs[b, i, kk + 1]
                    u_new += (c * p_new[kk]) * us_work[b, r + kk]
                    A_new += (c / p_new[kk]) * work[b, r + kk]
            us[b, i] = u_new
            At[b, i] = A_new


class KFAverage(KroneckerSumEstimator):
    """Mean of ``rank`` independent KF-RTRL copies (method ``"kf-avg"``)."""

    method = "kf-avg"
    stochastic = True

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed)
        self.gradient_scale = 1.0 / self.rank

    def update(self, W, s_prev, s, rows, aux, D, H):
        self._product(H, rows, D)
        signs = np.ones((self.batch, self.rank, self.cell.n_terms + 1), self.dtype)
        # only sign products matter: fix the first sign, draw the others
        signs[:, :, 1:] = (self.rng.integers(0, 2, size=signs[:, :, 1:].shape) * 2 - 1)
        kf_mix_step(self._us_work, self._work, signs, self.us, self.At)


class KF(KFAverage):
    """KF-RTRL (method ``"kf"``): one Kronecker term, ``G̃ = u ⊗ A``."""

    method = "kf"
    takes_rank = False

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype, 1, seed)
