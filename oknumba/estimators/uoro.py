"""UORO (method ``"uoro"``): unbiased rank-one estimate ``G̃ = s̃ θ̃ᵀ``.

Tallec & Ollivier 2017 (arXiv 1702.05043). Per stream and step, with ``s' = H s̃`` (a
Jacobian-vector product, never forming H), ``ν ∈ {±1}^S`` and
``δθ = νᵀ F_t = Σ_k outer(ĥ_k, νᵀ D_k)`` (one vector-Jacobian product):

    ρ₀ = sqrt((‖θ̃‖ + ε) / (‖s'‖ + ε)),   ρ₁ = sqrt((‖δθ‖ + ε) / (‖ν‖ + ε)),
    s̃ ← ρ₀ s' + ρ₁ ν,                    θ̃ ← θ̃/ρ₀ + δθ/ρ₁

with ε = 1e-5 as in the original code. After a reset (s' = θ̃ = 0) this gives
``s̃ = ρ₁ ν``, ``θ̃ = δθ/ρ₁``. Cost O(S·P + a·P) = O(n²) per step.
"""
import numpy as np

from .._jit import kernel
from .._rng import rademacher
from ..fused import by_id
from .base import StochasticEstimator
from .kf_kernels import _norm

EPSILON = 1e-5


@kernel(fastmath=True)
def uoro_step(s_tilde, theta, s_prime, rows, D, rng_state, eps, dtheta, delta, dW, with_gradient):
    """Per stream: draw ν from ``rng_state[b]``, ``δθ = νᵀF``, the ρ-balanced rank-one update,
    and (optionally) the gradient ``dW += (δ_b · s̃_b) θ̃_b``."""
    B, K, S, P = D.shape
    a = rows.shape[2]
    v = np.empty(P, theta.dtype)
    nu = np.empty(S, theta.dtype)
    dW_flat = dW.reshape(-1)
    for b in range(B):
        for p in range(S):
            nu[p] = rademacher(rng_state, b)
        dtheta[:] = 0.0
        for k in range(K):
            v[:] = 0.0
            for p in range(S):
                for j in range(P):
                    v[j] += nu[p] * D[b, k, p, j]
            for q in range(a):
                rq = rows[b, k, q]
                if rq != 0.0:
                    for j in range(P):
                        dtheta[q * P + j] += rq * v[j]
        n_theta = _norm(theta[b])
        n_sp = _norm(s_prime[b])
        n_dth = _norm(dtheta)
        # in the estimate's dtype: the a·P-long updates below stay float32 in float32 runs
        rho0 = theta.dtype.type(np.sqrt((n_theta + eps) / (n_sp + eps)))
        rho1 = theta.dtype.type(np.sqrt((n_dth + eps) / (np.sqrt(S) + eps)))
        for p in range(S):
            s_tilde[b, p] = rho0 * s_prime[b, p] + rho1 * nu[p]
        # θ̃ ← θ̃/ρ₀ + δθ/ρ₁, with the gradient dW += (δ·s̃) θ̃ in the same pass over a·P
        th = theta[b]
        if with_gradient:
            c = theta.dtype.type(0.0)
            for p in range(S):
                c += delta[b, p] * s_tilde[b, p]
            for q in range(th.shape[0]):
                t = th[q] / rho0 + dtheta[q] / rho1
                th[q] = t
                dW_flat[q] += c * t
        else:
            for q in range(th.shape[0]):
                th[q] = th[q] / rho0 + dtheta[q] / rho1


@kernel
def uoro_fused_step(cell_id, W, s_prev, s, rows, aux, D, H, delta, dW, args):
    """:meth:`UORO.step` inside the fused learner step: the cell's ``s' = H s̃`` (its jvp
    kernel, by number), then :func:`uoro_step` with the gradient."""
    s_tilde, theta, s_prime, rng_state, eps, dtheta = args
    by_id("cell.jvp", cell_id, W, s_prev, s, rows, aux, s_tilde, s_prime)
    uoro_step(s_tilde, theta, s_prime, rows, D, rng_state, eps, dtheta, delta, dW, True)


@kernel
def _uoro_gradient(s_tilde, theta, delta, dW_flat):
    for b in range(s_tilde.shape[0]):
        c = np.dot(delta[b], s_tilde[b])
        if c != 0.0:
            dW_flat += c * theta[b]


class UORO(StochasticEstimator):
    """Unbiased Online Recurrent Optimization (method ``"uoro"``)."""

    method = "uoro"
    needs_H = False
    fused_step_kernel = staticmethod(uoro_fused_step)

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype, seed)
        self.s_tilde = np.zeros((batch, cell.S), self.dtype)
        self.theta = np.zeros((batch, cell.a * cell.P), self.dtype)
        self._s_prime = np.zeros((batch, cell.S), self.dtype)
        self._dtheta = np.zeros(cell.a * cell.P, self.dtype)
        self._no_grad = (np.zeros((batch, cell.S), self.dtype), np.zeros((1, 1), self.dtype))

    def reset(self, mask):
        self.s_tilde[mask] = 0.0
        self.theta[mask] = 0.0

    def _run(self, W, s_prev, s, rows, aux, D, delta, dW, with_gradient):
        self.cell.jvp(W, s_prev, s, rows, aux, self.s_tilde, self._s_prime)
        uoro_step(self.s_tilde, self.theta, self._s_prime, rows, D, self.rng_state,
                  self.dtype.type(EPSILON), self._dtheta, delta, dW, with_gradient)

    def fused_step_args(self):
        return (self.s_tilde, self.theta, self._s_prime, self.rng_state, self.dtype.type(EPSILON),
                self._dtheta)

    def update(self, W, s_prev, s, rows, aux, D, H):
        self._run(W, s_prev, s, rows, aux, D, *self._no_grad, False)

    def step(self, W, s_prev, s, rows, aux, D, H, delta, dW):
        self._run(W, s_prev, s, rows, aux, D, delta, dW, True)

    def add_gradient(self, delta, dW):
        _uoro_gradient(self.s_tilde, self.theta, delta, dW.reshape(-1))

    def dense(self):
        c = self.cell
        return np.einsum("bs,bq->bsq", self.s_tilde, self.theta).reshape(self.batch, c.S, c.a, c.P)

    def _arrays(self):
        return {"s_tilde": self.s_tilde, "theta": self.theta, "rng_state": self.rng_state}
