"""KF-RTRL (method ``"kf"``) and the r-KF-RTRL average (method ``"kf-avg"``).

KF-RTRL keeps one Kronecker term ``G̃ = u ⊗ A``. Each step the terms
``(u, HA), (ĥ_1, D_1), …, (ĥ_K, D_K)`` are mixed into one with independent signs ``c_t``:

    p_t = sqrt(‖A_t‖ / ‖u_t‖),   u ← Σ_t c_t p_t u_t,   A ← Σ_t c_t A_t / p_t

which is unbiased (cross terms vanish in expectation) and, for two terms, has the
variance-optimal ``Var = 2(‖u‖‖ĥ‖‖B‖‖D‖ + ⟨u,ĥ⟩⟨B,D⟩)`` with ``B = HA`` (spec section 4).
Terms with a zero factor are dropped (e.g. after a reset). Cost O(S² P) = O(n³).

``"kf-avg"`` is the mean of ``rank`` independent KF-RTRL copies — the paper's equal-cost
baseline for r-OK. Its r copies' factors are stored explicitly, ``us`` (B, r, a) and
``At`` (B, r, P, S), and propagated by one GEMM per stream, as OK's.
"""
import numpy as np

from .._threads import blas_single_threaded
from .kf_kernels import kf_step, kf_step_parallel
from .ok import KroneckerSumEstimator


class KFAverage(KroneckerSumEstimator):
    """Mean of ``rank`` independent KF-RTRL copies (method ``"kf-avg"``)."""

    method = "kf-avg"

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed)
        self.gradient_scale = 1.0 / self.rank
        self.At = np.zeros((batch, self.rank, cell.P, cell.S), self.dtype)
        self._work = np.zeros((batch, self.n_work, cell.P, cell.S), self.dtype)
        self._proj = None

    def reset(self, mask):
        self.us[mask] = 0.0
        self.At[mask] = 0.0

    def _step(self, H, rows, D, delta, dW, with_gradient):
        args = (H, self.At, self._work, self.us, rows, D, self._us_work, self.rng_state, delta,
                self.dtype.type(self.gradient_scale), dW, with_gradient)
        if self._parallel():
            if self._proj is None:
                self._proj = np.zeros((self.batch, self.rank, self.cell.P), self.dtype)
            with blas_single_threaded():
                kf_step_parallel(*args, self._proj)
        else:
            kf_step(*args)

    def _arrays(self):
        return {"us": self.us, "At": self.At, "rng_state": self.rng_state}


class KF(KFAverage):
    """KF-RTRL (method ``"kf"``): one Kronecker term, ``G̃ = u ⊗ A``."""

    method = "kf"
    takes_rank = False

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype, 1, seed)
