"""numba.cuda twins of the CPU kernels (cells, readout, OK / KF / exact-RTRL steps, clip+Adam).

Every kernel mirrors its CPU counterpart operation by operation (same formulas, same
summation order where it is sequential), so float64 runs agree with the CPU to rounding.
Kernels are generated per float type by :func:`get_kernels` (constants such as ``1`` are cast
to the array type where the CPU kernel works in that type) and compiled on first launch.

Layouts are those of the CPU path (``oknumba.estimators.ok``):

* ``rows`` (B,K,a) input rows ĥ_k; ``Dt`` (B,K,P,S) the **transposed** ``D_k`` (so the OK
  work block's last K slots can be written in place); ``H`` (B,S,S); ``tmp`` (B,6n) per-unit
  coefficients shared between the phases of a cell kernel.
* OK / KF: ``us`` (B,r,a), ``At`` (B,r,P,S), work block (B,r+K,P,S) viewed as (B,r+K,L) with
  L = P·S; exact RTRL: ``G`` (B,S,a·P).

Block sizes are module constants, small under the simulator (each simulated thread is a
Python thread) so that tiny test problems still span several blocks and tiles.

Work split (one step, per stream b): the cell kernel (one block per stream); the batched
products ``At_b H_bᵀ`` (OK/KF) or ``H_b G_b`` (RTRL, with the Kronecker terms fused in the
epilogue) as a tiled shared-memory matmul; the Gram matrix of the (k, L) work block in a
split-K kernel; one block per stream for the small linear algebra (Householder QR of Uᵀ with
diag(R) ≥ 0, ``M = R_u G R_uᵀ``, cyclic Jacobi eigen-decomposition, canonical signs, the
theorem's mixing coefficients, the small-side output); the recombination ``Xᵀ A`` over the
large side; the gradient; the readout; clip + Adam.
"""
import math
import types

import numpy as np
from numba import config, cuda

from ..estimators import reduce as _reduce
from ..estimators.reduce import MODE_OPTIMAL, MODE_SAMPLING, MODE_TRUNCATED
from ._rng import rademacher, uniform

SIM = bool(config.ENABLE_CUDASIM)
#: tile of the batched matmul (TILE × TILE threads per block)
TILE = 4 if SIM else 16
#: threads per block of the per-stream and element-wise kernels (a power of two)
TPB = 8 if SIM else 128
#: columns of the work block staged in shared memory per pass of the Gram kernel
GRAM_COLS = 4 if SIM else 32
#: columns of the work block handled by one Gram block (split-K; partials summed in order)
GRAM_SPLIT = 16 if SIM else 2048
#: most terms k = r + K the Gram kernel takes (shared-memory rows)
KMAX = 64
#: sweep limit of the cyclic Jacobi eigen-solver (it converges quadratically: ~6-10 sweeps)
JACOBI_SWEEPS = 40
#: eigenvalues of ``M = R_u G R_uᵀ`` at or below ``EIG_RTOL · k · eps · λ_max`` count as zero
#: (rounding noise of the Gram formulation) — the CPU reduction's rule, read from it
EIG_RTOL = float(getattr(_reduce, "EIG_RTOL", 0.0))

_CACHE = {}


def get_kernels(dtype):
    """The compiled-on-first-launch kernels for ``dtype`` (float32 or float64)."""
    dt = np.dtype(dtype)
    if dt not in _CACHE:
        _CACHE[dt] = _make(dt.type)
    return _CACHE[dt]


def _make(F):  # noqa: C901 - one closure per float type
    EPS = float(np.finfo(F).eps)
    i32 = np.int32
    BIG_THETA = F(1e18) if F == np.float32 else F(1e150)   # θ² + 1 would overflow above
    NPT = (KMAX * (KMAX + 1) // 2 + TPB - 1) // TPB   # Gram pairs per thread
    f64 = np.float64

    # ------------------------------------------------------------------ helpers
    @cuda.jit(device=True)
    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))

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

    # ------------------------------------------------------------------ cells
    # One block per stream. Dt and H keep their zero pattern from allocation: only the
    # structurally non-zero entries are written.
    @cuda.jit
    def cell_vanilla(W, x, s_prev, s, rows, aux, Dt, H, tmp):
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n = s.shape[1]
        n_in = x.shape[1]
        row = rows[b, 0]
        fill_row(x, s_prev, b, 0, row, tid, nt)
        cuda.syncthreads()
        row_times_W(row, W, 0, n, aux[b], tid, nt)
        cuda.syncthreads()
        for j in range(tid, n, nt):
            s[b, j] = math.tanh(aux[b, j])
            Dt[b, 0, j, j] = 1.0 - s[b, j] * s[b, j]
        cuda.syncthreads()
        for e in range(tid, n * n, nt):
            j = e // n
            i = e % n
            d = 1.0 - s[b, j] * s[b, j]
            H[b, j, i] = d * W[n_in + i, j]

    @cuda.jit
    def cell_rhn(W, x, s_prev, s, rows, aux, Dt, H, tmp):
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n = s.shape[1]
        n_in = x.shape[1]
        row = rows[b, 0]
        fill_row(x, s_prev, b, 0, row, tid, nt)
        cuda.syncthreads()
        row_times_W(row, W, 0, 2 * n, aux[b], tid, nt)
        cuda.syncthreads()
        for j in range(tid, n, nt):
            sc = sigmoid(aux[b, j])
            f = sigmoid(aux[b, n + j])
            c = 2.0 * sc - 1.0
            s[b, j] = f * s_prev[b, j] + (1.0 - f) * c
            alpha = (1.0 - f) * 2.0 * sc * (1.0 - sc)
            beta = (s_prev[b, j] - c) * f * (1.0 - f)
            Dt[b, 0, j, j] = alpha
            Dt[b, 0, n + j, j] = beta
            tmp[b, j] = f
            tmp[b, n + j] = alpha
            tmp[b, 2 * n + j] = beta
        cuda.syncthreads()
        for e in range(tid, n * n, nt):
            j = e // n
            i = e % n
            v = tmp[b, n + j] * W[n_in + i, j] + tmp[b, 2 * n + j] * W[n_in + i, n + j]
            if i == j:
                v += tmp[b, j]
            H[b, j, i] = v

    @cuda.jit
    def cell_lstm(W, x, s_prev, s, rows, aux, Dt, H, tmp):
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n = s.shape[1] // 2
        n_in = x.shape[1]
        row = rows[b, 0]
        fill_row(x, s_prev, b, 0, row, tid, nt)
        cuda.syncthreads()
        row_times_W(row, W, 0, 4 * n, aux[b], tid, nt)
        cuda.syncthreads()
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
            tmp[b, j] = fg
            tmp[b, n + j] = k
            tmp[b, 2 * n + j] = di
            tmp[b, 3 * n + j] = df
            tmp[b, 4 * n + j] = do
            tmp[b, 5 * n + j] = dg
        cuda.syncthreads()
        for e in range(tid, n * n, nt):
            j = e // n
            i = e % n
            wc = (tmp[b, 2 * n + j] * W[n_in + i, j] + tmp[b, 3 * n + j] * W[n_in + i, n + j]
                  + tmp[b, 5 * n + j] * W[n_in + i, 3 * n + j])
            H[b, n + j, i] = wc
            H[b, j, i] = tmp[b, n + j] * wc + tmp[b, 4 * n + j] * W[n_in + i, 2 * n + j]
        for j in range(tid, n, nt):
            H[b, j, n + j] = tmp[b, n + j] * tmp[b, j]
            H[b, n + j, n + j] = tmp[b, j]

    @cuda.jit
    def cell_gru(W, x, s_prev, s, rows, aux, Dt, H, tmp):
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n = s.shape[1]
        n_in = x.shape[1]
        row0 = rows[b, 0]
        row1 = rows[b, 1]
        fill_row(x, s_prev, b, 0, row0, tid, nt)
        cuda.syncthreads()
        row_times_W(row0, W, 0, 2 * n, aux[b], tid, nt)
        cuda.syncthreads()
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
            tmp[b, j] = rm
            tmp[b, n + j] = s_prev[b, j] * rm * (1.0 - rm)            # rho
            tmp[b, 2 * n + j] = u
            tmp[b, 3 * n + j] = (s_prev[b, j] - c) * u * (1.0 - u)   # mu
            tmp[b, 4 * n + j] = (1.0 - u) * (1.0 - c * c)            # gamma
        cuda.syncthreads()
        for j in range(tid, n, nt):
            Dt[b, 0, n + j, j] = tmp[b, 3 * n + j]
            Dt[b, 1, 2 * n + j, j] = tmp[b, 4 * n + j]
        for e in range(tid, n * n, nt):
            j = e // n
            m = e % n
            Dt[b, 0, m, j] = tmp[b, 4 * n + j] * W[n_in + m, 2 * n + j] * tmp[b, n + m]
            i = m
            # M[i, j] = r_i W_c[h_i, j] + Σ_m W_r[h_i, m] ρ_m W_c[h_m, j]
            Mij = tmp[b, i] * W[n_in + i, 2 * n + j]
            for mm in range(n):
                w = W[n_in + i, mm] * tmp[b, n + mm]
                if w != 0.0:
                    Mij += w * W[n_in + mm, 2 * n + j]
            v = tmp[b, 3 * n + j] * W[n_in + i, n + j] + tmp[b, 4 * n + j] * Mij
            if i == j:
                v += tmp[b, 2 * n + j]
            H[b, j, i] = v

    # ------------------------------------------------------------------ readout
    @cuda.jit
    def readout(V, s, y, n, g, delta, lossv):
        """Per stream (one block): logits, softmax, loss (float64, into ``lossv[b]``),
        ``g[b] = p − onehot(y)`` and ``delta[b] = ∂L/∂s``."""
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        n_out = V.shape[1]
        S = s.shape[1]
        sh = cuda.shared.array(1, f64)
        if y[b] < 0:
            for o in range(tid, n_out, nt):
                g[b, o] = 0.0
            for i in range(tid, S, nt):
                delta[b, i] = 0.0
            if tid == 0:
                lossv[b] = 0.0
            return
        for o in range(tid, n_out, nt):
            acc = V[n, o]
            for i in range(n):
                acc += s[b, i] * V[i, o]
            g[b, o] = acc
        cuda.syncthreads()
        if tid == 0:
            mx = g[b, 0]
            for o in range(1, n_out):
                if g[b, o] > mx:
                    mx = g[b, o]
            z = 0.0
            for o in range(n_out):
                g[b, o] = math.exp(g[b, o] - mx)
                z += g[b, o]
            yb = y[b]
            lossv[b] = math.log(z) + mx - (math.log(g[b, yb]) + mx)
            sh[0] = z
        cuda.syncthreads()
        z = sh[0]
        for o in range(tid, n_out, nt):
            g[b, o] = g[b, o] / z
        cuda.syncthreads()
        if tid == 0:
            g[b, y[b]] -= 1.0
        cuda.syncthreads()
        for i in range(tid, S, nt):
            if i < n:
                acc = 0.0
                for o in range(n_out):
                    acc += g[b, o] * V[i, o]
                delta[b, i] = acc
            else:
                delta[b, i] = 0.0

    @cuda.jit
    def readout_dV(s, y, g, n, dV):
        """``dV[i, o] += Σ_b [h_b, 1]_i g[b, o]`` (streams in order; one thread per entry)."""
        e = cuda.grid(1)
        n_out = dV.shape[1]
        if e < dV.shape[0] * n_out:
            i = e // n_out
            o = e % n_out
            acc = dV[i, o]
            for b in range(y.shape[0]):
                if y[b] >= 0:
                    if i < n:
                        acc += s[b, i] * g[b, o]
                    else:
                        acc += g[b, o]
            dV[i, o] = acc

    # ------------------------------------------------------------------ resets
    @cuda.jit
    def zero_rows(mask, arr):
        """``arr[b] = 0`` (arr viewed (B, ·)) for the streams with ``mask[b]``."""
        b = cuda.blockIdx.y
        if mask[b] != 0:
            step = cuda.gridDim.x * cuda.blockDim.x
            for e in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, arr.shape[1], step):
                arr[b, e] = 0.0

    # ------------------------------------------------------------------ batched products
    @cuda.jit
    def bmm(X, Y, C, transY, kron, rows, Dt):
        """Tiled shared-memory ``C[b] = X[b] Y[b]`` (``Y[b]ᵀ`` if ``transY``) for X (B,M,Kd).
        With ``kron`` (exact RTRL, C = G (B,S,a·P)) the epilogue adds the Kronecker terms
        ``Σ_k rows[b,k,q] Dt[b,k,j,p]`` at ``C[b, p, q·P + j]``."""
        sX = cuda.shared.array((TILE, TILE), F)
        sY = cuda.shared.array((TILE, TILE), F)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        b = cuda.blockIdx.z
        M = C.shape[1]
        N = C.shape[2]
        Kd = X.shape[2]
        n0 = cuda.blockIdx.x * TILE
        m = cuda.blockIdx.y * TILE + ty
        n = n0 + tx
        acc = F(0)
        for k0 in range(0, Kd, TILE):
            kx = k0 + tx
            if m < M and kx < Kd:
                sX[ty, tx] = X[b, m, kx]
            else:
                sX[ty, tx] = 0.0
            if transY:       # sY[k, n] = Y[b, n, k], loaded along k (coalesced)
                nn = n0 + ty
                if nn < N and kx < Kd:
                    sY[tx, ty] = Y[b, nn, kx]
                else:
                    sY[tx, ty] = 0.0
            else:
                ky = k0 + ty
                if ky < Kd and n < N:
                    sY[ty, tx] = Y[b, ky, n]
                else:
                    sY[ty, tx] = 0.0
            cuda.syncthreads()
            for t in range(TILE):
                acc += sX[ty, t] * sY[t, tx]
            cuda.syncthreads()
        if m < M and n < N:
            if kron:
                P = Dt.shape[2]
                q = n // P
                j = n % P
                for kt in range(rows.shape[1]):
                    acc += rows[b, kt, q] * Dt[b, kt, j, m]
            C[b, m, n] = acc

    @cuda.jit(device=True)
    def pair_of(pi, diag_only):
        if diag_only:
            return pi, pi
        i = 0
        while pi > i:
            pi -= i + 1
            i += 1
        return i, pi

    @cuda.jit
    def gram_partial(A, Gp, split, diag_only):
        """Split-K Gram: ``Gp[b, s] = A[b, :, cols_s] A[b, :, cols_s]ᵀ`` over the columns
        ``[s·split, (s+1)·split)`` of A (B,k,L) (only the diagonal if ``diag_only``)."""
        sh = cuda.shared.array((KMAX, GRAM_COLS), F)
        acc = cuda.local.array(NPT, F)
        s = cuda.blockIdx.x
        b = cuda.blockIdx.y
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        k = A.shape[1]
        L = A.shape[2]
        t0 = s * split
        t1 = min(L, t0 + split)
        npairs = k if diag_only else k * (k + 1) // 2
        for slot in range(NPT):
            acc[slot] = 0.0
        for c0 in range(t0, t1, GRAM_COLS):
            for e in range(tid, k * GRAM_COLS, nt):
                i = e // GRAM_COLS
                c = e % GRAM_COLS
                if c0 + c < t1:
                    sh[i, c] = A[b, i, c0 + c]
                else:
                    sh[i, c] = 0.0
            cuda.syncthreads()
            for slot in range(NPT):
                pi = tid + slot * nt
                if pi >= npairs:
                    break
                i, j = pair_of(pi, diag_only)
                v = acc[slot]
                for c in range(GRAM_COLS):
                    v += sh[i, c] * sh[j, c]
                acc[slot] = v
            cuda.syncthreads()
        for slot in range(NPT):
            pi = tid + slot * nt
            if pi >= npairs:
                break
            i, j = pair_of(pi, diag_only)
            Gp[b, s, i, j] = acc[slot]
            Gp[b, s, j, i] = acc[slot]

    @cuda.jit
    def combine(X, A, out):
        """``out[b] = X[b]ᵀ A[b]`` for coefficients X (B,k,r) and rows A (B,k,L)."""
        b = cuda.blockIdx.y
        k = A.shape[1]
        r = out.shape[1]
        step = cuda.gridDim.x * cuda.blockDim.x
        for t in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, A.shape[2], step):
            for j in range(r):
                acc = F(0)
                for i in range(k):
                    c = X[b, i, j]
                    if c != 0.0:
                        acc += c * A[b, i, t]
                out[b, j, t] = acc

    # ------------------------------------------------------------------ small linear algebra
    @cuda.jit(device=True)
    def reflect_columns(Ut, j, tj, X, c0, c1, a, tid, nt):
        """``X[:, c] ← (I − τ_j v vᵀ) X[:, c]`` for ``c0 ≤ c < c1`` (columns split over the
        block's threads), with the Householder vector ``v = (1, Ut[j+1:, j])`` stored below
        the diagonal of ``Ut``."""
        for c in range(c0 + tid, c1, nt):
            w = X[j, c]
            for i in range(j + 1, a):
                w += Ut[i, j] * X[i, c]
            w *= tj
            X[j, c] -= w
            for i in range(j + 1, a):
                X[i, c] -= w * Ut[i, j]

    @cuda.jit(device=True)
    def householder_qr(Ut, tau, Q, R, a, k, kk, tid, nt, shf):
        """LAPACK-style (dgeqr2/dorg2r) Householder QR of Ut (a×k) in place; Q (a×kk),
        R (kk×k) with diag(R) ≥ 0. A column already zero below the diagonal gets no
        reflector (tau = 0), as in LAPACK."""
        for j in range(kk):
            if tid == 0:
                alpha = Ut[j, j]
                xn2 = F(0)
                for i in range(j + 1, a):
                    xn2 += Ut[i, j] * Ut[i, j]
                if xn2 == 0.0:
                    tau[j] = 0.0
                else:
                    beta = -math.copysign(math.hypot(alpha, math.sqrt(xn2)), alpha)
                    tau[j] = (beta - alpha) / beta
                    shf[0] = 1.0 / (alpha - beta)
                    Ut[j, j] = beta
            cuda.syncthreads()
            tj = tau[j]
            if tj != 0.0:
                sc = shf[0]
                for i in range(j + 1 + tid, a, nt):
                    Ut[i, j] *= sc
                cuda.syncthreads()
                reflect_columns(Ut, j, tj, Ut, j + 1, k, a, tid, nt)
            cuda.syncthreads()
        for e in range(tid, a * kk, nt):
            q = e // kk
            c = e % kk
            Q[q, c] = 1.0 if q == c else 0.0
        cuda.syncthreads()
        for jj in range(kk):
            j = kk - 1 - jj
            tj = tau[j]
            if tj != 0.0:
                reflect_columns(Ut, j, tj, Q, j, kk, a, tid, nt)
            cuda.syncthreads()
        for e in range(tid, kk * k, nt):
            i = e // k
            c = e % k
            R[i, c] = Ut[i, c] if c >= i else 0.0
        cuda.syncthreads()
        for i in range(tid, kk, nt):        # canonical signs: diag(R) ≥ 0
            if R[i, i] < 0.0:
                for c in range(k):
                    R[i, c] = -R[i, c]
                for q in range(a):
                    Q[q, i] = -Q[q, i]
        cuda.syncthreads()

    @cuda.jit(device=True)
    def jacobi(A, V, n, tid, nt, shf, shi):
        """Cyclic Jacobi on the symmetric A (n×n) in place: A → diag(λ), V ← V J (V = I on
        entry gives the eigenvectors as columns). Each rotation's row/column updates are
        spread over the block's threads."""
        for sweep in range(JACOBI_SWEEPS):
            if tid == 0:
                shi[0] = 0
            cuda.syncthreads()
            for p in range(n - 1):
                for q in range(p + 1, n):
                    if tid == 0:
                        apq = A[p, q]
                        app = A[p, p]
                        aqq = A[q, q]
                        if apq != 0.0 and abs(apq) > EPS * math.sqrt(abs(app * aqq)):
                            theta = (aqq - app) / (2.0 * apq)
                            if abs(theta) > BIG_THETA:
                                t = 0.5 / theta
                            else:
                                t = math.copysign(1.0, theta) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                            c = 1.0 / math.sqrt(t * t + 1.0)
                            shf[0] = c
                            shf[1] = t * c
                            shf[2] = 1.0
                            A[p, p] = app - t * apq
                            A[q, q] = aqq + t * apq
                            A[p, q] = 0.0
                            A[q, p] = 0.0
                            shi[0] = 1
                        else:
                            shf[2] = 0.0
                    cuda.syncthreads()
                    if shf[2] != 0.0:
                        c = shf[0]
                        sn = shf[1]
                        for i in range(tid, n, nt):
                            if i != p and i != q:
                                aip = A[i, p]
                                aiq = A[i, q]
                                A[i, p] = c * aip - sn * aiq
                                A[p, i] = A[i, p]
                                A[i, q] = sn * aip + c * aiq
                                A[q, i] = A[i, q]
                            vip = V[i, p]
                            viq = V[i, q]
                            V[i, p] = c * vip - sn * viq
                            V[i, q] = sn * vip + c * viq
                    cuda.syncthreads()
            if shi[0] == 0:
                break
            cuda.syncthreads()

    @cuda.jit(device=True)
    def split_point(sigma, k, r):
        tail = 0.0
        for i in range(k):
            tail += sigma[i]
        for m0 in range(r):
            if (r - m0) * sigma[m0] <= tail * (1.0 + 1e-12):
                return m0
            tail -= sigma[m0]
        return r - 1

    @cuda.jit(device=True)
    def mixing_coefficients(sigma, k, r, signs, offset, mode, coef, w, v):
        """Port of :func:`oknumba.estimators.reduce.mixing_coefficients` (one thread)."""
        for i in range(k):
            for j in range(r):
                coef[i, j] = 0.0
        m0 = split_point(sigma, k, r)
        for i in range(m0):
            coef[i, i] = math.sqrt(sigma[i])
        n_slots = r - m0
        s1 = 0.0
        for i in range(m0, k):
            s1 += sigma[i]
        if s1 <= 0.0:
            return m0
        q = k - m0
        if mode == MODE_TRUNCATED:
            for i in range(m0, r):
                coef[i, i] = math.sqrt(sigma[i])
        elif mode == MODE_OPTIMAL and q == n_slots + 1:
            scale = math.sqrt(s1 / n_slots)
            for t in range(q):
                w[t] = math.sqrt(max(1.0 - n_slots * sigma[m0 + t] / s1, 0.0))
            ww = F(0)
            for t in range(q):
                ww += w[t] * w[t]
            nw = math.sqrt(ww)
            for t in range(q):
                w[t] /= nw
            for t in range(q):
                v[t] = -w[t]
            v[0] += 1.0
            vv = F(0)
            for t in range(q):
                vv += v[t] * v[t]
            for t in range(q):
                for j in range(n_slots):
                    qij = 1.0 if t == j + 1 else 0.0
                    if vv > 1e-30:
                        qij -= 2.0 * v[t] * v[j + 1] / vv
                    coef[m0 + t, m0 + j] = scale * signs[t] * qij
        else:
            scale = math.sqrt(s1 / n_slots)
            cum = 0.0
            point = offset
            slot = 0
            for t in range(q):
                cum += n_slots * sigma[m0 + t] / s1
                last = t == q - 1
                if slot < n_slots and sigma[m0 + t] > 0.0 and (point < cum or last):
                    coef[m0 + t, m0 + slot] = scale
                    slot += 1
                    point += 1.0
        return m0

    @cuda.jit
    def ok_reduce_small(us, rows, Gp, rng, mode, X, Ut, tau, Q, R, G, T1, Mj, V, P, sig, inv,
                        coef, Pc, Xi, signs, offs, wv, perm):
        """One block per stream, as :func:`oknumba.estimators.reduce.reduce_terms_gram`:
        draws (k signs, one uniform); QR of Uᵀ = [us; rows]ᵀ; then the exact path
        (min(a, k) ≤ r) or Gram → M = R G Rᵀ → Jacobi → descending order with canonical
        signs (eigenvalues at the rounding level count as zero) → mixing coefficients. Writes
        the new ``us[b]`` and the recombination coefficients ``X[b]`` (k×r) of the large side
        (``At_b = X_bᵀ work_b``)."""
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        r = us.shape[1]
        a = us.shape[2]
        K = rows.shape[1]
        k = r + K
        kk = min(a, k)
        ns = Gp.shape[1]
        shf = cuda.shared.array(4, F)
        shi = cuda.shared.array(2, i32)
        if tid == 0:
            for i in range(k):
                signs[b, i] = rademacher(rng, b)
            offs[b] = uniform(rng, b)
        for e in range(tid, a * k, nt):
            q = e // k
            i = e % k
            if i < r:
                Ut[b, q, i] = us[b, i, q]
            else:
                Ut[b, q, i] = rows[b, i - r, q]
        cuda.syncthreads()
        householder_qr(Ut[b], tau[b], Q[b], R[b], a, k, kk, tid, nt, shf)
        if kk <= r:                         # exact: C = Σ_i Q_u[:, i] ⊗ (R_u A)_i
            for e in range(tid, r * a, nt):
                j = e // a
                q = e % a
                us[b, j, q] = Q[b, q, j] if j < kk else 0.0
            for e in range(tid, k * r, nt):
                i = e // r
                j = e % r
                X[b, i, j] = R[b, j, i] if j < kk else 0.0
            return
        for e in range(tid, k * k, nt):
            i = e // k
            j = e % k
            acc = Gp[b, 0, i, j]
            for sp in range(1, ns):
                acc += Gp[b, sp, i, j]
            G[b, i, j] = acc
        cuda.syncthreads()
        for e in range(tid, kk * k, nt):     # T1 = R G
            i = e // k
            j = e % k
            acc = F(0)
            for l in range(k):
                acc += R[b, i, l] * G[b, l, j]
            T1[b, i, j] = acc
        cuda.syncthreads()
        for e in range(tid, kk * kk, nt):    # M = T1 Rᵀ (into P as scratch)
            i = e // kk
            j = e % kk
            acc = F(0)
            for l in range(k):
                acc += T1[b, i, l] * R[b, j, l]
            P[b, i, j] = acc
        cuda.syncthreads()
        for e in range(tid, kk * kk, nt):
            i = e // kk
            j = e % kk
            Mj[b, i, j] = 0.5 * (P[b, i, j] + P[b, j, i])
            V[b, i, j] = 1.0 if i == j else 0.0
        cuda.syncthreads()
        jacobi(Mj[b], V[b], kk, tid, nt, shf, shi)
        if tid == 0:
            # descending order, each eigenvector's largest |entry| positive, noise → 0
            lmax = Mj[b, 0, 0]
            for i in range(kk):
                perm[b, i] = i
                if Mj[b, i, i] > lmax:
                    lmax = Mj[b, i, i]
            tol = EIG_RTOL * k * EPS * max(lmax, 0.0)
            for i in range(kk):
                best = i
                for j in range(i + 1, kk):
                    if Mj[b, perm[b, j], perm[b, j]] > Mj[b, perm[b, best], perm[b, best]]:
                        best = j
                tmp = perm[b, i]
                perm[b, i] = perm[b, best]
                perm[b, best] = tmp
            for i in range(kk):
                c = perm[b, i]
                im = 0
                vm = abs(V[b, 0, c])
                for l in range(1, kk):
                    if abs(V[b, l, c]) > vm:
                        vm = abs(V[b, l, c])
                        im = l
                sgn = -1.0 if V[b, im, c] < 0.0 else 1.0
                for l in range(kk):
                    P[b, l, i] = sgn * V[b, l, c]
                li = Mj[b, c, c]
                if li > tol:
                    sig[b, i] = math.sqrt(li)
                    inv[b, i] = 1.0 / sig[b, i]
                else:
                    sig[b, i] = 0.0
                    inv[b, i] = 0.0
            for i in range(kk, k):
                sig[b, i] = 0.0
            mixing_coefficients(sig[b], k, r, signs[b], offs[b], mode, coef[b], wv[b, 0], wv[b, 1])
        cuda.syncthreads()
        for e in range(tid, kk * r, nt):     # Pc = P c, Xi = P (inv ⊙ c)
            i = e // r
            j = e % r
            acc = F(0)
            acc2 = F(0)
            for l in range(kk):
                acc += P[b, i, l] * coef[b, l, j]
                acc2 += P[b, i, l] * (inv[b, l] * coef[b, l, j])
            Pc[b, i, j] = acc
            Xi[b, i, j] = acc2
        cuda.syncthreads()
        for e in range(tid, r * a, nt):      # us = (Q_u P c)ᵀ
            j = e // a
            q = e % a
            acc = F(0)
            for i in range(kk):
                acc += Pc[b, i, j] * Q[b, q, i]
            us[b, j, q] = acc
        for e in range(tid, k * r, nt):      # X = R_uᵀ Xi
            i = e // r
            j = e % r
            acc = F(0)
            for l in range(kk):
                acc += R[b, l, i] * Xi[b, l, j]
            X[b, i, j] = acc

    @cuda.jit
    def kf_small(us, rows, Gp, rng, X, signs2, pn, ucoef):
        """One block per stream: KF-RTRL mixing of every copy i with the K new terms (draws
        in the CPU order); writes the new ``us[b]`` and the large-side coefficients X[b]."""
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        r = us.shape[1]
        a = us.shape[2]
        K = rows.shape[1]
        k = r + K
        ns = Gp.shape[1]
        if tid == 0:
            for i in range(r):
                signs2[b, i * (K + 1)] = 1.0
                for kk in range(1, K + 1):
                    signs2[b, i * (K + 1) + kk] = rademacher(rng, b)
            for kk in range(K):
                nD2 = Gp[b, 0, r + kk, r + kk]
                for sp in range(1, ns):
                    nD2 += Gp[b, sp, r + kk, r + kk]
                nD = math.sqrt(nD2)
                nR2 = F(0)
                for q in range(a):
                    nR2 += rows[b, kk, q] * rows[b, kk, q]
                nR = math.sqrt(nR2)
                pn[b, kk] = math.sqrt(nD / nR) if (nD > 0.0 and nR > 0.0) else 0.0
            for i in range(r):
                nu2 = F(0)
                for q in range(a):
                    nu2 += us[b, i, q] * us[b, i, q]
                nu = math.sqrt(nu2)
                nA2 = Gp[b, 0, i, i]
                for sp in range(1, ns):
                    nA2 += Gp[b, sp, i, i]
                nA = math.sqrt(nA2)
                for t in range(k):
                    X[b, t, i] = 0.0
                ucoef[b, i] = 0.0
                if nu > 0.0 and nA > 0.0:
                    p1 = math.sqrt(nA / nu)
                    c = signs2[b, i * (K + 1)]
                    ucoef[b, i] = c * p1
                    X[b, i, i] = c / p1
                for kk in range(K):
                    if pn[b, kk] > 0.0:
                        X[b, r + kk, i] = signs2[b, i * (K + 1) + kk + 1] / pn[b, kk]
        cuda.syncthreads()
        for e in range(tid, r * a, nt):
            i = e // a
            q = e % a
            u = F(0)
            if ucoef[b, i] != 0.0:
                u += ucoef[b, i] * us[b, i, q]
            for kk in range(K):
                if pn[b, kk] > 0.0:
                    u += (signs2[b, i * (K + 1) + kk + 1] * pn[b, kk]) * rows[b, kk, q]
            us[b, i, q] = u

    # ------------------------------------------------------------------ gradients
    @cuda.jit
    def kron_proj(At, delta, vproj):
        """``vproj[b, i, j] = Σ_p At[b, i, j, p] δ[b, p]`` (= (A_iᵀ δ_b)_j)."""
        e = cuda.grid(1)
        r = At.shape[1]
        P = At.shape[2]
        if e < At.shape[0] * r * P:
            b = e // (r * P)
            rem = e % (r * P)
            i = rem // P
            j = rem % P
            acc = F(0)
            for p in range(At.shape[3]):
                acc += At[b, i, j, p] * delta[b, p]
            vproj[b, i, j] = acc

    @cuda.jit
    def kron_grad(us, vproj, scale, dW):
        """``dW[q, j] += Σ_b Σ_i (scale·us[b,i,q]) vproj[b,i,j]`` (streams, then terms, in
        order)."""
        e = cuda.grid(1)
        P = dW.shape[1]
        if e < dW.shape[0] * P:
            q = e // P
            j = e % P
            acc = dW[q, j]
            for b in range(us.shape[0]):
                for i in range(us.shape[1]):
                    uq = scale * us[b, i, q]
                    if uq != 0.0:
                        acc += uq * vproj[b, i, j]
            dW[q, j] = acc

    @cuda.jit
    def rtrl_grad(G, delta, dWf):
        """``dW_flat[c] += Σ_b Σ_p δ[b,p] G[b,p,c]``."""
        c = cuda.grid(1)
        if c < dWf.shape[0]:
            acc = dWf[c]
            for b in range(G.shape[0]):
                t = F(0)
                for p in range(G.shape[1]):
                    t += delta[b, p] * G[b, p, c]
                acc += t
            dWf[c] = acc

    # ------------------------------------------------------------------ optimizer
    @cuda.jit
    def grad_norms(gW, gV, scale, out, idx):
        """One block: ``out[idx] = ‖scale·gW‖``, ``out[idx+1] = ‖scale·gV‖`` (float64)."""
        sh = cuda.shared.array((2, TPB), f64)
        tid = cuda.threadIdx.x
        a0 = 0.0
        for e in range(tid, gW.shape[0], TPB):
            g = F(gW[e] * scale)
            a0 += g * g
        a1 = 0.0
        for e in range(tid, gV.shape[0], TPB):
            g = F(gV[e] * scale)
            a1 += g * g
        sh[0, tid] = a0
        sh[1, tid] = a1
        cuda.syncthreads()
        half = TPB // 2
        while half > 0:
            if tid < half:
                sh[0, tid] += sh[0, tid + half]
                sh[1, tid] += sh[1, tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            out[idx] = math.sqrt(sh[0, 0])
            out[idx + 1] = math.sqrt(sh[1, 0])

    @cuda.jit(device=True)
    def scaled_clipped(g, e, norm, scale, max_norm):
        gi = F(g[e] * scale)
        if max_norm > 0.0 and norm > max_norm:
            gi = F(gi * (max_norm / norm))
        return gi

    @cuda.jit
    def adam(p, g, m, v, norms, idx, scale, max_norm, lr_t, b1, b2, eps_t):
        """Scale, clip (by ``norms[idx]``), Adam step (bias corrections folded into lr_t and
        eps_t), zero the gradient — as :func:`oknumba.optim._adam_pair` for one parameter."""
        e = cuda.grid(1)
        if e < p.shape[0]:
            gi = scaled_clipped(g, e, norms[idx], scale, max_norm)
            m[e] = b1 * m[e] + (1.0 - b1) * gi
            v[e] = b2 * v[e] + (1.0 - b2) * gi * gi
            p[e] -= lr_t * m[e] / (math.sqrt(v[e]) + eps_t)
            g[e] = 0.0

    @cuda.jit
    def sgd(p, g, norms, idx, scale, max_norm, lr):
        e = cuda.grid(1)
        if e < p.shape[0]:
            gi = scaled_clipped(g, e, norms[idx], scale, max_norm)
            p[e] -= lr * gi
            g[e] = 0.0

    return types.SimpleNamespace(
        cells={"vanilla": cell_vanilla, "rhn": cell_rhn, "lstm": cell_lstm, "gru": cell_gru},
        readout=readout, readout_dV=readout_dV, zero_rows=zero_rows, bmm=bmm,
        gram_partial=gram_partial, combine=combine, ok_reduce_small=ok_reduce_small,
        kf_small=kf_small, kron_proj=kron_proj, kron_grad=kron_grad, rtrl_grad=rtrl_grad,
        grad_norms=grad_norms, adam=adam, sgd=sgd, dtype=np.dtype(F))


__all__ = ["get_kernels", "TILE", "TPB", "GRAM_COLS", "GRAM_SPLIT", "KMAX", "EIG_RTOL", "SIM",
           "MODE_OPTIMAL", "MODE_SAMPLING", "MODE_TRUNCATED"]
