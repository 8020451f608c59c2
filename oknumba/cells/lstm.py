"""LSTM cell with state ``s = (h, c)``, S = 2n, P = 4n, gate blocks ``[i | f | o | g]``.

``i, f, o = σ(z_i), σ(z_f), σ(z_o)``, ``g = tanh(z_g)``, ``c = f⊙c₋ + i⊙g``,
``h = o⊙tanh(c)``. With ``k = o(1 − tanh²c)`` and the per-unit derivatives
``∂c/∂z_i = g·i(1−i)``, ``∂c/∂z_f = c₋·f(1−f)``, ``∂c/∂z_g = i(1−g²)``:

* ``D`` rows of c: ``[diag(∂c/∂z_i) | diag(∂c/∂z_f) | 0 | diag(∂c/∂z_g)]``;
  rows of h: ``k ×`` those, plus ``diag(tanh(c)·o(1−o))`` in the o block (4 non-zeros a row).
* ``H = [[D_h W_hᵀ, diag(k f)], [D_c W_hᵀ, diag(f)]]``.
"""
import numpy as np

from .._jit import kernel
from .._transpose import scaled_transpose
from ._common import fill_row, row_times_W, sigmoid, vec_times_Wh
from .base import Cell, CellKernels


@kernel
def _coefficients(s_prev_b, aux_b, j, n):
    """Per unit j: (f, k, dc_i, dc_f, dc_o_h, dc_g) — ∂c/∂z per block, ∂h/∂z_o."""
    ig = sigmoid(aux_b[j])
    fg = sigmoid(aux_b[n + j])
    og = sigmoid(aux_b[2 * n + j])
    gg = np.tanh(aux_b[3 * n + j])
    c = fg * s_prev_b[n + j] + ig * gg
    tc = np.tanh(c)
    k = og * (1.0 - tc * tc)
    return fg, k, gg * ig * (1.0 - ig), s_prev_b[n + j] * fg * (1.0 - fg), tc * og * (1.0 - og), ig * (1.0 - gg * gg)


@kernel
def _forward(W, x, s_prev, s, rows, aux):
    n = s.shape[1] // 2
    for b in range(x.shape[0]):
        fill_row(x[b], s_prev[b, :n], rows[b, 0])
        row_times_W(rows[b, 0], W, 0, 4 * n, aux[b])
        for j in range(n):
            ig = sigmoid(aux[b, j])
            fg = sigmoid(aux[b, n + j])
            og = sigmoid(aux[b, 2 * n + j])
            gg = np.tanh(aux[b, 3 * n + j])
            c = fg * s_prev[b, n + j] + ig * gg
            s[b, n + j] = c
            s[b, j] = og * np.tanh(c)


@kernel
def _fill_D(W, s_prev, s, rows, aux, D):
    n = s.shape[1] // 2
    D[:] = 0.0
    for b in range(s.shape[0]):
        for j in range(n):
            f, k, di, df, do, dg = _coefficients(s_prev[b], aux[b], j, n)
            D[b, 0, n + j, j] = di
            D[b, 0, n + j, n + j] = df
            D[b, 0, n + j, 3 * n + j] = dg
            D[b, 0, j, j] = k * di
            D[b, 0, j, n + j] = k * df
            D[b, 0, j, 2 * n + j] = do
            D[b, 0, j, 3 * n + j] = k * dg


@kernel(fastmath=True)
def _fill_H(W, s_prev, s, rows, aux, H):
    n = s.shape[1] // 2
    n_in = rows.shape[2] - n - 1
    H[:] = 0.0
    c = np.empty((6, n), s.dtype)         # per unit: f, k, ∂c/∂z_i, ∂c/∂z_f, ∂h/∂z_o, ∂c/∂z_g
    for b in range(s.shape[0]):
        for j in range(n):
            c[0, j], c[1, j], c[2, j], c[3, j], c[4, j], c[5, j] = _coefficients(s_prev[b], aux[b], j, n)
        Hc, Hh = H[b, n:, :n], H[b, :n, :n]
        # ∂c_j/∂h₋_i = Σ_blocks (∂c/∂z) W[n_in + i, block + j]; ∂h_j/∂h₋_i = k_j ∂c_j/∂h₋_i + ...
        scaled_transpose(W, n_in, 0, c[2], True, False, Hc)
        scaled_transpose(W, n_in, n, c[3], True, True, Hc)
        scaled_transpose(W, n_in, 3 * n, c[5], True, True, Hc)
        for j in range(n):
            for i in range(n):
                Hh[j, i] = c[1, j] * Hc[j, i]
        scaled_transpose(W, n_in, 2 * n, c[4], True, True, Hh)
        for j in range(n):
            H[b, j, n + j] = c[1, j] * c[0, j]
            H[b, n + j, n + j] = c[0, j]


@kernel
def _jvp(W, s_prev, s, rows, aux, v, out):
    n = s.shape[1] // 2
    n_in = rows.shape[2] - n - 1
    tmp = np.empty(4 * n, dtype=s.dtype)
    for b in range(s.shape[0]):
        vec_times_Wh(v[b, :n], W, n_in, 0, 4 * n, tmp)
        for j in range(n):
            f, k, di, df, do, dg = _coefficients(s_prev[b], aux[b], j, n)
            dc = di * tmp[j] + df * tmp[n + j] + dg * tmp[3 * n + j] + f * v[b, n + j]
            out[b, n + j] = dc
            out[b, j] = k * dc + do * tmp[2 * n + j]


class LSTM(Cell):
    name = "lstm"
    n_blocks = 4
    state_factor = 2
    kernels = CellKernels(_forward, _fill_D, _fill_H, _jvp)
