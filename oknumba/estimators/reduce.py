"""The Optimal Kronecker-Sum reduction (Benzing et al. 2019, arXiv 1902.03993).

Given k Kronecker terms ``C = Σ_i u_i ⊗ A_i`` (``u_i ∈ R^a``, ``A_i ∈ R^{S×P}``), return r < k
terms ``C'`` with ``E[C'] = C`` and minimal ``E‖C' − C‖_F²``.

**Theorem** (Benzing et al. 2019). Let ``σ₁ ≥ … ≥ σ_k`` be the singular values of the
rearranged ``C`` (the a × SP matrix ``Σ_i u_i vec(A_i)ᵀ``) and m the smallest index in 1..r
with ``(r − m + 1) σ_m ≤ Σ_{i≥m} σ_i``. With ``s₁ = Σ_{i≥m} σ_i``, ``s₂ = Σ_{i≥m} σ_i²`` the
minimum variance is ``s₁²/(r − m + 1) − s₂``. The optimum keeps components 1..m−1 exactly and
mixes m..k into the remaining ``L = r − m + 1`` slots with keep-probabilities
``p_i = L σ_i / s₁``.

**Construction.** Thin QR of both sides, ``Uᵀ = Q_u R_u``, ``Aᵀ = Q_A R_A``, small SVD
``R_u R_Aᵀ = P Σ Yᵀ``, unit factors ``ũ_i = Q_u P[:, i]``, ``Ã_i = Q_A Y[:, i]``. Kept
components are ``(√σ_i ũ_i, √σ_i Ã_i)``.

* k = r + 1 (rotation): with ``w_i = sqrt(1 − p_i)`` (a unit vector over the q = L + 1 mixed
  components) and ``Q`` the last L columns of the Householder reflection mapping e₁ to w
  (orthonormal, ``Qᵀw = 0``, row norms² ``p_i``), independent signs ``ε_i`` and, for slot j,
  ``u'_j = sqrt(s₁/L) Σ_i ε_i Q_ij ũ_i`` and ``A'_j = sqrt(s₁/L) Σ_i ε_i Q_ij Ã_i`` — the
  same coefficient on both sides. For **every** sign draw ``‖C' − C‖² = s₁²/L − s₂``.
* any k: select exactly L of the mixed components with inclusion probabilities ``p_i``
  (systematic sampling: cumulative sums of p against ``U, U+1, …, U+L−1`` for one uniform
  ``U``) and output each selected one as ``sqrt(σ_i/p_i) ũ_i ⊗ sqrt(σ_i/p_i) Ã_i``; same
  variance in expectation.
* truncated (biased, deterministic): keep the top r components, drop the rest.

If ``rank(C) ≤ r`` the output equals C (up to rounding) for every draw.
"""
import numbers

import numpy as np
from numba.extending import register_jitable

from .._jit import kernel
from .mixing import (MODE_OPTIMAL, MODE_SAMPLING, MODE_TRUNCATED, mixing_coefficients_into,
                     split_point)

#: eigenvalues of R_u G R_uᵀ at or below EIG_RTOL·k·eps·λ_max are rounding noise (count as 0)
EIG_RTOL = 8.0

# The theorem's split point and mixing rule have one source for the CPU and the GPU
# (:mod:`oknumba.estimators.mixing`); here they become callable from the CPU kernels.
register_jitable(error_model="numpy")(split_point)
register_jitable(error_model="numpy")(mixing_coefficients_into)


@kernel
def _min_variance(sigma, r):
    k = sigma.shape[0]
    if k <= r:
        return 0.0
    m0 = split_point(sigma, r)
    s1 = 0.0
    s2 = 0.0
    for i in range(m0, k):
        s1 += sigma[i]
        s2 += sigma[i] * sigma[i]
    return max(s1 * s1 / (r - m0) - s2, 0.0)


@kernel
def mixing_coefficients(sigma, r, signs, offset, mode, coef):
    """:func:`~oknumba.estimators.mixing.mixing_coefficients_into` with its scratch
    allocated: fills ``coef`` (k, r) for ``sigma`` (k,) descending; returns m0."""
    k = sigma.shape[0]
    return mixing_coefficients_into(sigma, r, signs, offset, mode, coef,
                                    np.empty(k, sigma.dtype), np.empty(k, sigma.dtype))


@kernel
def reduce_terms(U, A, r, signs, offset, mode, out_U, out_A):
    """Reference reduction (thin QR of both sides + SVD): ``k`` terms (rows of ``U`` (k,a)
    and ``A`` (k,L)) to ``r`` terms in ``out_U`` (r,a), ``out_A`` (r,L). ``signs`` (k,) holds
    ±1 draws, ``offset`` a uniform in [0, 1). Returns ``(sigma, m0)``."""
    k = U.shape[0]
    out_U[:] = 0.0
    out_A[:] = 0.0
    sigma = np.zeros(k, U.dtype)
    if k <= r:
        out_U[:k] = U
        out_A[:k] = A
        return sigma, k
    Qu, Ru = np.linalg.qr(np.ascontiguousarray(U.T))
    Qa, Ra = np.linalg.qr(np.ascontiguousarray(A.T))
    Pm, sv, Yt = np.linalg.svd(np.dot(Ru, Ra.T), full_matrices=False)
    ns = sv.shape[0]
    sigma[:ns] = sv
    coef = np.zeros((k, r), U.dtype)
    m0 = mixing_coefficients(sigma, r, signs, offset, mode, coef)
    # out_U = (Qu P coef)ᵀ, out_A = (Qa Y coef)ᵀ
    cu = np.dot(Pm, coef[:ns])
    ca = np.dot(Yt.T, coef[:ns])
    out_U[:, :] = np.dot(np.ascontiguousarray(cu.T), np.ascontiguousarray(Qu.T))
    out_A[:, :] = np.dot(np.ascontiguousarray(ca.T), np.ascontiguousarray(Qa.T))
    return sigma, m0


# The large-side passes below are hand-blocked instead of BLAS calls: for these skinny shapes
# (k ≤ ~65 rows, long rows) OpenBLAS packs the whole operand and reaches 20–40 GFLOP/s, while
# 4×4 register blocks over contiguous rows vectorise to near peak (measured 2–6× faster on
# the paper's settings, see benchmarks/). Rows are clamped to the last valid one so that one
# block shape covers any k; clamped rows get zero weight (combine) or are not written (Gram).


@kernel
def _add_lower_pairs(G, blk, i0, j0):
    """``G[i0 + di, j0 + dj] += blk[di][dj]`` for the block's pairs inside G's lower triangle
    (i < k, j ≤ i): a register block's sums (clamped rows past k are dropped)."""
    k = G.shape[0]
    for di in range(len(blk)):
        i = i0 + di
        if i < k:
            for dj in range(len(blk[di])):
                j = j0 + dj
                if j <= i:
                    G[i, j] += blk[di][dj]


@kernel(fastmath=True)
def _gram_block(A, G, i0, j0):
    """``G[i, j] += ⟨A_i, A_j⟩`` for the valid lower-triangle pairs of rows i0..i0+3 ×
    j0..j0+3 (j0 ≤ i0)."""
    k, L = A.shape
    A0, A1, A2, A3 = A[i0], A[min(i0 + 1, k - 1)], A[min(i0 + 2, k - 1)], A[min(i0 + 3, k - 1)]
    B0, B1, B2, B3 = A[j0], A[min(j0 + 1, k - 1)], A[min(j0 + 2, k - 1)], A[min(j0 + 3, k - 1)]
    z = A.dtype.type(0.0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = z
    for t in range(L):
        a0, a1, a2, a3 = A0[t], A1[t], A2[t], A3[t]
        b0, b1, b2, b3 = B0[t], B1[t], B2[t], B3[t]
        s00 += a0 * b0
        s01 += a0 * b1
        s02 += a0 * b2
        s03 += a0 * b3
        s10 += a1 * b0
        s11 += a1 * b1
        s12 += a1 * b2
        s13 += a1 * b3
        s20 += a2 * b0
        s21 += a2 * b1
        s22 += a2 * b2
        s23 += a2 * b3
        s30 += a3 * b0
        s31 += a3 * b1
        s32 += a3 * b2
        s33 += a3 * b3
    _add_lower_pairs(G, ((s00, s01, s02, s03), (s10, s11, s12, s13), (s20, s21, s22, s23),
                         (s30, s31, s32, s33)), i0, j0)


@kernel(fastmath=True)
def _gram_block_2x4(A, G, i0, j0):
    """:func:`_gram_block` for the rows i0, i0+1 × j0..j0+3: half the accumulators (they fit
    the 16 vector registers of AVX2 with the operands; 4 × 4 spills there)."""
    k, L = A.shape
    A0, A1 = A[i0], A[min(i0 + 1, k - 1)]
    B0, B1, B2, B3 = A[j0], A[min(j0 + 1, k - 1)], A[min(j0 + 2, k - 1)], A[min(j0 + 3, k - 1)]
    z = A.dtype.type(0.0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    for t in range(L):
        a0, a1 = A0[t], A1[t]
        b0, b1, b2, b3 = B0[t], B1[t], B2[t], B3[t]
        s00 += a0 * b0
        s01 += a0 * b1
        s02 += a0 * b2
        s03 += a0 * b3
        s10 += a1 * b0
        s11 += a1 * b1
        s12 += a1 * b2
        s13 += a1 * b3
    _add_lower_pairs(G, ((s00, s01, s02, s03), (s10, s11, s12, s13)), i0, j0)


#: register-block shapes of :func:`gram_lower_accumulate`. Their speed depends on the machine,
#: and so may their bits: each pair's sum is a vectorised reduction whose order is the
#: vectoriser's (vector width × interleave), and the interleave follows register pressure. On
#: AVX2 both shapes sum in one order; on AVX-512 (32 registers) the 2 × 4 loop is interleaved
#: twice and sums in another. :func:`oknumba.estimators.ok.gram_block` therefore measures
#: them per machine and never chooses one whose bits differ from 4 × 4's (:mod:`oknumba._tuning`)
GRAM_BLOCKS = {"4x4": 0, "2x4": 1}


@kernel
def gram_lower_accumulate(A, G, block=0):
    """``G += A Aᵀ`` on the lower triangle (j ≤ i) only, for rows ``A`` (k, L), in register
    blocks of 4 × 4 rows (``block`` 0) or 2 × 4 (1; see :data:`GRAM_BLOCKS`)."""
    k = A.shape[0]
    if block == 1:
        for i0 in range(0, k, 2):
            for j0 in range(0, i0 + 2, 4):
                _gram_block_2x4(A, G, i0, j0)
    else:
        for i0 in range(0, k, 4):
            for j0 in range(0, i0 + 1, 4):
                _gram_block(A, G, i0, j0)


@kernel
def mirror_lower(G):
    """Copy the lower triangle of the square ``G`` onto its upper triangle."""
    for i in range(G.shape[0]):
        for j in range(i):
            G[j, i] = G[i, j]


@kernel
def gram(A, G):
    """``G = A Aᵀ`` (symmetric: each pair computed once)."""
    G[:, :] = 0.0
    gram_lower_accumulate(A, G)
    mirror_lower(G)


@kernel
def _coef_row(X, i, j0):
    """``X[i, j0:j0+4]`` as four scalars, zeros for a row past the end (a padded block row)."""
    if i < X.shape[0]:
        return X[i, j0], X[i, j0 + 1], X[i, j0 + 2], X[i, j0 + 3]
    z = X.dtype.type(0.0)
    return z, z, z, z


@kernel(fastmath=True)
def _combine_block(X, A, out, i0, j0):
    """``out[j0:j0+4] (+)= Σ_{i=i0}^{i0+3} X[i, j0:j0+4] A_i`` (assigns when i0 = 0)."""
    k, L = A.shape
    x00, x01, x02, x03 = _coef_row(X, i0, j0)
    x10, x11, x12, x13 = _coef_row(X, i0 + 1, j0)
    x20, x21, x22, x23 = _coef_row(X, i0 + 2, j0)
    x30, x31, x32, x33 = _coef_row(X, i0 + 3, j0)
    A0, A1, A2, A3 = A[i0], A[min(i0 + 1, k - 1)], A[min(i0 + 2, k - 1)], A[min(i0 + 3, k - 1)]
    O0, O1, O2, O3 = out[j0], out[j0 + 1], out[j0 + 2], out[j0 + 3]
    if i0 > 0:
        for t in range(L):
            a0, a1, a2, a3 = A0[t], A1[t], A2[t], A3[t]
            O0[t] += x00 * a0 + x10 * a1 + x20 * a2 + x30 * a3
            O1[t] += x01 * a0 + x11 * a1 + x21 * a2 + x31 * a3
            O2[t] += x02 * a0 + x12 * a1 + x22 * a2 + x32 * a3
            O3[t] += x03 * a0 + x13 * a1 + x23 * a2 + x33 * a3
    else:
        for t in range(L):
            a0, a1, a2, a3 = A0[t], A1[t], A2[t], A3[t]
            O0[t] = x00 * a0 + x10 * a1 + x20 * a2 + x30 * a3
            O1[t] = x01 * a0 + x11 * a1 + x21 * a2 + x31 * a3
            O2[t] = x02 * a0 + x12 * a1 + x22 * a2 + x32 * a3
            O3[t] = x03 * a0 + x13 * a1 + x23 * a2 + x33 * a3


@kernel(fastmath=True)
def _combine_row(X, A, out, i, j0):
    """``out[j0:j0+4] += X[i, j0:j0+4] A_i``: one row left over after the blocks of four."""
    x0, x1, x2, x3 = X[i, j0], X[i, j0 + 1], X[i, j0 + 2], X[i, j0 + 3]
    a = A[i]
    O0, O1, O2, O3 = out[j0], out[j0 + 1], out[j0 + 2], out[j0 + 3]
    for t in range(a.shape[0]):
        at = a[t]
        O0[t] += x0 * at
        O1[t] += x1 * at
        O2[t] += x2 * at
        O3[t] += x3 * at


@kernel(fastmath=True)
def combine_rows(X, A, out):
    """``out = Xᵀ A`` for coefficients ``X`` (k, r) and rows ``A`` (k, L); ``out`` (r, L)
    must not overlap ``A``. Rows in blocks of four, the k mod 4 left over one at a time
    (padding them to a block cost a fifth of the pass at k = 17); the r mod 4 columns left
    over by :func:`_combine_column`."""
    k, L = A.shape
    r = X.shape[1]
    r4 = r - r % 4
    k4 = k - k % 4 if k >= 4 else 4        # k < 4: one padded block
    for j0 in range(0, r4, 4):
        for i0 in range(0, k4, 4):
            _combine_block(X, A, out, i0, j0)
        for i in range(k4, k):
            _combine_row(X, A, out, i, j0)
    for j in range(r4, r):
        for i0 in range(0, k, 4):
            _combine_column(X, A, out[j], i0, j)


@kernel(fastmath=True)
def _combine_column(X, A, o, i0, j):
    """``o (+)= Σ_{i=i0}^{min(k, i0+4)−1} X[i, j] A_i`` in one pass over ``o`` (assigns when
    i0 = 0): an output column left over after the blocks of four (every column for r < 4,
    KF-RTRL's r = 1 among them — one pass instead of k + 1)."""
    k, L = A.shape
    m = min(4, k - i0)
    a0 = A[i0]
    x0 = X[i0, j]
    if m == 1:
        if i0 == 0:
            for t in range(L):
                o[t] = x0 * a0[t]
        else:
            for t in range(L):
                o[t] += x0 * a0[t]
        return
    a1 = A[i0 + 1]
    x1 = X[i0 + 1, j]
    if m == 2:
        if i0 == 0:
            for t in range(L):
                o[t] = x0 * a0[t] + x1 * a1[t]
        else:
            for t in range(L):
                o[t] += x0 * a0[t] + x1 * a1[t]
        return
    a2 = A[i0 + 2]
    x2 = X[i0 + 2, j]
    if m == 3:
        if i0 == 0:
            for t in range(L):
                o[t] = x0 * a0[t] + x1 * a1[t] + x2 * a2[t]
        else:
            for t in range(L):
                o[t] += x0 * a0[t] + x1 * a1[t] + x2 * a2[t]
        return
    a3 = A[i0 + 3]
    x3 = X[i0 + 3, j]
    if i0 == 0:
        for t in range(L):
            o[t] = x0 * a0[t] + x1 * a1[t] + x2 * a2[t] + x3 * a3[t]
    else:
        for t in range(L):
            o[t] += x0 * a0[t] + x1 * a1[t] + x2 * a2[t] + x3 * a3[t]


@kernel(fastmath=True)
def small_matmul(A, B, out):
    """``out = A B`` by plain loops: for the k × k-sized products of the reduction, where a
    BLAS call's fixed cost and temporaries dominate (any layouts, e.g. transposed views)."""
    n, m = A.shape
    for i in range(n):
        for j in range(B.shape[1]):
            acc = A.dtype.type(0.0)
            for t in range(m):
                acc += A[i, t] * B[t, j]
            out[i, j] = acc
    return out


@kernel
def reduce_coefficients(U, G, r, signs, offset, mode, out_U, X):
    """The small-side part of :func:`reduce_terms_gram`: from the small factors ``U`` (k, a)
    and the Gram matrix ``G = A Aᵀ`` (k, k) of the large ones, write the output's small
    factors ``out_U`` (r, a) and the coefficients ``X`` (k, r) with which the output's large
    factors are ``Xᵀ A``. Returns m0 (``min(a, k)`` in the exact case)."""
    k = U.shape[0]
    X[:, :] = 0.0
    Qu, Ru = np.linalg.qr(np.ascontiguousarray(U.T))
    kk = Ru.shape[0]                      # min(a, k)
    # canonical signs (diag(R) ≥ 0) so that any QR implementation gives the same factors
    for i in range(kk):
        if Ru[i, i] < 0.0:
            Ru[i, :] = -Ru[i, :]
            Qu[:, i] = -Qu[:, i]
    if kk <= r:                           # exact: C = Σ_i Q_u[:, i] ⊗ (R_u A)_i
        out_U[:] = 0.0
        out_U[:kk] = Qu.T
        X[:, :kk] = Ru.T
        return kk
    M = small_matmul(small_matmul(Ru, G, np.empty((kk, k), G.dtype)), Ru.T,
                     np.empty((kk, kk), G.dtype))
    for i in range(kk):                   # symmetrise (rounding) in place
        for j in range(i):
            M[i, j] = M[j, i] = 0.5 * (M[i, j] + M[j, i])
    lam, Pm = np.linalg.eigh(M)
    # eigenvalues at the rounding level of M are noise: exact rank deficiency (zeroed factors
    # after a reset, the GRU's two equal input rows at h = 0) leaves eigenvalues of size
    # ~eps·λ_max with arbitrary eigenvectors; count them as zero so that the estimate depends
    # on C only (and every implementation, the GPU path included, gives the same one)
    tol = EIG_RTOL * k * np.finfo(U.dtype).eps * max(lam[kk - 1], 0.0)
    sigma = np.zeros(k, U.dtype)
    P = np.empty((kk, kk), U.dtype)
    inv = np.zeros(kk, U.dtype)
    for i in range(kk):                   # descending order, largest |entry| positive
        P[:, i] = Pm[:, kk - 1 - i]
        imax = np.argmax(np.abs(P[:, i]))
        if P[imax, i] < 0.0:
            P[:, i] = -P[:, i]
        li = lam[kk - 1 - i]
        if li > tol:
            sigma[i] = np.sqrt(li)
            inv[i] = 1.0 / sigma[i]
    coef = np.zeros((k, r), U.dtype)
    m0 = mixing_coefficients(sigma, r, signs, offset, mode, coef)
    c = coef[:kk]
    Pc = small_matmul(P, c, np.empty((kk, r), U.dtype))
    small_matmul(Pc.T, Qu.T, out_U)                         # (Q_u P coef)ᵀ
    for i in range(kk):
        for j in range(r):
            c[i, j] *= inv[i]
    small_matmul(Ru.T, small_matmul(P, c, Pc), X)           # R_uᵀ P Σ⁻¹ coef
    return m0


@kernel
def reduce_terms_gram(U, A, r, signs, offset, mode, out_U, out_A):
    """The Gram-matrix form of :func:`reduce_terms` (a reference for tests; the OK estimator
    runs the same three stages fused with its product, see below): same result, but the
    large side only enters through its Gram matrix ``A Aᵀ`` and one recombination product.

    Thin QR of the small side ``Uᵀ = Q_u R_u`` (exact: if rank(U) ≤ r the output is C up to
    rounding), then ``Ā = R_u A`` has the singular values of C: ``Ā Āᵀ = R_u (A Aᵀ) R_uᵀ =
    P Σ² Pᵀ``; unit factors ``ũ_i = Q_u P_i`` and ``Ã_i = Āᵀ P_i / σ_i``, so the output is
    ``out_U = (Q_u P coef)ᵀ`` and ``out_A = Xᵀ A`` with ``X = R_uᵀ P Σ⁻¹ coef``. Whatever the
    rounding in P, ``Σ_i ũ_i σ_i Ã_iᵀ = Q_u P Pᵀ Ā = C``, so the construction stays unbiased;
    components with ``σ_i² ≤ 0`` after rounding (true σ_i below ~1e-8 σ₁ in float64) are
    dropped. Signs are canonical (``diag(R_u) ≥ 0``; each eigenvector's largest entry
    positive), so another implementation (the GPU path) draws the same estimate from the same
    signs. ``out_A`` must not overlap ``A``. The OK estimator runs these three stages
    (:func:`gram`, :func:`reduce_coefficients`, :func:`combine_rows`) inside its chunked pass
    (:mod:`oknumba.estimators.ok`), not this function.
    """
    k = U.shape[0]
    G = np.empty((k, k), A.dtype)
    gram(A, G)
    X = np.empty((k, r), A.dtype)
    m0 = reduce_coefficients(U, G, r, signs, offset, mode, out_U, X)
    combine_rows(X, A, out_A)
    return m0


def _as_rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator or an integer seed, got {type(rng).__name__}")


def _check_rank(rank):
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(f"rank must be an integer >= 1, got {rank!r}")
    if rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank}")
    return int(rank)


def draw_signs(rng, shape, dtype):
    """Independent Rademacher (±1) draws."""
    return (rng.integers(0, 2, size=shape) * 2 - 1).astype(dtype)


def ok_reduce(us, As, rank, rng=None, *, method="optimal"):
    """Optimal unbiased reduction of a Kronecker sum to ``rank`` terms.

    Parameters
    ----------
    us : ndarray (k, a)
    As : ndarray (k, S, P)
        The terms of ``C = Σ_i us[i] ⊗ As[i]``.
    rank : int
        Number of output terms r ≥ 1. With ``rank ≥ k`` the terms are returned unchanged,
        zero-padded to ``rank``.
    rng : numpy.random.Generator or int seed
    method : {"optimal", "sampling", "truncated"}
        ``"optimal"``: rotation construction for k = r + 1 (error the same for every draw),
        inclusion-probability (systematic) sampling for k > r + 1; ``"sampling"``: the
        inclusion-probability construction for every k; ``"truncated"``: deterministic top-r
        truncated SVD — **biased**, for comparison only.

    Returns
    -------
    us_out : ndarray (rank, a)
    As_out : ndarray (rank, S, P)
        ``E[Σ_j us_out[j] ⊗ As_out[j]] = C`` with the theorem's minimal variance
        (:func:`ok_min_variance`), except for ``"truncated"``.
    """
    rank = _check_rank(rank)
    modes = {"optimal": MODE_OPTIMAL, "sampling": MODE_SAMPLING, "truncated": MODE_TRUNCATED}
    if method not in modes:
        raise ValueError(f"method must be one of {sorted(modes)}, got {method!r}")
    us = np.asarray(us)
    As = np.asarray(As)
    if us.ndim != 2 or As.ndim != 3 or us.shape[0] != As.shape[0]:
        raise ValueError(f"us must have shape (k, a) and As shape (k, S, P) with the same k;"
                         f" got us {us.shape} and As {As.shape}")
    if us.dtype not in (np.float32, np.float64) or As.dtype not in (np.float32, np.float64):
        raise TypeError(f"us and As must be float32 or float64 arrays, got {us.dtype} and {As.dtype}")
    if 0 in us.shape or 0 in As.shape:
        raise ValueError(f"us and As must not be empty, got us {us.shape} and As {As.shape}")
    dt = np.result_type(us.dtype, As.dtype)
    if not (np.all(np.isfinite(us)) and np.all(np.isfinite(As))):
        raise ValueError("us and As must be finite (found NaN or inf in the factors)")
    rng = _as_rng(rng)
    k, a = us.shape
    S, P = As.shape[1:]
    U = np.ascontiguousarray(us, dt)
    A = np.ascontiguousarray(As.reshape(k, S * P), dt)
    out_U = np.zeros((rank, a), dt)
    out_A = np.zeros((rank, S * P), dt)
    signs = draw_signs(rng, k, dt)
    offset = dt.type(rng.random())
    try:
        reduce_terms(U, A, rank, signs, offset, modes[method], out_U, out_A)
    except np.linalg.LinAlgError:
        raise FloatingPointError(f"the terms' products overflow {dt.name}: scale us and As down"
                                 " (or use float64)") from None
    return out_U, out_A.reshape(rank, S, P)


def ok_min_variance(singular_values, rank):
    """The theorem's minimum ``E‖C' − C‖_F²`` for the given singular values (any order) and
    rank: ``s₁²/(r − m + 1) − s₂`` (0 when at most ``rank`` values are non-zero)."""
    rank = _check_rank(rank)
    sv = np.asarray(singular_values, dtype=np.float64)
    if sv.ndim != 1 or np.any(sv < 0) or not np.all(np.isfinite(sv)):
        raise ValueError("singular_values must be a 1-d array of finite non-negative numbers")
    return float(_min_variance(np.sort(sv)[::-1].copy(), rank))
