"""Vanilla tanh cell: ``h = tanh(z)``, ``z = ĥ W``, S = P = n.

``D = diag(1 − h²)``, ``H = D W_hᵀ`` (W_h = the rows of W that multiply h₋), formed by
row scaling.
"""
import numpy as np

from .._jit import kernel
from .._transpose import scaled_transpose
from ._common import fill_row, row_times_W, vec_times_Wh
from .base import Cell, CellKernels


@kernel
def _forward(W, x, s_prev, s, rows, aux):
    for b in range(x.shape[0]):
        fill_row(x[b], s_prev[b], rows[b, 0])
        row_times_W(rows[b, 0], W, 0, W.shape[1], aux[b])
        for j in range(s.shape[1]):
            s[b, j] = np.tanh(aux[b, j])


@kernel
def _fill_D(W, s_prev, s, rows, aux, D):
    D[:] = 0.0
    for b in range(s.shape[0]):
        for j in range(s.shape[1]):
            D[b, 0, j, j] = 1.0 - s[b, j] * s[b, j]


@kernel(fastmath=True)
def _fill_H(W, s_prev, s, rows, aux, H):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    d = np.empty(n, s.dtype)
    for b in range(s.shape[0]):
        for j in range(n):
            d[j] = 1.0 - s[b, j] * s[b, j]
        scaled_transpose(W, n_in, 0, d, True, False, H[b])      # H[j, i] = d_j W[n_in + i, j]


@kernel
def _jvp(W, s_prev, s, rows, aux, v, out):
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    for b in range(s.shape[0]):
        vec_times_Wh(v[b], W, n_in, 0, n, out[b])
        for j in range(n):
            out[b, j] *= 1.0 - s[b, j] * s[b, j]


class Vanilla(Cell):
    name = "vanilla"
    kernels = CellKernels(_forward, _fill_D, _fill_H, _jvp)
