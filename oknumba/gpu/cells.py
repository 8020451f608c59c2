"""Device twins of the cells (:mod:`oknumba.cells`): forward, input rows, ``D`` (stored
transposed), ``H`` and the Jacobian-vector product ``H v``.

One block per stream. ``rows`` (B,K,a) are the input rows ĥ_k; ``Dt`` (B,K,P,S) holds
``D_kᵀ`` (the layout of the Kronecker methods' stored rows, so the cell writes its new terms
in place); ``H`` (B,S,S); ``coef`` (B, units·n) the per-unit coefficients the step leaves for
the JVP (each cell's ``units`` in :data:`CELLS`). ``Dt`` and ``H`` keep their zero pattern
from allocation: only the structurally non-zero entries are written.

* vanilla: ``h = tanh(z)``; ``D = diag(1 − h²)``; ``H = diag(1 − h²) W_hᵀ``.
* RHN (depth 1): ``h = f h₋ + (1 − f) c`` with ``c = 2σ(z_c) − 1``, ``f = σ(z_f)``;
  ``α = (1 − f) 2σ(1 − σ)``, ``β = (h₋ − c) f (1 − f)``; ``H = diag(f) + diag(α) W_cᵀ +
  diag(β) W_fᵀ``.
* LSTM: state (h, c); the gate derivatives ``di, df, do, dg`` and ``k = o (1 − tanh² c)``.
* GRU: two rows (ĥ, ĥ_r = (x, r⊙h₋, 1)); ``ρ = h₋ r (1 − r)``, ``μ = (h₋ − c) u (1 − u)``,
  ``γ = (1 − u)(1 − c²)``; the dense r-block of D; H is O(n³) to form, ``H v`` O(n²).

The equations are those of the CPU modules, which document them in full.
"""
import collections
import math
import types

from numba import cuda

from ._device import per_dtype, sigmoid, stream_block

#: per cell: coefficient units (× n) the step leaves in ``coef``, JVP scratch units (× n)
GPUCellSpec = collections.namedtuple("GPUCellSpec", "coef_units jvp_units")
CELLS = {"vanilla": GPUCellSpec(0, 0), "rhn": GPUCellSpec(3, 0), "lstm": GPUCellSpec(6, 0),
         "gru": GPUCellSpec(5, 2)}


def scratch_shapes(cell, batch):
    """Shapes of the ``coef`` and JVP scratch arrays the cell's kernels need (≥ 1 column)."""
    spec = CELLS[cell.name]
    return (batch, max(1, spec.coef_units * cell.n)), (batch, max(1, spec.jvp_units * cell.n))


@cuda.jit(device=True)
def fill_row(x, h, b, hoff, row, tid, nt):
    """``row = (x[b], h[b, hoff:hoff+n], 1)``."""
    n_in = x.shape[1]
    n = row.shape[0] - n_in - 1
    for q in range(tid, row.shape[0], nt):
        if q < n_in:
            row[q] = x[b, q]
        elif q < n_in + n:
            row[q] = h[b, hoff + q - n_in]
        else:
            row[q] = 1.0


def _build(F):
    """The cell kernels for float type F: ``step[name]`` and ``jvp[name]``."""

    @cuda.jit(device=True)
    def row_times_W(row, W, col0, col1, aux, tid, nt):
        """``aux[p] = Σ_k row[k] W[k, p]`` for col0 ≤ p < col1 (k ascending, zeros skipped)."""
        for p in range(col0 + tid, col1, nt):
            acc = F(0)
            for q in range(row.shape[0]):
                rq = row[q]
                if rq != 0.0:
                    acc += rq * W[q, p]
            aux[p] = acc

    @cuda.jit(device=True)
    def input_row_and_z(W, x, s_prev, row, aux_b, ncols, b, tid, nt):
        """``row = ĥ = (x_b, h₋, 1)`` and ``aux_b[:ncols] = ĥ W[:, :ncols]`` (block-wide)."""
        fill_row(x, s_prev, b, 0, row, tid, nt)
        cuda.syncthreads()
        row_times_W(row, W, 0, ncols, aux_b, tid, nt)
        cuda.syncthreads()

    @cuda.jit(device=True)
    def vec_times_Wh(v, b, voff, W, n_in, p, n):
        """``Σ_i v[b, voff + i] W[n_in + i, p]`` over the n recurrent rows (i ascending)."""
        acc = F(0)
        for i in range(n):
            vi = v[b, voff + i]
            if vi != 0.0:
                acc += vi * W[n_in + i, p]
        return acc

    @cuda.jit
    def step_vanilla(W, x, s_prev, s, rows, aux, Dt, H, coef, want_H):
        b, tid, nt = stream_block()
        n = s.shape[1]
        n_in = x.shape[1]
        input_row_and_z(W, x, s_prev, rows[b, 0], aux[b], n, b, tid, nt)
        for j in range(tid, n, nt):
            s[b, j] = math.tanh(aux[b, j])
            Dt[b, 0, j, j] = 1.0 - s[b, j] * s[b, j]
        cuda.syncthreads()
        if want_H:
            for e in range(tid, n * n, nt):
                j = e // n
                i = e % n
                d = 1.0 - s[b, j] * s[b, j]
                H[b, j, i] = d * W[n_in + i, j]

    @cuda.jit
    def jvp_vanilla(W, s_prev, s, coef, v, out, scratch):
        b = cuda.blockIdx.x
        n = s.shape[1]
        n_in = W.shape[0] - n - 1
        for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
            out[b, j] = vec_times_Wh(v, b, 0, W, n_in, j, n) * (1.0 - s[b, j] * s[b, j])

    @cuda.jit
    def step_rhn(W, x, s_prev, s, rows, aux, Dt, H, coef, want_H):
        b, tid, nt = stream_block()
        n = s.shape[1]
        n_in = x.shape[1]
        input_row_and_z(W, x, s_prev, rows[b, 0], aux[b], 2 * n, b, tid, nt)
        for j in range(tid, n, nt):
            sc = sigmoid(aux[b, j])
            f = sigmoid(aux[b, n + j])
            c = 2.0 * sc - 1.0
            s[b, j] = f * s_prev[b, j] + (1.0 - f) * c
            alpha = (1.0 - f) * 2.0 * sc * (1.0 - sc)
            beta = (s_prev[b, j] - c) * f * (1.0 - f)
            Dt[b, 0, j, j] = alpha
            Dt[b, 0, n + j, j] = beta
            coef[b, j] = f
            coef[b, n + j] = alpha
            coef[b, 2 * n + j] = beta
        cuda.syncthreads()
        if want_H:
            for e in range(tid, n * n, nt):
                j = e // n
                i = e % n
                hv = coef[b, n + j] * W[n_in + i, j] + coef[b, 2 * n + j] * W[n_in + i, n + j]
                if i == j:
                    hv += coef[b, j]
                H[b, j, i] = hv

    @cuda.jit
    def jvp_rhn(W, s_prev, s, coef, v, out, scratch):
        b = cuda.blockIdx.x
        n = s.shape[1]
        n_in = W.shape[0] - n - 1
        for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
            out[b, j] = (coef[b, j] * v[b, j] + coef[b, n + j] * vec_times_Wh(v, b, 0, W, n_in, j, n)
                         + coef[b, 2 * n + j] * vec_times_Wh(v, b, 0, W, n_in, n + j, n))

    @cuda.jit
    def step_lstm(W, x, s_prev, s, rows, aux, Dt, H, coef, want_H):
        b, tid, nt = stream_block()
        n = s.shape[1] // 2
        n_in = x.shape[1]
        input_row_and_z(W, x, s_prev, rows[b, 0], aux[b], 4 * n, b, tid, nt)
        for j in range(tid, n, nt):
            ig = sigmoid(aux[b, j])
            fg = sigmoid(aux[b, n + j])
            og = sigmoid(aux[b, 2 * n + j])
            gg = math.tanh(aux[b, 3 * n + j])
            c = fg * s_prev[b, n + j] + ig * gg
            s[b, n + j] = c
            s[b, j] = og * math.tanh(c)
            tc = math.tanh(c)
            k = og * (1.0 - tc * tc)
            di = gg * ig * (1.0 - ig)
            df = s_prev[b, n + j] * fg * (1.0 - fg)
            do = tc * og * (1.0 - og)
            dg = ig * (1.0 - gg * gg)
            Dt[b, 0, j, n + j] = di
            Dt[b, 0, n + j, n + j] = df
            Dt[b, 0, 3 * n + j, n + j] = dg
            Dt[b, 0, j, j] = k * di
            Dt[b, 0, n + j, j] = k * df
            Dt[b, 0, 2 * n + j, j] = do
            Dt[b, 0, 3 * n + j, j] = k * dg
            coef[b, j] = fg
            coef[b, n + j] = k
            coef[b, 2 * n + j] = di
            coef[b, 3 * n + j] = df
            coef[b, 4 * n + j] = do
            coef[b, 5 * n + j] = dg
        cuda.syncthreads()
        if want_H:
            for e in range(tid, n * n, nt):
                j = e // n
                i = e % n
                wc = (coef[b, 2 * n + j] * W[n_in + i, j] + coef[b, 3 * n + j] * W[n_in + i, n + j]
                      + coef[b, 5 * n + j] * W[n_in + i, 3 * n + j])
                H[b, n + j, i] = wc
                H[b, j, i] = coef[b, n + j] * wc + coef[b, 4 * n + j] * W[n_in + i, 2 * n + j]
            for j in range(tid, n, nt):
                H[b, j, n + j] = coef[b, n + j] * coef[b, j]
                H[b, n + j, n + j] = coef[b, j]

    @cuda.jit
    def jvp_lstm(W, s_prev, s, coef, v, out, scratch):
        b = cuda.blockIdx.x
        n = s.shape[1] // 2
        n_in = W.shape[0] - n - 1
        for j in range(cuda.threadIdx.x, n, cuda.blockDim.x):
            dc = (coef[b, 2 * n + j] * vec_times_Wh(v, b, 0, W, n_in, j, n)
                  + coef[b, 3 * n + j] * vec_times_Wh(v, b, 0, W, n_in, n + j, n)
                  + coef[b, 5 * n + j] * vec_times_Wh(v, b, 0, W, n_in, 3 * n + j, n)
                  + coef[b, j] * v[b, n + j])
            out[b, n + j] = dc
            out[b, j] = coef[b, n + j] * dc + coef[b, 4 * n + j] * vec_times_Wh(v, b, 0, W, n_in, 2 * n + j, n)

    @cuda.jit
    def step_gru(W, x, s_prev, s, rows, aux, Dt, H, coef, want_H):
        b, tid, nt = stream_block()
        n = s.shape[1]
        n_in = x.shape[1]
        row0 = rows[b, 0]
        row1 = rows[b, 1]
        input_row_and_z(W, x, s_prev, row0, aux[b], 2 * n, b, tid, nt)
        for q in range(tid, row0.shape[0], nt):
            if q >= n_in and q < n_in + n:
                row1[q] = sigmoid(aux[b, q - n_in]) * s_prev[b, q - n_in]
            else:
                row1[q] = row0[q]
        cuda.syncthreads()
        row_times_W(row1, W, 2 * n, 3 * n, aux[b], tid, nt)
        cuda.syncthreads()
        for j in range(tid, n, nt):
            u = sigmoid(aux[b, n + j])
            s[b, j] = u * s_prev[b, j] + (1.0 - u) * math.tanh(aux[b, 2 * n + j])
            rm = sigmoid(aux[b, j])
            c = math.tanh(aux[b, 2 * n + j])
            coef[b, j] = rm
            coef[b, n + j] = s_prev[b, j] * rm * (1.0 - rm)            # rho
            coef[b, 2 * n + j] = u
            coef[b, 3 * n + j] = (s_prev[b, j] - c) * u * (1.0 - u)   # mu
            coef[b, 4 * n + j] = (1.0 - u) * (1.0 - c * c)            # gamma
        cuda.syncthreads()
        for j in range(tid, n, nt):
            Dt[b, 0, n + j, j] = coef[b, 3 * n + j]
            Dt[b, 1, 2 * n + j, j] = coef[b, 4 * n + j]
        for e in range(tid, n * n, nt):
            j = e // n
            m = e % n
            Dt[b, 0, m, j] = coef[b, 4 * n + j] * W[n_in + m, 2 * n + j] * coef[b, n + m]
            if want_H:
                i = m
                # M[i, j] = r_i W_c[h_i, j] + Σ_m W_r[h_i, m] ρ_m W_c[h_m, j]
                Mij = coef[b, i] * W[n_in + i, 2 * n + j]
                for mm in range(n):
                    w = W[n_in + i, mm] * coef[b, n + mm]
                    if w != 0.0:
                        Mij += w * W[n_in + mm, 2 * n + j]
                hv = coef[b, 3 * n + j] * W[n_in + i, n + j] + coef[b, 4 * n + j] * Mij
                if i == j:
                    hv += coef[b, 2 * n + j]
                H[b, j, i] = hv

    @cuda.jit
    def jvp_gru(W, s_prev, s, coef, v, out, scratch):
        """``t = v W_h`` over the r and u blocks, ``drow = ρ t_r + r v``, ``z_c' = drow W_{h,c}``,
        ``out = u v + μ t_u + γ z_c'`` (scratch: drow, t_u)."""
        b, tid, nt = stream_block()
        n = s.shape[1]
        n_in = W.shape[0] - n - 1
        for m in range(tid, n, nt):
            scratch[b, m] = coef[b, n + m] * vec_times_Wh(v, b, 0, W, n_in, m, n) + coef[b, m] * v[b, m]
            scratch[b, n + m] = vec_times_Wh(v, b, 0, W, n_in, n + m, n)
        cuda.syncthreads()
        for j in range(tid, n, nt):
            dzc = vec_times_Wh(scratch, b, 0, W, n_in, 2 * n + j, n)
            out[b, j] = coef[b, 2 * n + j] * v[b, j] + coef[b, 3 * n + j] * scratch[b, n + j] + coef[b, 4 * n + j] * dzc

    return types.SimpleNamespace(
        step={"vanilla": step_vanilla, "rhn": step_rhn, "lstm": step_lstm, "gru": step_gru},
        jvp={"vanilla": jvp_vanilla, "rhn": jvp_rhn, "lstm": jvp_lstm, "gru": jvp_gru})


get = per_dtype(_build)
