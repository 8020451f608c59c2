"""OK: the Optimal Kronecker-Sum approximation of RTRL (methods ``"ok"``, ``"ok-truncated"``).

Per stream the influence is kept as ``G̃ = Σ_{i=1}^r u_i ⊗ A_i`` with factors stored as
``us`` (B, r, a) and ``As`` (B, S, r, P), so that the r products ``H A_i`` are one matrix
product ``H · As[b]`` over the contiguous (S, r·P) factor block. Each step:

1. ``A_i ← H A_i`` (one GEMM per stream, the dominant O(r S² P) cost);
2. append the K new terms ``ĥ_k ⊗ D_k`` of ``F_t`` (K = 1, or 2 for the GRU), giving
   k = r + K terms;
3. replace them by r terms with :func:`oknumba.estimators.reduce.reduce_terms` — unbiased
   and variance-minimal (the rotation construction for k = r + 1, inclusion-probability
   sampling for k > r + 1). ``"ok-truncated"`` keeps the top r singular components
   instead: lower error, but **biased**.

Cost per stream and step: r S×S×P products + O(r² S P) for the QR and recombination +
O(r³) for the small SVD; memory O(r S P).
"""
import numpy as np

from .._jit import kernel
from ._kernels import add_kron_gradient, batched_matmul
from .base import Estimator
from .reduce import MODE_OPTIMAL, MODE_TRUNCATED, _as_rng, _check_rank, draw_signs, reduce_terms


@kernel
def ok_reduce_step(us, As_prod, rows, D, signs, offsets, mode, us_out, As_out):
    """Per stream b: reduce ``[us[b]; rows[b]] ⊗ [As_prod[b]; D[b]]`` (r + K terms) to r terms
    written into ``us_out[b]`` and ``As_out[b]`` (layout (S, r, P))."""
    B, S, r, P = As_prod.shape
    K = rows.shape[1]
    a = us.shape[2]
    k = r + K
    U = np.empty((k, a), us.dtype)
    A = np.empty((k, S * P), us.dtype)
    oU = np.empty((r, a), us.dtype)
    oA = np.empty((r, S * P), us.dtype)
    for b in range(B):
        U[:r] = us[b]
        U[r:] = rows[b]
        for i in range(r):
            for p in range(S):
                A[i, p * P:(p + 1) * P] = As_prod[b, p, i]
        for kk in range(K):
            A[r + kk] = D[b, kk].reshape(S * P)
        reduce_terms(U, A, r, signs[b], offsets[b], mode, oU, oA)
        us_out[b] = oU
        for i in range(r):
            for p in range(S):
                As_out[b, p, i] = oA[i, p * P:(p + 1) * P]


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
        r = self.rank
        self.us = np.zeros((batch, r, cell.a), self.dtype)
        self.As = np.zeros((batch, cell.S, r, cell.P), self.dtype)
        self._As_prod = np.zeros_like(self.As)

    def reset(self, mask):
        self.us[mask] = 0.0
        self.As[mask] = 0.0

    def _product(self, H):
        B, S = self.batch, self.cell.S
        batched_matmul(H, self.As.reshape(B, S, -1), self._As_prod.reshape(B, S, -1))

    def add_gradient(self, delta, dW):
        add_kron_gradient(self.us, self.As, delta, self.dtype.type(self.gradient_scale), dW)

    def dense(self):
        return self.gradient_scale * np.einsum("bia,bsip->bsap", self.us, self.As)

    def state_dict(self):
        d = super().state_dict()
        d["rng"] = self.rng.bit_generator.state
        return d

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]

    def _arrays(self):
        return {"us": self.us, "As": self.As}


class OK(KroneckerSumEstimator):
    """r-OK (method ``"ok"``): theorem-optimal unbiased rank-r Kronecker-sum estimate."""

    method = "ok"
    stochastic = True
    _mode = MODE_OPTIMAL

    def update(self, W, s_prev, s, rows, aux, D, H):
        self._product(H)
        k = self.rank + self.cell.n_terms
        signs = draw_signs(self.rng, (self.batch, k), self.dtype)
        offsets = self.rng.random(self.batch).astype(self.dtype)
        ok_reduce_step(self.us, self._As_prod, rows, D, signs, offsets, self._mode,
                       self.us, self.As)


class OKTruncated(OK):
    """Deterministic top-r truncated SVD (method ``"ok-truncated"``). **Biased**: lower
    per-step error than OK but its expectation is not the exact gradient."""

    method = "ok-truncated"
    stochastic = False
    _mode = MODE_TRUNCATED

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed=0)
