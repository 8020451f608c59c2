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
def kf_mix_step(us, As_prod, rows, D, signs, us_out, As_out):
    """Per stream b and copy i: mix ``(us[b,i], As_prod[b,:,i])`` and the K terms
    ``(rows[b,k], D[b,k])`` into one term with signs ``signs[b, i, :]`` (length K + 1)."""
    B, S, r, P = As_prod.shape
    K = rows.shape[1]
    a = us.shape[2]
    dt = us.dtype
    u_new = np.empty(a, dt)
    A_new = np.empty((S, P), dt)
    normD = np.empty(K, dt)
    normR = np.empty(K, dt)
    for b in range(B):
        for kk in range(K):
            normD[kk] = np.sqrt(np.sum(D[b, kk] * D[b, kk]))
            normR[kk] = np.sqrt(np.sum(rows[b, kk] * rows[b, kk]))
        for i in range(r):
            nu = np.sqrt(np.sum(us[b, i] * us[b, i]))
            nA = 0.0
            for p in range(S):
                for j in range(P):
                    nA += As_prod[b, p, i, j] * As_prod[b, p, i, j]
            nA = np.sqrt(nA)
            u_new[:] = 0.0
            A_new[:] = 0.0
            if nu > 0.0 and nA > 0.0:
                p1 = np.sqrt(nA / nu)
                c = signs[b, i, 0]
                u_new += (c * p1) * us[b, i]
                A_new += (c / p1) * As_prod[b, :, i, :]
            for kk in range(K):
                if normD[kk] > 0.0 and normR[kk] > 0.0:
                    p2 = np.sqrt(normD[kk] / normR[kk])
                    c = signs[b, i, kk + 1]
                    u_new += (c * p2) * rows[b, kk]
                    A_new += (c / p2) * D[b, kk]
            us_out[b, i] = u_new
            As_out[b, :, i, :] = A_new


class KFAverage(KroneckerSumEstimator):
    """Mean of ``rank`` independent KF-RTRL copies (method ``"kf-avg"``)."""

    method = "kf-avg"
    stochastic = True

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed)
        self.gradient_scale = 1.0 / self.rank

    def update(self, W, s_prev, s, rows, aux, D, H):
        self._product(H)
        signs = np.ones((self.batch, self.rank, self.cell.n_terms + 1), self.dtype)
        # only sign products matter: fix the first sign, draw the others
        signs[:, :, 1:] = (self.rng.integers(0, 2, size=signs[:, :, 1:].shape) * 2 - 1)
        kf_mix_step(self.us, self._As_prod, rows, D, signs, self.us, self.As)


class KF(KFAverage):
    """KF-RTRL (method ``"kf"``): one Kronecker term, ``G̃ = u ⊗ A``."""

    method = "kf"
    takes_rank = False

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype, 1, seed)
