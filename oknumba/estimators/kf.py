"""KF-RTRL (method ``"kf"``) and the r-KF-RTRL average (method ``"kf-avg"``).

KF-RTRL keeps one Kronecker term ``G̃ = u ⊗ A``. Each step the terms
``(u, HA), (ĥ_1, D_1), …, (ĥ_K, D_K)`` are mixed into one with independent signs ``c_t``:

    p_t = sqrt(‖A_t‖ / ‖u_t‖),   u ← Σ_t c_t p_t u_t,   A ← Σ_t c_t A_t / p_t

which is unbiased (cross terms vanish in expectation) and, for two terms, has the
variance-optimal ``Var = 2(‖u‖‖ĥ‖‖B‖‖D‖ + ⟨u,ĥ⟩⟨B,D⟩)`` with ``B = HA`` (the rule of
Mujika et al. 2018, arXiv 1805.10842; the variance follows by expanding the square).
Terms with a zero factor are dropped (e.g. after a reset). Cost O(S² P) = O(n³).

``"kf-avg"`` is the mean of ``rank`` independent KF-RTRL copies — the paper's equal-cost
baseline for r-OK. Both run OK's storage and chunked pass
(:mod:`oknumba.estimators.ok`) with the mixing rule as the coefficient choice
(:func:`~oknumba.estimators.kf_kernels.kf_coefficients`).
"""
from .ok import KIND_KF, KroneckerSumEstimator


class KFAverage(KroneckerSumEstimator):
    """Mean of ``rank`` independent KF-RTRL copies (method ``"kf-avg"``)."""

    method = "kf-avg"
    _kind = KIND_KF

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed)
        self.gradient_scale = 1.0 / self.rank


class KF(KFAverage):
    """KF-RTRL (method ``"kf"``): one Kronecker term, ``G̃ = u ⊗ A``."""

    method = "kf"
    takes_rank = False

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype, 1, seed)
