"""OK: the Optimal Kronecker-Sum approximation of RTRL (methods ``"ok"``, ``"ok-truncated"``).

Per stream the influence is kept as ``G̃ = Σ_{i=1}^r u_i ⊗ A_i`` with factors stored as
``us`` (B, r, a) and the transposed ``At`` (B, r, P, S) (``At[b, i] = A_iᵀ``). Each step:

1. ``A_iᵀ ← A_iᵀ Hᵀ`` for all i as **one** GEMM per stream over the contiguous (r·P, S)
   block (the dominant O(r S² P) cost), written into a work block of r + K factors;
2. the K new terms ``ĥ_k ⊗ D_k`` of ``F_t`` (K = 1, or 2 for the GRU) fill the last K
   slots, giving k = r + K terms whose large factors are one contiguous (k, S·P) matrix;
3. :func:`~oknumba.estimators.reduce.reduce_terms_gram` replaces them by r terms —
   unbiased and variance-minimal (rotation construction for k = r + 1,
   inclusion-probability sampling otherwise); its large-side work is the Gram matrix
   (k, S·P)(S·P, k) and one (r, k)(k, S·P) recombination product, both BLAS GEMMs.
   ``"ok-truncated"`` keeps the top r singular components instead: lower error, but
   **biased**.

Cost per stream and step: 2 r S² P (products) + 2 k² S P (Gram) + 2 r k S P (recombination)
+ O(k a² + k³) (small QR and eigen-decomposition); memory O(r S P).
"""
import numpy as np

from .._jit import kernel
from ._kernels import add_kron_gradient
from .base import Estimator
from .reduce import MODE_OPTIMAL, MODE_TRUNCATED, _as_rng, _check_rank, draw_signs, reduce_terms_gram


@kernel
def kron_sum_product(H, At, work, us, rows, D, us_work):
    """Fill the k = r + K term block of each stream: ``work[b, :r] = At[b] Hᵀ`` (one GEMM),
    ``work[b, r+k] = D_kᵀ``, ``us_work[b] = [us[b]; rows[b]]``."""
    B, r, P, S = At.shape
    K = rows.shape[1]
    for b in range(B):
        np.dot(At[b].reshape(r * P, S), H[b].T, work[b, :r].reshape(r * P, S))
        for kk in range(K):
            for p in range(S):
                for j in range(P):
                    work[b, r + kk, j, p] = D[b, kk, p, j]
        us_work[b, :r] = us[b]
        us_work[b, r:] = rows[b]


@kernel
def ok_reduce_batch(us_work, work, signs, offsets, mode, us, At):
    """Per stream: reduce the k terms ``(us_work[b], work[b])`` to r terms in ``(us[b], At[b])``."""
    B, k, P, S = work.shape
    r = At.shape[1]
    for b in range(B):
        reduce_terms_gram(us_work[b], work[b].reshape(k, P * S), r, signs[b], offsets[b], mode,
                          us[b], At[b].reshape(r, P * S))


class KroneckerSumEstimator(Estimator):
    """Shared state of estimators that keep ``G̃ = scale · Σ_i u_i ⊗ A_i`` per stream."""

    takes_rank = True
    #: G̃ = gradient_scale · Σ_i u_i ⊗ A_i (1/r for the r-KF-RTRL average)
    gradient_scale = 1.0

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype)
        if rank is None:
            raise ValueError(f"method {self.method!r} needs rank=r (an integer >= 1)")
        self.rank = _check_rank(rank)
        self.rng = _as_rng(seed)
        r, k = self.rank, self.rank + cell.n_terms
        self.us = np.zeros((batch, r, cell.a), self.dtype)
        self.At = np.zeros((batch, r, cell.P, cell.S), self.dtype)
        self._us_work = np.zeros((batch, k, cell.a), self.dtype)
        self._work = np.zeros((batch, k, cell.P, cell.S), self.dtype)

    def reset(self, mask):
        self.us[mask] = 0.0
        self.At[mask] = 0.0

    def _product(self, H, rows, D):
        kron_sum_product(H, self.At, self._work, self.us, rows, D, self._us_work)

    def add_gradient(self, delta, dW):
        add_kron_gradient(self.us, self.At, delta, self.dtype.type(self.gradient_scale), dW)

    def dense(self):
        return self.gradient_scale * np.einsum("bia,bijs->bsaj", self.us, self.At)

    def state_dict(self):
        d = super().state_dict()
        d["rng"] = self.rng.bit_generator.state
        return d

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]

    def _arrays(self):
        return {"us": self.us, "At": self.At}


class OK(KroneckerSumEstimator):
    """r-OK (method ``"ok"``): theorem-optimal unbiased rank-r Kronecker-sum estimate."""

    method = "ok"
    stochastic = True
    _mode = MODE_OPTIMAL

    def update(self, W, s_prev, s, rows, aux, D, H):
        self._product(H, rows, D)
        k = self.rank + self.cell.n_terms
        signs = draw_signs(self.rng, (self.batch, k), self.dtype)
        offsets = self.rng.random(self.batch).astype(self.dtype)
        ok_reduce_batch(self._us_work, self._work, signs, offsets, self._mode, self.us, self.At)


class OKTruncated(OK):
    """Deterministic top-r truncated SVD (method ``"ok-truncated"``). **Biased**: lower
    per-step error than OK but its expectation is not the exact gradient."""

    method = "ok-truncated"
    stochastic = False
    _mode = MODE_TRUNCATED

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed=0)
