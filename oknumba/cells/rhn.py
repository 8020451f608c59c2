"""The paper's recurrent highway cell (depth 1, coupled carry gate), S = n, P = 2n.

``z = ĥ W``, ``c = 2σ(z[:n]) − 1``, ``f = σ(z[n:])``, ``h = f⊙h₋ + (1−f)⊙c``.

``D = [diag(α) | diag(β)]`` with ``α = (1−f)⊙c'``, ``c' = 2σ(1−σ)`` of ``z[:n]``,
``β = (h₋ − c)⊙f(1−f)``; ``H = diag(f) + diag(α) W_{h→c}ᵀ + diag(β) W_{h→f}ᵀ``.
"""
import numpy as np

from .._jit import kernel
from ._common import fill_row, row_times_W, sigmoid, vec_times_Wh
from .base import Cell, CellKernels


@kernel
def _coefficients(s_prev_b, aux_b, j, n):
    """(f, α, β) of unit j."""
    sc = sigmoid(aux_b[j])
    f = sigmoid(aux_b[n + j])
    c = 2.0 * sc - 1.0
    alpha = (1.0 - f) * 2.0 * sc * (1.0 - sc)
    beta = (s_prev_b[j] - c) * f * (1.0 - f)
    return f, alpha, beta


@kernel
def _forward(W, x, s_prev, s, rows, aux):
    n = s.shape[1]
    for b in range(x.shape[0]):
        fill_row(x[b], s_prev[b], rows[b, 0])
        row_times_W(rows[b, 0], W, 0, 2 * n, aux[b])
        for j in range(n):
            c = 2.0 * sigmoid(aux[b, j]) - 1.0
            f = sigmoid(aux[b, n + j])
            s[b, j] = f * s_prev[b, j] + (1.0 - f) * c


@kernel
def _fill_D(W, s_prev, s, rows, aux, D):
    n = s.shape[1]
    D[:] = 0.0
    for b in range(s.shape[0]):
        for j in range(n):
            f, alpha, beta = _coefficients(s_prev[b], aux[b], j, n)
            D[b, 0, j, j] = alpha
            D[b, 0, j, n + j] = beta


@kernel(fastmath=True)
def _fill_H(W, s_prev, s, rows, aux, H):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    for b in range(s.shape[0]):
        for j in range(n):
            f, alpha, beta = _coefficients(s_prev[b], aux[b], j, n)
            for i in range(n):
                H[b, j, i] = alpha * W[n_in + i, j] + beta * W[n_in + i, n + j]
            H[b, j, j] += f


@kernel
def _jvp(W, s_prev, s, rows, aux, v, out):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    tmp = np.empty(2 * n, dtype=s.dtype)
    for b in range(s.shape[0]):
        vec_times_Wh(v[b], W, n_in, 0, 2 * n, tmp)
        for j in range(n):
            f, alpha, beta = _coefficients(s_prev[b], aux[b], j, n)
            out[b, j] = f * v[b, j] + alpha * tmp[j] + beta * tmp[n + j]


class RHN(Cell):
    name = "rhn"
    n_blocks = 2
    kernels = CellKernels(_forward, _fill_D, _fill_H, _jvp)
