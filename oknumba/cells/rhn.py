"""Recurrent highway cells: the OK paper's depth-1 RHN and deep transitions (``depth`` > 1).

**Depth 1** (the RHN of Benzing et al. 2019, "Optimal Kronecker-Sum Approximation of Real
Time Recurrent Learning", arXiv 1902.03993; coupled carry gate), S = n, P = 2n:

``z = ĥ W``, ``c = 2σ(z[:n]) − 1``, ``f = σ(z[n:])``, ``h = f⊙h₋ + (1−f)⊙c``.

``D = [diag(α) | diag(β)]`` with ``α = (1−f)⊙c'``, ``c' = 2σ(1−σ)`` of ``z[:n]``,
``β = (h₋ − c)⊙f(1−f)``; ``H = diag(f) + diag(α) W_{h→c}ᵀ + diag(β) W_{h→f}ᵀ``.

**Depth d** (Zilly, Srivastava, Koutník & Schmidhuber 2017, "Recurrent Highway Networks",
arXiv 1607.03474: d highway micro-layers per time step; the depth-1 cell is the case d = 1),
S = n, P = 2dn, block k (k = 1..d) = the columns ``2n(k−1) .. 2nk`` of W (a × P):

* ``s⁽⁰⁾ = h₋``; for k = 1..d the input row ``ĥ_k = (x, s⁽⁰⁾, 1)`` for k = 1 and
  ``(0, s⁽ᵏ⁻¹⁾, 1)`` for k > 1 — the input enters the first micro-layer only (as in Zilly et
  al.), so the x-rows of blocks k > 1 are parameters that never act (they multiply zeros):
  their true gradient is exactly zero, and so are BPTT's, TBPTT's, RTRL's and UORO's
  estimates of it; OK and KF-RTRL mix the rows ĥ_1 (with x) and ĥ_k (k > 1) into shared
  factors, so their estimates put zero-mean noise there — harmless, since those weights
  never reach the output, but training moves them;
* ``z_k = ĥ_k W[:, block k]``, ``c_k = 2σ(z_k[:n]) − 1``, ``f_k = σ(z_k[n:])``,
  ``s⁽ᵏ⁾ = f_k⊙s⁽ᵏ⁻¹⁾ + (1−f_k)⊙c_k`` (the depth-1 cell's coupled carry gate, ``c = tanh(z/2)``
  in place of Zilly et al.'s tanh, as in the OK paper); ``h = s⁽ᵈ⁾``.

The immediate influence is a sum of d Kronecker terms (``n_terms = d``):
``F = ∂h/∂W = Σ_k ĥ_k ⊗ D_k`` with ``rows[b, k] = ĥ_k`` (so the intermediate states
``s⁽ᵏ⁻¹⁾`` live in the rows) and ``D_k = ∂h/∂z_k`` (S × P), nonzero only in block k:

    D_k[:, block k] = M_{k→d} [diag(α_k) | diag(β_k)],   M_{k→d} = J_d ⋯ J_{k+1}  (I for k = d)

with ``α_k = (1−f_k)⊙2σ'(z_k[:n])``, ``β_k = (s⁽ᵏ⁻¹⁾ − c_k)⊙f_k(1−f_k)`` as in depth 1 and the
micro-layer Jacobians

    J_m = ∂s⁽ᵐ⁾/∂s⁽ᵐ⁻¹⁾ = diag(f_m) + diag(α_m) W_{m,h→c}ᵀ + diag(β_m) W_{m,h→f}ᵀ

(``W_{m,h→·}``: the recurrent rows n_in .. n_in+n of W in block m's c or f columns). The
product rule gives ``∂h/∂W[q, p] = ĥ_k[q] (∂h/∂z_k)[:, p]`` for p in block k: only z_k reads
block k directly; its later effects run through ``s⁽ᵏ⁾`` and are the factor ``M_{k→d}``.
``H = ∂h/∂h₋ = J_d ⋯ J_1`` (dense S × S; forming it, or all the ``M_{k→d}``, costs
O(d·n³) per stream); the JVP ``H v`` applies ``J_1 … J_d`` in turn in O(d·n²) without forming
H. ``aux`` (B, P) holds the pre-activations z_k of every micro-layer (block k's columns).

``max_depth = 10``: the deepest transition of Zilly et al.'s experiments (Penn Treebank,
depths 1 to 10). Nothing in the kernels depends on the bound; the Kronecker estimators' work
grows as k = r + d terms of S × P = 2dn² entries each.
"""
import numpy as np

from .._jit import kernel
from .._transpose import scaled_transpose
from .._validate import check_positive_int
from ._common import fill_row, row_times_W, sigmoid, vec_times_Wh
from .base import Cell, CellKernels


# --------------------------------------------------------------------------------------
# depth 1
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
    f, alpha, beta = np.empty(n, s.dtype), np.empty(n, s.dtype), np.empty(n, s.dtype)
    for b in range(s.shape[0]):
        for j in range(n):
            f[j], alpha[j], beta[j] = _coefficients(s_prev[b], aux[b], j, n)
        # H[j, i] = α_j W[n_in + i, j] + β_j W[n_in + i, n + j] + f_j [i = j]
        scaled_transpose(W, n_in, 0, alpha, True, False, H[b])
        scaled_transpose(W, n_in, n, beta, True, True, H[b])
        for j in range(n):
            H[b, j, j] += f[j]


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


# --------------------------------------------------------------------------------------
# depth d > 1: micro-layer k (0-based here) reads rows[b, k] = ĥ_{k+1} and block k of W / aux
@kernel
def _layer_coefficients(rows_b, aux_b, k, j, n, n_in):
    """(f, α, β) of unit j in micro-layer k (0-based); ``s⁽ᵏ⁻¹⁾`` is read from its row."""
    o = 2 * n * k
    sc = sigmoid(aux_b[o + j])
    f = sigmoid(aux_b[o + n + j])
    c = 2.0 * sc - 1.0
    alpha = (1.0 - f) * 2.0 * sc * (1.0 - sc)
    beta = (rows_b[k, n_in + j] - c) * f * (1.0 - f)
    return f, alpha, beta


@kernel(fastmath=True)
def _layer_jacobian(W, rows_b, aux_b, k, n, n_in, J):
    """``J[j, i] = ∂s⁽ᵏ⁾_j/∂s⁽ᵏ⁻¹⁾_i`` of micro-layer k (0-based)."""
    o = 2 * n * k
    for j in range(n):
        f, alpha, beta = _layer_coefficients(rows_b, aux_b, k, j, n, n_in)
        for i in range(n):
            J[j, i] = alpha * W[n_in + i, o + j] + beta * W[n_in + i, o + n + j]
        J[j, j] += f


@kernel(fastmath=True)
def _matmul(A, B, out):
    """``out = A B`` (square, row-major friendly; skips zeros of A)."""
    m = A.shape[0]
    for p in range(m):
        for i in range(B.shape[1]):
            out[p, i] = 0.0
        for j in range(m):
            apj = A[p, j]
            if apj != 0.0:
                for i in range(B.shape[1]):
                    out[p, i] += apj * B[j, i]


@kernel
def _deep_forward(W, x, s_prev, s, rows, aux):
    B, d = rows.shape[0], rows.shape[1]
    n = s.shape[1]
    n_in = x.shape[1]
    for b in range(B):
        fill_row(x[b], s_prev[b], rows[b, 0])
        for k in range(1, d):
            for q in range(n_in):
                rows[b, k, q] = 0.0
            rows[b, k, n_in + n] = 1.0
        for k in range(d):
            o = 2 * n * k
            row_times_W(rows[b, k], W, o, o + 2 * n, aux[b, o:o + 2 * n])
            for j in range(n):
                c = 2.0 * sigmoid(aux[b, o + j]) - 1.0
                f = sigmoid(aux[b, o + n + j])
                sj = f * rows[b, k, n_in + j] + (1.0 - f) * c
                if k + 1 < d:
                    rows[b, k + 1, n_in + j] = sj
                else:
                    s[b, j] = sj


@kernel
def _deep_fill_D(W, s_prev, s, rows, aux, D):
    B, d = rows.shape[0], rows.shape[1]
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    M = np.empty((n, n), s.dtype)     # M_{k→d}
    J = np.empty((n, n), s.dtype)
    T = np.empty((n, n), s.dtype)
    D[:] = 0.0
    for b in range(B):
        M[:] = 0.0
        for j in range(n):
            M[j, j] = 1.0
        for k in range(d - 1, -1, -1):
            o = 2 * n * k
            for j in range(n):
                f, alpha, beta = _layer_coefficients(rows[b], aux[b], k, j, n, n_in)
                for p in range(n):
                    D[b, k, p, o + j] = M[p, j] * alpha
                    D[b, k, p, o + n + j] = M[p, j] * beta
            if k > 0:
                _layer_jacobian(W, rows[b], aux[b], k, n, n_in, J)
                _matmul(M, J, T)      # M_{k-1→d} = M_{k→d} J_k
                M, T = T, M


@kernel
def _deep_fill_H(W, s_prev, s, rows, aux, H):
    B, d = rows.shape[0], rows.shape[1]
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    M = np.empty((n, n), s.dtype)     # J_k ⋯ J_1
    J = np.empty((n, n), s.dtype)
    T = np.empty((n, n), s.dtype)
    for b in range(B):
        _layer_jacobian(W, rows[b], aux[b], 0, n, n_in, M)
        for k in range(1, d):
            _layer_jacobian(W, rows[b], aux[b], k, n, n_in, J)
            _matmul(J, M, T)
            M, T = T, M
        for p in range(n):
            for i in range(n):
                H[b, p, i] = M[p, i]


@kernel
def _deep_jvp(W, s_prev, s, rows, aux, v, out):
    B, d = rows.shape[0], rows.shape[1]
    n = s.shape[1]
    n_in = rows.shape[2] - n - 1
    cur = np.empty(n, s.dtype)
    nxt = np.empty(n, s.dtype)
    tmp = np.empty(2 * n, s.dtype)
    for b in range(B):
        for j in range(n):
            cur[j] = v[b, j]
        for k in range(d):
            o = 2 * n * k
            vec_times_Wh(cur, W, n_in, o, o + 2 * n, tmp)
            for j in range(n):
                f, alpha, beta = _layer_coefficients(rows[b], aux[b], k, j, n, n_in)
                nxt[j] = f * cur[j] + alpha * tmp[j] + beta * tmp[n + j]
            cur, nxt = nxt, cur
        for j in range(n):
            out[b, j] = cur[j]


#: the kernels of a cell with ``depth`` > 1 (the depth is read from ``rows.shape[1]``)
DEEP_KERNELS = CellKernels(_deep_forward, _deep_fill_D, _deep_fill_H, _deep_jvp)


class RHN(Cell):
    """Recurrent highway cell; ``depth`` > 1 stacks micro-layers (module docstring). Depth 1
    is the OK paper's cell: class attributes and kernels untouched."""

    name = "rhn"
    n_blocks = 2
    max_depth = 10
    kernels = CellKernels(_forward, _fill_D, _fill_H, _jvp)
    variant_kernels = (DEEP_KERNELS,)

    def __init__(self, n_in, n_hidden, depth=1):
        depth = check_positive_int(depth, "depth")
        if depth > self.max_depth:
            raise ValueError(f"depth must be <= {self.max_depth} for the RHN, got {depth}")
        if depth > 1:
            self.depth = depth
            self.n_blocks = 2 * depth
            self.n_terms = depth
            self.kernels = DEEP_KERNELS
        super().__init__(n_in, n_hidden)

    @property
    def x_terms(self):
        """The input enters the first micro-layer only."""
        return range(1)

    def __repr__(self):
        base = super().__repr__()
        return base if self.depth == 1 else f"{base[:-1]}, depth={self.depth})"
