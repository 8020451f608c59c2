"""UORO (method ``"uoro"``): unbiased rank-one estimate ``G̃ = s̃ θ̃ᵀ`` (spec section 3).

Per stream and step, with ``s' = H s̃`` (a Jacobian-vector product, never forming H),
``ν ∈ {±1}^S`` and ``δθ = νᵀ F_t = Σ_k outer(ĥ_k, νᵀ D_k)`` (one vector-Jacobian product):

    ρ₀ = sqrt((‖θ̃‖ + ε) / (‖s'‖ + ε)),   ρ₁ = sqrt((‖δθ‖ + ε) / (‖ν‖ + ε)),
    s̃ ← ρ₀ s' + ρ₁ ν,                    θ̃ ← θ̃/ρ₀ + δθ/ρ₁

with ε = 1e-5 as in the original code. After a reset (s' = θ̃ = 0) this gives
``s̃ = ρ₁ ν``, ``θ̃ = δθ/ρ₁``. Cost O(S·P + a·P) = O(n²) per step.
"""
import numpy as np

from .._jit import kernel
from .base import Estimator
from .reduce import _as_rng, draw_signs

EPSILON = 1e-5


@kernel(fastmath=True)
def uoro_step(s_tilde, theta, s_prime, rows, D, nu, eps, dtheta):
    B, K, S, P = D.shape
    a = rows.shape[2]
    v = np.empty(P, theta.dtype)
    for b in range(B):
        dtheta[:] = 0.0
        for k in range(K):
            v[:] = 0.0
            for p in range(S):
                for j in range(P):
                    v[j] += nu[b, p] * D[b, k, p, j]
            for q in range(a):
                rq = rows[b, k, q]
                if rq != 0.0:
                    for j in range(P):
                        dtheta[q * P + j] += rq * v[j]
        n_theta = np.sqrt(np.sum(theta[b] * theta[b]))
        n_sp = np.sqrt(np.sum(s_prime[b] * s_prime[b]))
        n_dth = np.sqrt(np.sum(dtheta * dtheta))
        rho0 = np.sqrt((n_theta + eps) / (n_sp + eps))
        rho1 = np.sqrt((n_dth + eps) / (np.sqrt(S) + eps))
        for p in range(S):
            s_tilde[b, p] = rho0 * s_prime[b, p] + rho1 * nu[b, p]
        for q in range(theta.shape[1]):
            theta[b, q] = theta[b, q] / rho0 + dtheta[q] / rho1


@kernel
def _uoro_gradient(s_tilde, theta, delta, dW_flat):
    for b in range(s_tilde.shape[0]):
        c = np.dot(delta[b], s_tilde[b])
        if c != 0.0:
            dW_flat += c * theta[b]


class UORO(Estimator):
    """Unbiased Online Recurrent Optimization (method ``"uoro"``)."""

    method = "uoro"
    needs_H = False
    stochastic = True

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype)
        self.rng = _as_rng(seed)
        self.s_tilde = np.zeros((batch, cell.S), self.dtype)
        self.theta = np.zeros((batch, cell.a * cell.P), self.dtype)
        self._s_prime = np.zeros((batch, cell.S), self.dtype)
        self._dtheta = np.zeros(cell.a * cell.P, self.dtype)

    def reset(self, mask):
        self.s_tilde[mask] = 0.0
        self.theta[mask] = 0.0

    def update(self, W, s_prev, s, rows, aux, D, H):
        self.cell.jvp(W, s_prev, s, rows, aux, self.s_tilde, self._s_prime)
        nu = draw_signs(self.rng, (self.batch, self.cell.S), self.dtype)
        uoro_step(self.s_tilde, self.theta, self._s_prime, rows, D, nu,
                  self.dtype.type(EPSILON), self._dtheta)

    def add_gradient(self, delta, dW):
        _uoro_gradient(self.s_tilde, self.theta, delta, dW.reshape(-1))

    def dense(self):
        c = self.cell
        return np.einsum("bs,bq->bsq", self.s_tilde, self.theta).reshape(self.batch, c.S, c.a, c.P)

    def state_dict(self):
        d = super().state_dict()
        d["rng"] = self.rng.bit_generator.state
        return d

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]

    def _arrays(self):
        return {"s_tilde": self.s_tilde, "theta": self.theta}
