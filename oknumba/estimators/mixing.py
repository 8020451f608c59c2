"""The theorem's mixing rule, one source for every device.

Benzing et al. 2019 (arXiv 1902.03993), the theorem on the optimal unbiased rank-r
approximation of a Kronecker sum and the constructions of its proof: given the singular values ``σ₁ ≥ … ≥ σ_k`` of a k-term Kronecker sum, how the r output
slots combine the unit singular components. :mod:`oknumba.estimators.reduce` explains the
construction.

These are plain Python functions written in the subset that Numba compiles for both targets
(loops, ``math``, scalar arithmetic, no allocation): the CPU registers them with
``numba.extending.register_jitable`` (:mod:`oknumba.estimators.reduce`) and the GPU path with
``numba.cuda.extending.register_jitable`` (:mod:`oknumba.gpu.reduction`), so both devices
compile this very code. Scratch vectors are passed in.
"""
import math

MODE_OPTIMAL = 0     # rotation for k = r + 1, systematic sampling for k > r + 1
MODE_SAMPLING = 1    # systematic sampling for every k
MODE_TRUNCATED = 2   # deterministic top-r (biased)


def split_point(sigma, r):
    """0-based m of the theorem: the smallest m0 < r with ``(r − m0) σ[m0] ≤ Σ_{i≥m0} σ_i``
    (components before m0 are kept exactly)."""
    k = sigma.shape[0]
    tail = 0.0
    for i in range(k):
        tail += sigma[i]
    for m0 in range(r):
        if (r - m0) * sigma[m0] <= tail * (1.0 + 1e-12):
            return m0
        tail -= sigma[m0]
    return r - 1


def mixing_coefficients_into(sigma, r, signs, offset, mode, coef, w, v):
    """The theorem's output as coefficients on the unit singular components.

    ``sigma`` (k,) descending, ``signs`` (k,) ±1, ``offset`` uniform in [0, 1); fills
    ``coef`` (k, r) so that output slot j is ``Σ_i coef[i, j] (ũ_i, Ã_i)`` on both sides (the
    same coefficient on both). ``w``, ``v`` (≥ k,) are scratch. Returns m0.

    * kept: ``coef[i, i] = √σ_i`` for i < m0;
    * rotation (``MODE_OPTIMAL``, q = k − m0 = L + 1 mixed components for L = r − m0 slots):
      ``w_t = sqrt(1 − L σ_t / s₁)`` normalised, the Householder reflection ``I − 2 v vᵀ/vᵀv``
      with ``v = e₁ − w`` maps e₁ to w; its last L columns Q give
      ``coef[m0 + t, m0 + j] = sqrt(s₁/L) ε_t Q_tj``;
    * systematic sampling (any q): slot points ``offset, offset + 1, …`` against the
      cumulative keep-probabilities ``p_t = L σ_t / s₁``; a selected component gets
      ``sqrt(s₁/L)`` (= sqrt(σ_t/p_t) on each side);
    * ``MODE_TRUNCATED``: the top r components, unscaled (biased).
    """
    k = sigma.shape[0]
    for i in range(k):
        for j in range(r):
            coef[i, j] = 0.0
    m0 = split_point(sigma, r)
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
        ww = w[0] * w[0]
        for t in range(1, q):
            ww += w[t] * w[t]
        nw = math.sqrt(ww)
        for t in range(q):
            w[t] = w[t] / nw
        for t in range(q):
            v[t] = -w[t]
        v[0] += 1.0                     # v = e₁ − w: I − 2vvᵀ/vᵀv maps e₁ to w
        vv = v[0] * v[0]
        for t in range(1, q):
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
