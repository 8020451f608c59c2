"""Device twins of the Kronecker-sum reduction (:mod:`oknumba.estimators.reduce`) and of
KF-RTRL's mixing (:mod:`oknumba.estimators.kf_kernels`).

Per step and stream, after the product pass has filled the k = r + K stored rows
``W_j`` (:mod:`oknumba.gpu.kronecker`):

* :func:`gram_partial` — split-K Gram matrix ``W Wᵀ`` (k × k; only its diagonal for KF),
  partials summed in order by the small kernels;
* ``ok_reduce_small`` — one block per stream: k signs and one uniform from the stream's
  splitmix64 state (the CPU's draw order), Householder QR of ``Uᵀ = [us; rows]ᵀ`` with
  ``diag(R) ≥ 0``, then the exact path (``min(a, k) ≤ r``) or ``M = R G Rᵀ`` → cyclic Jacobi →
  descending order with canonical signs (eigenvalues at the rounding level count as zero,
  :data:`~oknumba.estimators.reduce.EIG_RTOL`) → the theorem's mixing coefficients
  (:func:`oknumba.estimators.mixing.mixing_coefficients_into`, the CPU's own source compiled
  as a device function) → the new ``us`` and the coefficients ``X`` with which the new large
  factors are ``A_i = Σ_j X[j, i] W_j`` (recombined at the start of the next step);
* ``kf_small`` — KF-RTRL's coefficient choice (norms from the Gram diagonal).
"""
import math
import types

import numpy as np
from numba import cuda
from numba.cuda.extending import register_jitable

from ..estimators import reduce as _reduce
from ..estimators.mixing import mixing_coefficients_into, split_point
from ._device import GRAM_COLS, KMAX, TPB, per_dtype, stream_block
from ._rng import rademacher, uniform

# the CPU's mixing rule, compiled for the device (one source: oknumba.estimators.mixing)
register_jitable(split_point)
register_jitable(mixing_coefficients_into)

#: sweep limit of the cyclic Jacobi eigen-solver (it converges quadratically: ~6-10 sweeps)
JACOBI_SWEEPS = 40
#: eigenvalues of ``M = R_u G R_uᵀ`` at or below ``EIG_RTOL · k · eps · λ_max`` count as zero
EIG_RTOL = _reduce.EIG_RTOL


def _build(F):
    """The reduction kernels for float type F."""
    EPS = float(np.finfo(F).eps)
    i32 = np.int32
    BIG_THETA = F(1e18) if F == np.float32 else F(1e150)   # θ² + 1 would overflow above
    NPT = (KMAX * (KMAX + 1) // 2 + TPB - 1) // TPB        # Gram pairs per thread

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

    @cuda.jit
    def ok_reduce_small(us, rows, Gp, rng, mode, X, Ut, tau, Q, R, gram, T1, Mj, V, P, sig, inv,
                        coef, Pc, Xi, signs, offs, wv, perm):
        """One block per stream, as :func:`oknumba.estimators.reduce.reduce_coefficients`:
        draws (k signs, one uniform); QR of Uᵀ = [us; rows]ᵀ; then the exact path
        (min(a, k) ≤ r) or the Gram matrix ``gram`` → M = R gram Rᵀ → Jacobi → descending order with canonical
        signs (eigenvalues at the rounding level count as zero) → mixing coefficients. Writes
        the new ``us[b]`` and the coefficients ``X[b]`` (k×r) of the large side
        (``A_i = Σ_j X[b, j, i] W_j``, recombined at the start of the next step)."""
        b, tid, nt = stream_block()
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
            gram[b, i, j] = acc
        cuda.syncthreads()
        for e in range(tid, kk * k, nt):     # T1 = R gram
            i = e // k
            j = e % k
            acc = F(0)
            for l in range(k):
                acc += R[b, i, l] * gram[b, l, j]
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
            mixing_coefficients_into(sig[b], r, signs[b], offs[b], mode, coef[b], wv[b, 0], wv[b, 1])
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
        b, tid, nt = stream_block()
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

    return types.SimpleNamespace(gram_partial=gram_partial, ok_reduce_small=ok_reduce_small,
                                 kf_small=kf_small)


get = per_dtype(_build)
