"""Device twin of UORO (:mod:`oknumba.estimators.uoro`, Tallec & Ollivier 2017, arXiv
1702.05043): ``G̃ = s̃ θ̃ᵀ`` per stream, O(S·P + a·P) per step, no dense H.

After the cell kernel (without H) and its JVP kernel ``s' = H s̃`` (:mod:`oknumba.gpu.cells`),
``uoro_step`` runs one block per stream: ν ∈ {±1}^S from the stream's splitmix64 state (the
CPU's draw order), the vector-Jacobian product ``δθ = νᵀ F = Σ_k outer(ĥ_k, νᵀ D_k)``, the
norms, and the ρ-balanced update

    ρ₀ = sqrt((‖θ̃‖ + ε) / (‖s'‖ + ε)),   ρ₁ = sqrt((‖δθ‖ + ε) / (‖ν‖ + ε)),
    s̃ ← ρ₀ s' + ρ₁ ν,                    θ̃ ← θ̃/ρ₀ + δθ/ρ₁;

with the gradient it stores ``c_b = δ_b · s̃_b`` (float64, as on the CPU) and ``uoro_grad``
adds ``dW += Σ_b c_b θ̃_b`` over the streams in order.
"""
import math
import types

from numba import cuda

from ._device import TPB, per_dtype, stream_block
from ._rng import rademacher


def _build(F):
    """The UORO kernels for float type F."""

    @cuda.jit(device=True)
    def block_sum(sh, row, tid):
        """Tree sum of ``sh[row, :TPB]`` (all threads take part); the total is in sh[row, 0]."""
        half = TPB // 2
        while half > 0:
            if tid < half:
                sh[row, tid] += sh[row, tid + half]
            cuda.syncthreads()
            half //= 2

    @cuda.jit
    def uoro_step(s_tilde, theta, s_prime, rows, Dt, rng, eps, nu, vbuf, dtheta, delta, cgrad,
                  with_gradient):
        b, tid, nt = stream_block()
        K = rows.shape[1]
        a = rows.shape[2]
        P = Dt.shape[2]
        S = Dt.shape[3]
        sh = cuda.shared.array((3, TPB), F)
        if tid == 0:
            for p in range(S):
                nu[b, p] = rademacher(rng, b)
        cuda.syncthreads()
        for e in range(tid, K * P, nt):          # v_k = νᵀ D_k
            k = e // P
            j = e % P
            acc = F(0)
            for p in range(S):
                acc += nu[b, p] * Dt[b, k, j, p]
            vbuf[b, k, j] = acc
        cuda.syncthreads()
        n_th = F(0)
        n_sp = F(0)
        n_dt = F(0)
        for e in range(tid, a * P, nt):          # δθ = Σ_k outer(ĥ_k, v_k)
            q = e // P
            j = e % P
            acc = F(0)
            for k in range(K):
                rq = rows[b, k, q]
                if rq != 0.0:
                    acc += rq * vbuf[b, k, j]
            dtheta[b, e] = acc
            n_dt += acc * acc
            n_th += theta[b, e] * theta[b, e]
        for p in range(tid, S, nt):
            n_sp += s_prime[b, p] * s_prime[b, p]
        sh[0, tid] = n_th
        sh[1, tid] = n_sp
        sh[2, tid] = n_dt
        cuda.syncthreads()
        block_sum(sh, 0, tid)
        block_sum(sh, 1, tid)
        block_sum(sh, 2, tid)
        rho0 = math.sqrt((math.sqrt(sh[0, 0]) + eps) / (math.sqrt(sh[1, 0]) + eps))
        rho1 = math.sqrt((math.sqrt(sh[2, 0]) + eps) / (math.sqrt(S) + eps))
        for p in range(tid, S, nt):
            s_tilde[b, p] = rho0 * s_prime[b, p] + rho1 * nu[b, p]
        for e in range(tid, a * P, nt):
            theta[b, e] = theta[b, e] / rho0 + dtheta[b, e] / rho1
        cuda.syncthreads()
        if with_gradient and tid == 0:
            c = 0.0
            for p in range(S):
                c += delta[b, p] * s_tilde[b, p]
            cgrad[b] = c

    @cuda.jit
    def uoro_grad(theta, cgrad, dWf):
        """``dW_flat[q] += Σ_b c_b θ̃[b, q]`` (streams in order, zero c skipped)."""
        q = cuda.grid(1)
        if q < dWf.shape[0]:
            acc = dWf[q]
            for b in range(theta.shape[0]):
                c = cgrad[b]
                if c != 0.0:
                    acc += c * theta[b, q]
            dWf[q] = acc

    return types.SimpleNamespace(uoro_step=uoro_step, uoro_grad=uoro_grad)


get = per_dtype(_build)
