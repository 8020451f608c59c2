"""A plain-NumPy implementation of online RTRL, KF-RTRL and UORO for a vanilla tanh RNN on one
stream — what a careful user writes without oknumba: vectorised NumPy, row-scaled Jacobians
(``H = diag(φ') W_hᵀ`` is never formed), one parameter update per step. It is the baseline
the speed-up of oknumba's ``OnlineLearner`` is tracked against (``bench_baseline.py``,
``benchmarks/compare_plain_numpy.py``), so it follows the package's conventions exactly:

* model: ``ĥ = (x, h₋, 1)`` (a = n_in + n + 1), ``h = tanh(ĥ W)`` with W (a, n); readout
  ``out = (h, 1) V``, softmax cross-entropy; ``g = p − e_y``, ``δ = V[:n] g``;
* influence ``G = ∂h/∂W`` (n, a, n): RTRL ``G ← diag(φ')(W_hᵀ G + F)`` with
  ``F[j, :, j] = ĥ`` (Williams & Zipser 1989); KF-RTRL ``G ≈ u ⊗ A`` mixing ``u ⊗ HA`` with
  ``ĥ ⊗ D`` under random signs and the norm-balancing factors ``p = sqrt(‖A‖/‖u‖)``
  (Mujika et al. 2018, arXiv 1805.10842); UORO ``G ≈ s̃ θ̃ᵀ`` (Tallec & Ollivier 2017, arXiv
  1702.05043, ε = 1e-5);
* gradient ``dW = δᵀ G``, ``dV = (h, 1)ᵀ g``; each clipped to norm ``clip``, then Adam with
  the bias corrections folded into the step size and ε (as :mod:`oknumba.optim`).

With the same initial W and V, :class:`PlainLearner` with ``"rtrl"`` reproduces
``oknumba.OnlineLearner(model, "rtrl")`` to rounding (``tests/test_plain_baseline.py``).
"""
import math

import numpy as np

UORO_EPS = 1e-5


class PlainLearner:
    """One-stream online learner in plain NumPy. ``W`` (a, n) and ``V`` (n + 1, n_out) are
    copied; ``method`` is ``"rtrl"``, ``"kf"`` or ``"uoro"``."""

    def __init__(self, W, V, n_in, method, lr=10 ** -3.5, clip=1.0, seed=0,
                 betas=(0.9, 0.999), eps=1e-8):
        if method not in ("rtrl", "kf", "uoro"):
            raise ValueError(f"method must be 'rtrl', 'kf' or 'uoro', got {method!r}")
        self.W = np.array(W, copy=True)
        self.V = np.array(V, copy=True)
        self.dtype = self.W.dtype
        self.n_in, self.method = n_in, method
        self.a, self.n = self.W.shape
        self.lr, self.clip, (self.b1, self.b2), self.eps = lr, clip, betas, eps
        self.rng = np.random.default_rng(seed)
        self.h = np.zeros(self.n, self.dtype)
        self.t = 0
        self.m = [np.zeros_like(self.W), np.zeros_like(self.V)]
        self.v = [np.zeros_like(self.W), np.zeros_like(self.V)]
        a, n = self.a, self.n
        if method == "rtrl":
            self.G = np.zeros((n, a, n), self.dtype)
        elif method == "kf":
            self.u = np.zeros(a, self.dtype)
            self.A = np.zeros((n, n), self.dtype)
        else:
            self.s_tilde = np.zeros(n, self.dtype)
            self.theta = np.zeros((a, n), self.dtype)
        self._diag = np.arange(n)

    def _signs(self, size):
        return (self.rng.integers(0, 2, size=size) * 2 - 1).astype(self.dtype)

    def step(self, x, y):
        """One online step on input ``x`` (n_in,) and class ``y``; returns the loss (nats)."""
        n, n_in = self.n, self.n_in
        W, V = self.W, self.V
        hhat = np.concatenate([x, self.h, [1.0]]).astype(self.dtype, copy=False)
        h = np.tanh(hhat @ W)
        dphi = 1.0 - h * h
        Wh_T = W[n_in:n_in + n].T                       # H = diag(φ') W_hᵀ, never formed

        out = h @ V[:n] + V[n]
        z = out - out.max()
        p = np.exp(z)
        p /= p.sum()
        loss = -math.log(p[y])
        g = p
        g[y] -= 1.0
        dV = np.empty_like(V)
        np.outer(h, g, out=dV[:n])
        dV[n] = g
        delta = V[:n] @ g

        if self.method == "rtrl":
            G = (Wh_T @ self.G.reshape(n, -1)).reshape(self.G.shape)
            G[self._diag, :, self._diag] += hhat         # F = ĥ ⊗ diag(φ'), scaled below
            G *= dphi[:, None, None]
            self.G = G
            dW = np.tensordot(delta, G, axes=1)
        elif self.method == "kf":
            HA = dphi[:, None] * (Wh_T @ self.A)
            c = self._signs(2)
            nu, nHA = np.linalg.norm(self.u), np.linalg.norm(HA)
            nh, nD = np.linalg.norm(hhat), np.linalg.norm(dphi)
            p2 = math.sqrt(nD / nh)
            u = (c[1] * p2) * hhat
            A = np.zeros_like(HA)
            A[self._diag, self._diag] = (c[1] / p2) * dphi
            if nu > 0.0 and nHA > 0.0:
                p1 = math.sqrt(nHA / nu)
                u += (c[0] * p1) * self.u
                A += (c[0] / p1) * HA
            self.u, self.A = u, A
            dW = np.outer(u, delta @ A)
        else:
            s_prime = dphi * (Wh_T @ self.s_tilde)
            nu = self._signs(n)
            dtheta = np.outer(hhat, nu * dphi)
            rho0 = math.sqrt((np.linalg.norm(self.theta) + UORO_EPS) / (np.linalg.norm(s_prime) + UORO_EPS))
            rho1 = math.sqrt((np.linalg.norm(dtheta) + UORO_EPS) / (math.sqrt(n) + UORO_EPS))
            self.s_tilde = rho0 * s_prime + rho1 * nu
            self.theta = self.theta / rho0 + dtheta / rho1
            dW = (delta @ self.s_tilde) * self.theta

        self._adam(dW, dV)
        self.h = h
        return loss

    def _adam(self, dW, dV):
        self.t += 1
        c2 = math.sqrt(1.0 - self.b2 ** self.t)
        lr_t = self.lr * c2 / (1.0 - self.b1 ** self.t)
        eps_t = self.eps * c2
        for i, (param, grad) in enumerate(((self.W, dW), (self.V, dV))):
            norm = np.linalg.norm(grad)
            if self.clip is not None and norm > self.clip:
                grad = grad * (self.clip / norm)
            m, v = self.m[i], self.v[i]
            m *= self.b1
            m += (1.0 - self.b1) * grad
            v *= self.b2
            v += (1.0 - self.b2) * grad * grad
            param -= lr_t * m / (np.sqrt(v) + eps_t)
