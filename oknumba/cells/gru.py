"""GRU cell, S = n, P = 3n, blocks ``[r | u | c]``, two Kronecker terms in F.

``r = σ(ĥ W_r)``, ``u = σ(ĥ W_u)`` with ``ĥ = (x, h₋, 1)``; the candidate reads
``ĥ_r = (x, r⊙h₋, 1)``: ``c = tanh(ĥ_r W_c)``; ``h = u⊙h₋ + (1−u)⊙c``.

With ``γ = (1−u)(1−c²)`` (= ∂h/∂z_c), ``μ = (h₋ − c)u(1−u)`` (= ∂h/∂z_u) and
``ρ = h₋ r(1−r)`` (= ∂ĥ_r/∂z_r on the h₋ entries):

* ``F = ĥ ⊗ D₀ + ĥ_r ⊗ D₁`` with ``D₀[j, m] = γ_j W_c[h_m, j] ρ_m`` in the r block (a dense
  n×n block: the reset gate couples units), ``D₀[j, n+j] = μ_j``, and
  ``D₁[j, 2n+j] = γ_j``.
* ``H = diag(u) + diag(μ) W_{h→u}ᵀ + diag(γ) (diag(r) W_{h→c} + W_{h→r} diag(ρ) W_{h→c})ᵀ``
  — O(n³) to form because of the last product; ``H v`` stays O(n²).
"""
import numpy as np

from .._jit import kernel
from .._transpose import scaled_transpose
from ._common import fill_row, row_times_W, sigmoid, vec_times_Wh
from .base import Cell, CellKernels


@kernel
def _forward(W, x, s_prev, s, rows, aux):
    n = s.shape[1]
    n_in = x.shape[1]
    for b in range(x.shape[0]):
        fill_row(x[b], s_prev[b], rows[b, 0])
        row_times_W(rows[b, 0], W, 0, 2 * n, aux[b, :2 * n])
        for k in range(rows.shape[2]):
            rows[b, 1, k] = rows[b, 0, k]
        for m in range(n):
            rows[b, 1, n_in + m] = sigmoid(aux[b, m]) * s_prev[b, m]
        row_times_W(rows[b, 1], W, 2 * n, 3 * n, aux[b, 2 * n:])
        for j in range(n):
            u = sigmoid(aux[b, n + j])
            s[b, j] = u * s_prev[b, j] + (1.0 - u) * np.tanh(aux[b, 2 * n + j])


@kernel
def _gate_scratch(s):
    """Per-stream scratch for :func:`_gates`: ``r, ρ, u, μ, γ`` (n each)."""
    g = np.empty((5, s.shape[1]), s.dtype)
    return g[0], g[1], g[2], g[3], g[4]


@kernel
def _gates(s_prev_b, aux_b, n, r, rho, u, mu, gamma):
    for m in range(n):
        rm = sigmoid(aux_b[m])
        r[m] = rm
        rho[m] = s_prev_b[m] * rm * (1.0 - rm)
        um = sigmoid(aux_b[n + m])
        c = np.tanh(aux_b[2 * n + m])
        u[m] = um
        mu[m] = (s_prev_b[m] - c) * um * (1.0 - um)
        gamma[m] = (1.0 - um) * (1.0 - c * c)


@kernel
def _fill_D(W, s_prev, s, rows, aux, D):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    r, rho, u, mu, gamma = _gate_scratch(s)
    D[:] = 0.0
    for b in range(s.shape[0]):
        _gates(s_prev[b], aux[b], n, r, rho, u, mu, gamma)
        D0 = D[b, 0, :, :n]
        scaled_transpose(W, n_in, 2 * n, gamma, True, False, D0)    # γ_j W[n_in + m, 2n + j]
        for j in range(n):
            for m in range(n):
                D0[j, m] *= rho[m]
            D[b, 0, j, n + j] = mu[j]
            D[b, 1, j, 2 * n + j] = gamma[j]


@kernel(fastmath=True)
def _fill_H(W, s_prev, s, rows, aux, H):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    r, rho, u, mu, gamma = _gate_scratch(s)
    M = np.empty((n, n), s.dtype)       # M[i, j] = ∂z_c[j]/∂h₋[i]
    for b in range(s.shape[0]):
        _gates(s_prev[b], aux[b], n, r, rho, u, mu, gamma)
        for i in range(n):
            for j in range(n):
                M[i, j] = r[i] * W[n_in + i, 2 * n + j]
        for i in range(n):          # + Σ_m W_r[h_i, m] ρ_m W_c[h_m, j]
            for m in range(n):
                w = W[n_in + i, m] * rho[m]
                if w != 0.0:
                    for j in range(n):
                        M[i, j] += w * W[n_in + m, 2 * n + j]
        scaled_transpose(W, n_in, n, mu, True, False, H[b])     # H[j, i] = μ_j W[n_in+i, n+j]
        scaled_transpose(M, 0, 0, gamma, True, True, H[b])      #         + γ_j M[i, j]
        for j in range(n):
            H[b, j, j] += u[j]


@kernel
def _jvp(W, s_prev, s, rows, aux, v, out):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    r, rho, u, mu, gamma = _gate_scratch(s)
    tmp = np.empty(2 * n, s.dtype)
    drow = np.empty(n, s.dtype)
    dzc = np.empty(n, s.dtype)
    for b in range(s.shape[0]):
        _gates(s_prev[b], aux[b], n, r, rho, u, mu, gamma)
        vec_times_Wh(v[b], W, n_in, 0, 2 * n, tmp)
        for m in range(n):
            drow[m] = rho[m] * tmp[m] + r[m] * v[b, m]
        vec_times_Wh(drow, W, n_in, 2 * n, 3 * n, dzc)
        for j in range(n):
            out[b, j] = u[j] * v[b, j] + mu[j] * tmp[n + j] + gamma[j] * dzc[j]


class GRU(Cell):
    name = "gru"
    n_blocks = 3
    n_terms = 2
    kernels = CellKernels(_forward, _fill_D, _fill_H, _jvp)
