"""Exact real-time recurrent learning.

Keeps the influence per stream in structured form ``G ∈ R^{S × (a·P)}`` (viewed as
S × a × P) and updates it with one matrix product plus the structured Kronecker term:

    G_t = H_t G_{t-1} + Σ_k ĥ_k ⊗ D_k,     (ĥ ⊗ D)[p, (q, j)] = ĥ_q D[p, j]

never forming a dense Kronecker product. Cost per stream and step: the S×S×(a·P) product,
O(n⁴); memory O(n³).
"""
import numpy as np

from .._jit import kernel
from ._kernels import batched_matmul
from .base import Estimator


@kernel(fastmath=True)
def _add_kron_terms(G, rows, D):
    """``G[b, p, q·P + j] += Σ_k rows[b,k,q] D[b,k,p,j]`` (skipping the zeros of D)."""
    B, K, S, P = D.shape
    a = rows.shape[2]
    for b in range(B):
        for k in range(K):
            for p in range(S):
                for j in range(P):
                    d = D[b, k, p, j]
                    if d != 0.0:
                        for q in range(a):
                            G[b, p, q * P + j] += rows[b, k, q] * d


@kernel
def _gradient(G, delta, dW_flat):
    for b in range(G.shape[0]):
        dW_flat += np.dot(delta[b], G[b])


class ExactRTRL(Estimator):
    """Exact RTRL (method ``"rtrl"``): ``G_t = H_t G_{t-1} + F_t``, gradient ``δ_tᵀ G_t``."""

    method = "rtrl"

    def __init__(self, cell, batch, dtype):
        super().__init__(cell, batch, dtype)
        shape = (batch, cell.S, cell.a * cell.P)
        self.G = np.zeros(shape, self.dtype)
        self._G_next = np.zeros(shape, self.dtype)

    def reset(self, mask):
        self.G[mask] = 0.0

    def update(self, W, s_prev, s, rows, aux, D, H):
        batched_matmul(H, self.G, self._G_next)
        _add_kron_terms(self._G_next, rows, D)
        self.G, self._G_next = self._G_next, self.G

    def add_gradient(self, delta, dW):
        _gradient(self.G, delta, dW.reshape(-1))

    def dense(self):
        c = self.cell
        return self.G.reshape(self.batch, c.S, c.a, c.P).copy()

    def _arrays(self):
        return {"G": self.G}
