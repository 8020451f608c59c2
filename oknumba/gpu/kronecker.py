"""Device twins of the Kronecker-sum estimators' large-side passes (:mod:`oknumba.estimators.ok`,
shared by ok, ok-truncated, kf and kf-avg).

Storage is the CPU's: small factors ``us`` (B, r, a), k = r + K stored rows ``W_jᵀ`` (B, k, P, S)
— the CPU's chunk-major layout with one chunk of P rows, the ``"W"`` entry of
``KroneckerSumEstimator.state_dict`` — and the coefficients ``X`` (B, k, r) of the last
reduction, with ``A_i = Σ_j X[j, i] W_j`` (deferred recombination). One step runs, in launch
order (each launch sees the previous one complete):

1. ``combine`` — ``A_iᵀ = Σ_j X[j, i] W_jᵀ`` into a work block (before the cell kernel
   overwrites the new-term rows ``W_r … W_{k−1}`` with this step's ``D_kᵀ``);
2. the cell kernel (:mod:`oknumba.gpu.cells`) writes ``D_kᵀ`` into rows r..k−1;
3. the product ``W_iᵀ ← A_iᵀ Hᵀ`` (:func:`oknumba.gpu.products` ``bmm``) into rows 0..r−1;
4. the Gram matrix of the rows and ``project_rows``: ``v_j = W_jᵀ δ`` (B, k, P);
5. the small reduction (:mod:`oknumba.gpu.reduction`) writes the new ``us`` and ``X``;
6. ``factor_proj`` ``proj_i = Σ_j X[j, i] v_j`` and ``kron_grad``
   ``dW += scale · Σ_b Σ_i u_i ⊗ proj_i`` (identity ``δᵀ(u ⊗ A) = u ⊗ (δᵀA)``).

A reset zeroes the stream's ``us`` and rows and sets ``X = [I_r; 0]`` (``identity_coefficients``).
"""
import types

from numba import cuda

from ._device import per_dtype


def _build(F):
    """The Kronecker-sum kernels for float type F."""

    @cuda.jit
    def identity_coefficients(mask, X):
        """``X[b] = [I_r; 0]`` for the streams with ``mask[b]`` (one thread per entry)."""
        e = cuda.grid(1)
        B, k, r = X.shape
        if e < B * k * r:
            b = e // (k * r)
            if mask[b] != 0:
                i = (e // r) % k
                j = e % r
                X[b, i, j] = 1.0 if i == j else 0.0

    @cuda.jit
    def combine(X, Wr, A):
        """``A[b, j] = Σ_i X[b, i, j] Wr[b, i]`` for rows Wr (B, k, L) into A (B, r, L)."""
        b = cuda.blockIdx.y
        k = Wr.shape[1]
        r = A.shape[1]
        step = cuda.gridDim.x * cuda.blockDim.x
        for t in range(cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x, Wr.shape[2], step):
            for j in range(r):
                acc = F(0)
                for i in range(k):
                    c = X[b, i, j]
                    if c != 0.0:
                        acc += c * Wr[b, i, t]
                A[b, j, t] = acc

    @cuda.jit
    def project_rows(Wr, delta, v):
        """``v[b, j, p] = Σ_s Wr[b, j, p, s] δ[b, s]`` (= (W_jᵀ δ_b)_p) for Wr (B, k, P, S)."""
        e = cuda.grid(1)
        B, k, P, S = Wr.shape
        if e < B * k * P:
            b = e // (k * P)
            j = (e // P) % k
            p = e % P
            acc = F(0)
            for s in range(S):
                acc += Wr[b, j, p, s] * delta[b, s]
            v[b, j, p] = acc

    @cuda.jit
    def factor_proj(X, v, proj):
        """``proj[b, i, p] = Σ_j X[b, j, i] v[b, j, p]`` (= (A_iᵀ δ_b)_p)."""
        e = cuda.grid(1)
        B, r, P = proj.shape
        if e < B * r * P:
            b = e // (r * P)
            i = (e // P) % r
            p = e % P
            acc = F(0)
            for j in range(X.shape[1]):
                c = X[b, j, i]
                if c != 0.0:
                    acc += c * v[b, j, p]
            proj[b, i, p] = acc

    @cuda.jit
    def kron_grad(us, proj, scale, dW):
        """``dW[q, j] += Σ_b Σ_i (scale·us[b,i,q]) proj[b,i,j]`` (streams, then terms, in
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
                        acc += uq * proj[b, i, j]
            dW[q, j] = acc

    return types.SimpleNamespace(identity_coefficients=identity_coefficients, combine=combine,
                                 project_rows=project_rows, factor_proj=factor_proj,
                                 kron_grad=kron_grad)


get = per_dtype(_build)
