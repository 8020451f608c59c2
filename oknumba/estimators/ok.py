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
+ O(k a² + k³) (small QR and eigen-decomposition); memory O(r S P). Random signs come from
each stream's own splitmix64 state.
"""
import numba
import numpy as np
from numba import prange

from .._jit import kernel
from .._threads import blas_single_threaded
from .._rng import rademacher, uniform
from ._kernels import add_kron_gradient, kron_gradient_stream
from .base import StochasticEstimator
from .kf_kernels import kf_mix_stream
from .reduce import MODE_OPTIMAL, MODE_TRUNCATED, _check_rank, reduce_terms_gram


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


KIND_OK = 0   # OK reduction (mode selects optimal / truncated)
KIND_KF = 1   # KF-RTRL mixing of every copy (kf, kf-avg)


@kernel
def kron_stream_update(b, kind, H, At, work, us, rows, D, us_work, rng_state, mode):
    """Advance stream b: the product, then the OK reduction or the KF mixing, with random
    draws from ``rng_state[b]``."""
    r, P, S = At.shape[1:]
    k = work.shape[1]
    kron_sum_product_stream(H[b], At[b], work[b], us[b], rows[b], D[b], us_work[b])
    if kind == KIND_OK:
        signs = np.empty(k, us.dtype)
        for i in range(k):
            signs[i] = rademacher(rng_state, b)
        offset = uniform(rng_state, b)
        reduce_terms_gram(us_work[b], work[b].reshape(k, P * S), r, signs, offset, mode,
                          us[b], At[b].reshape(r, P * S))
    else:
        # only sign products matter: the first sign of each copy stays +1
        signs2 = np.ones((r, k - r + 1), us.dtype)
        for i in range(r):
            for kk in range(1, k - r + 1):
                signs2[i, kk] = rademacher(rng_state, b)
        kf_mix_stream(us_work[b], work[b], signs2, us[b], At[b])


@kernel
def kron_step(kind, H, At, work, us, rows, D, us_work, rng_state, mode, delta, scale, dW,
              with_gradient):
    """All streams in turn: :func:`kron_stream_update`, then (optionally) the gradient
    ``dW += scale · δ_bᵀ G̃_b`` of the updated estimate."""
    v = np.empty(At.shape[2], dW.dtype)
    for b in range(At.shape[0]):
        kron_stream_update(b, kind, H, At, work, us, rows, D, us_work, rng_state, mode)
        if with_gradient:
            kron_gradient_stream(us[b], At[b], delta[b], scale, dW, v)


@kernel(parallel=True)
def kron_step_parallel(kind, H, At, work, us, rows, D, us_work, rng_state, mode, delta, scale,
                       dW, with_gradient, proj):
    """:func:`kron_step` with streams spread over Numba threads (each stream's BLAS calls run
    on its own thread: use with one BLAS thread). The gradient goes through per-stream
    projections ``proj[b, i] = A_iᵀ δ_b`` (B,r,P) summed after the parallel loop, so no two
    threads write to ``dW``."""
    B, r, P, S = At.shape
    for b in prange(B):
        kron_stream_update(b, kind, H, At, work, us, rows, D, us_work, rng_state, mode)
        if with_gradient:
            np.dot(At[b].reshape(r * P, S), delta[b], proj[b].reshape(r * P))
    if with_gradient:
        for b in range(B):
            dW += scale * np.dot(np.ascontiguousarray(us[b].T), proj[b])


def use_parallel_streams(batch, work_size):
    """Spread streams over threads when there are several of both and each stream's work is
    large enough to amortise the thread hand-off (S·P ≥ 4096)."""
    return batch >= 2 and numba.get_num_threads() >= 2 and work_size >= 4096


class KroneckerSumEstimator(StochasticEstimator):
    """Shared state of estimators that keep ``G̃ = scale · Σ_i u_i ⊗ A_i`` per stream."""

    takes_rank = True
    #: G̃ = gradient_scale · Σ_i u_i ⊗ A_i (1/r for the r-KF-RTRL average)
    gradient_scale = 1.0

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, seed)
        if rank is None:
            raise ValueError(f"method {self.method!r} needs rank=r (an integer >= 1)")
        self.rank = _check_rank(rank)
        r, k = self.rank, self.rank + cell.n_terms
        self.us = np.zeros((batch, r, cell.a), self.dtype)
        self.At = np.zeros((batch, r, cell.P, cell.S), self.dtype)
        self._us_work = np.zeros((batch, k, cell.a), self.dtype)
        self._work = np.zeros((batch, k, cell.P, cell.S), self.dtype)
        self._no_grad = (np.zeros((batch, cell.S), self.dtype), np.zeros((1, 1), self.dtype))
        self._proj = None

    def reset(self, mask):
        self.us[mask] = 0.0
        self.At[mask] = 0.0

    def update(self, W, s_prev, s, rows, aux, D, H):
        self._step(H, rows, D, *self._no_grad, False)

    def step(self, W, s_prev, s, rows, aux, D, H, delta, dW):
        self._step(H, rows, D, delta, dW, True)

    def _step(self, H, rows, D, delta, dW, with_gradient):
        args = (self._kind, H, self.At, self._work, self.us, rows, D, self._us_work,
                self.rng_state, self._mode, delta, self.dtype.type(self.gradient_scale), dW,
                with_gradient)
        if use_parallel_streams(self.batch, self.cell.S * self.cell.P):
            if self._proj is None:
                self._proj = np.zeros((self.batch, self.rank, self.cell.P), self.dtype)
            with blas_single_threaded():
                kron_step_parallel(*args, self._proj)
        else:
            kron_step(*args)

    def add_gradient(self, delta, dW):
        add_kron_gradient(self.us, self.At, delta, self.dtype.type(self.gradient_scale), dW)

    def dense(self):
        return self.gradient_scale * np.einsum("bia,bijs->bsaj", self.us, self.At)

    def _arrays(self):
        return {"us": self.us, "At": self.At, "rng_state": self.rng_state}


class OK(KroneckerSumEstimator):
    """r-OK (method ``"ok"``): theorem-optimal unbiased rank-r Kronecker-sum estimate."""

    method = "ok"
    _kind = KIND_OK
    _mode = MODE_OPTIMAL


class OKTruncated(OK):
    """Deterministic top-r truncated SVD (method ``"ok-truncated"``). **Biased**: lower
    per-step error than OK but its expectation is not the exact gradient."""

    method = "ok-truncated"
    stochastic = False
    _mode = MODE_TRUNCATED

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed=0)
