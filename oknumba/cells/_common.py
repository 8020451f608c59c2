"""Kernels shared by the cells: building the input row and ``z = ĥ W`` over a column range."""
import numpy as np

from .._jit import kernel


@kernel
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@kernel
def fill_row(x, h, row):
    """``row = (x, h, 1)`` — the input row ĥ (length a = n_in + n + 1; see
    :mod:`oknumba.cells.base`)."""
    n_in = x.shape[0]
    n = h.shape[0]
    for k in range(n_in):
        row[k] = x[k]
    for k in range(n):
        row[n_in + k] = h[k]
    row[n_in + n] = 1.0


@kernel(fastmath=True)
def row_times_W(row, W, col0, col1, out):
    """``out[p - col0] = Σ_k row[k] W[k, p]`` for ``col0 <= p < col1`` (row-major friendly)."""
    for p in range(col1 - col0):
        out[p] = 0.0
    for k in range(row.shape[0]):
        rk = row[k]
        if rk != 0.0:
            for p in range(col1 - col0):
                out[p] += rk * W[k, col0 + p]


@kernel(fastmath=True)
def vec_times_Wh(v, W, n_in, col0, col1, out):
    """``out[p - col0] = Σ_i v[i] W[n_in + i, p]``: a vector times the recurrent rows of W."""
    for p in range(col1 - col0):
        out[p] = 0.0
    for i in range(v.shape[0]):
        vi = v[i]
        if vi != 0.0:
            for p in range(col1 - col0):
                out[p] += vi * W[n_in + i, col0 + p]
