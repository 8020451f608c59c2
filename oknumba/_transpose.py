"""The one transposing copy the hot path needs: Jacobians ``H = diag(c) W_hᵀ`` built from the
recurrent rows of W, and a new Kronecker term's ``D_kᵀ`` written into the stored rows'
chunk layout.

Written naively (``out[j, i] = c[j] A[i, j]`` looping over j then i) every read of the
transposed operand touches a new cache line, and the copy ran 3–4× slower than a contiguous
one (AMD EPYC Zen 3: 25 µs against 7 µs for 128 × 128 float64; it was a tenth of a batch-1
step at n = 128). Here eight rows of A are read side by side and their entries stored next
to each other in each output row — a whole 64-byte line of a float64 output row per pass
(four rows, half a line, ran 1.8× slower at 256 × 256 on the same machine: 52 against 28 µs;
equal at 32 × 32).
"""
from ._jit import kernel


@kernel(fastmath=True)
def scaled_transpose(A, r0, c0, coef, scaled, accumulate, out):
    """``out[j, i] (+)= coef[j] · A[r0 + i, c0 + j]`` for ``out`` (m, n): i < n rows of A from
    ``r0``, j < m columns from ``c0``; with ``scaled`` False ``coef`` is ignored (factor 1),
    with ``accumulate`` the products are added to ``out`` instead of assigned. Each entry is
    the same single product (or sum) as in the plain double loop, so the result does not
    depend on the blocking."""
    m, n = out.shape
    one = A.dtype.type(1.0)
    n8 = n - n % 8
    for i0 in range(0, n8, 8):
        a0, a1, a2, a3 = A[r0 + i0], A[r0 + i0 + 1], A[r0 + i0 + 2], A[r0 + i0 + 3]
        a4, a5, a6, a7 = A[r0 + i0 + 4], A[r0 + i0 + 5], A[r0 + i0 + 6], A[r0 + i0 + 7]
        for j in range(m):
            c = coef[j] if scaled else one
            o = out[j]
            q = c0 + j
            if accumulate:
                o[i0] += c * a0[q]
                o[i0 + 1] += c * a1[q]
                o[i0 + 2] += c * a2[q]
                o[i0 + 3] += c * a3[q]
                o[i0 + 4] += c * a4[q]
                o[i0 + 5] += c * a5[q]
                o[i0 + 6] += c * a6[q]
                o[i0 + 7] += c * a7[q]
            else:
                o[i0] = c * a0[q]
                o[i0 + 1] = c * a1[q]
                o[i0 + 2] = c * a2[q]
                o[i0 + 3] = c * a3[q]
                o[i0 + 4] = c * a4[q]
                o[i0 + 5] = c * a5[q]
                o[i0 + 6] = c * a6[q]
                o[i0 + 7] = c * a7[q]
    for i in range(n8, n):           # the n mod 8 rows left over
        a = A[r0 + i]
        for j in range(m):
            c = coef[j] if scaled else one
            if accumulate:
                out[j, i] += c * a[c0 + j]
            else:
                out[j, i] = c * a[c0 + j]
