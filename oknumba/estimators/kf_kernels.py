"""KF-RTRL's mixing rule (Mujika et al. 2018, arXiv 1805.10842), shared by ``kf`` and
``kf-avg``, in the coefficient form of the Kronecker-sum pass (:mod:`oknumba.estimators.ok`):
the r copies' new large factors are ``A'_i = Σ_j X[j, i] W_j`` over the k = r + K rows ``W``
(the propagated copies ``H A_i`` and the new terms ``D_k``), with only the norms ``‖W_j‖``
needed from the large side."""
import numpy as np

from .._jit import kernel


@kernel(fastmath=True)
def row_norms_accumulate(A, G):
    """``G[i, i] += ‖A_i‖²`` for the rows of ``A`` (k, L) (the diagonal of ``A Aᵀ``)."""
    for i in range(A.shape[0]):
        a = A[i]
        acc = A.dtype.type(0.0)
        for t in range(a.shape[0]):
            acc += a[t] * a[t]
        G[i, i] += acc


@kernel(fastmath=True)
def _norm(x):
    acc = x.dtype.type(0.0)
    for q in range(x.shape[0]):
        acc += x[q] * x[q]
    return np.sqrt(acc)


@kernel(fastmath=True)
def _axpy(c, x, y):
    for q in range(x.shape[0]):
        y[q] += c * x[q]


@kernel
def kf_coefficients(us_work_b, G_b, r, signs, us_b, X_b):
    """Mix each copy i's propagated term ``(us_work_b[i], W_i)`` with the K new terms
    ``(us_work_b[r+k], W_{r+k})`` into one, with signs ``signs[i, :]`` (length K + 1):

        p_t = sqrt(‖W_t‖ / ‖u_t‖),   u'_i = Σ_t c_t p_t u_t,   A'_i = Σ_t (c_t / p_t) W_t

    writing ``us_b[i] = u'_i`` and the coefficients ``X_b[t, i] = c_t / p_t``. Terms with a
    zero factor are dropped. ``G_b`` holds ``‖W_t‖²`` on its diagonal."""
    k = us_work_b.shape[0]
    K = k - r
    X_b[:, :] = 0.0
    p_new = np.zeros(K, us_b.dtype)
    for kk in range(K):
        nD = np.sqrt(G_b[r + kk, r + kk])
        nR = _norm(us_work_b[r + kk])
        if nD > 0.0 and nR > 0.0:
            p_new[kk] = np.sqrt(nD / nR)
    for i in range(r):
        u = us_b[i]
        u[:] = 0.0
        nu = _norm(us_work_b[i])
        nA = np.sqrt(G_b[i, i])
        if nu > 0.0 and nA > 0.0:
            p1 = np.sqrt(nA / nu)
            c = signs[i, 0]
            _axpy(c * p1, us_work_b[i], u)
            X_b[i, i] = c / p1
        for kk in range(K):
            if p_new[kk] > 0.0:
                c = signs[i, kk + 1]
                _axpy(c * p_new[kk], us_work_b[r + kk], u)
                X_b[r + kk, i] = c / p_new[kk]
