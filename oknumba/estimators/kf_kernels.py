"""The KF-RTRL mixing kernel (spec section 4), shared by ``kf`` and ``kf-avg``."""
import numpy as np

from .._jit import kernel


@kernel
def kf_mix_stream(us_work_b, work_b, signs, us_b, At_b):
    """One stream: mix each copy i's propagated term ``(us_work_b[i], work_b[i])`` with the K
    new terms ``(us_work_b[r+k], work_b[r+k])`` into one term, with signs ``signs[i, :]``
    (length K + 1). Factors are stored transposed, ``work_b`` (r+K, P, S)."""
    k, P, S = work_b.shape
    r = At_b.shape[0]
    K = k - r
    dt = us_b.dtype
    u_new = np.empty(us_b.shape[1], dt)
    A_new = np.empty((P, S), dt)
    p_new = np.empty(K, dt)
    for kk in range(K):
        nD = np.sqrt(np.sum(work_b[r + kk] * work_b[r + kk]))
        nR = np.sqrt(np.sum(us_work_b[r + kk] * us_work_b[r + kk]))
        p_new[kk] = np.sqrt(nD / nR) if (nD > 0.0 and nR > 0.0) else 0.0
    for i in range(r):
        nu = np.sqrt(np.sum(us_work_b[i] * us_work_b[i]))
        nA = np.sqrt(np.sum(work_b[i] * work_b[i]))
        u_new[:] = 0.0
        A_new[:] = 0.0
        if nu > 0.0 and nA > 0.0:
            p1 = np.sqrt(nA / nu)
            c = signs[i, 0]
            u_new += (c * p1) * us_work_b[i]
            A_new += (c / p1) * work_b[i]
        for kk in range(K):
            if p_new[kk] > 0.0:
                c = signs[i, kk + 1]
                u_new += (c * p_new[kk]) * us_work_b[r + kk]
                A_new += (c / p_new[kk]) * work_b[r + kk]
        us_b[i] = u_new
        At_b[i] = A_new
