"""GPU execution of :meth:`oknumba.OnlineLearner.step` (numba.cuda).

:class:`GPUBackend` takes a constructed :class:`~oknumba.OnlineLearner`, copies its
parameters, gradients, optimizer moments, state, influence factors and per-stream random
states to the device once, and from then on keeps them resident: each :meth:`GPUBackend.step`
sends ``x_t``, ``y_t`` (and the reset mask when one is set) and receives the B per-stream
losses plus the two gradient norms in one small copy. The step follows the CPU order exactly:

1. zero the state and influence of the streams flagged in ``reset``;
2. cell forward, ``ĥ_k``, ``D_k`` (stored transposed) and ``H`` (one block per stream);
3. readout: loss, ``δ = ∂L/∂s`` and ``∂L/∂V`` accumulated into the V gradient;
4. estimator update and gradient ``dW += scale · Σ_b δ_bᵀ G̃_b``:

   * OK / OK-truncated / KF / KF-avg: ``work[:, :r] = At Hᵀ`` (tiled matmul), the new terms
     already sit in ``work[:, r:]`` (written there by the cell kernel), split-K Gram of the
     work block, per-stream small linear algebra (:func:`~oknumba.gpu.kernels.get_kernels`
     ``ok_reduce_small`` / ``kf_small``) and the recombination ``At = Xᵀ work``;
   * exact RTRL: ``G' = H G + Σ_k ĥ_k ⊗ D_k`` (tiled matmul with the Kronecker terms in the
     epilogue);

5. every ``update_every`` steps: scale by 1/B, clip each parameter's gradient, Adam (or SGD),
   zero the gradients.

:meth:`GPUBackend.to_host` copies everything back into the learner's host objects (so the
learner's ``state_dict`` works unchanged); :meth:`GPUBackend.from_host` uploads them again
(after ``load_state_dict``).
"""
import math

import numpy as np

from . import SUPPORTED_CELLS, SUPPORTED_METHODS, require_gpu
from ..estimators.reduce import MODE_OPTIMAL, MODE_TRUNCATED

# numba.cuda and the kernels are imported on first use, after require_gpu() has checked that
# numba-cuda is installed (so a missing extra gives the instructions, not an ImportError)
cuda = K = None


def _load():
    global cuda, K
    if K is None:
        from numba import cuda as _cuda

        from . import kernels as _kernels
        cuda, K = _cuda, _kernels


def _blocks(n, tpb):
    return max(1, (n + tpb - 1) // tpb)


class GPUBackend:
    """Device-resident twin of an :class:`~oknumba.OnlineLearner` (methods
    :data:`~oknumba.gpu.SUPPORTED_METHODS`, cells :data:`~oknumba.gpu.SUPPORTED_CELLS`).

    Parameters
    ----------
    learner : oknumba.OnlineLearner
        Its host arrays are the initial values; :meth:`to_host` writes back into them.

    Raises
    ------
    RuntimeError
        Without a usable GPU (or the simulator), saying how to get one.
    NotImplementedError
        For methods or cells without GPU kernels.
    """

    def __init__(self, learner):
        require_gpu()
        _load()
        method = learner.method
        if method not in SUPPORTED_METHODS:
            raise NotImplementedError(
                f"device='gpu' supports the methods {list(SUPPORTED_METHODS)}; method {method!r}"
                " runs on the CPU only (use device='cpu')")
        cell = learner.model.cell
        if cell.name not in SUPPORTED_CELLS:
            raise NotImplementedError(f"device='gpu' supports the cells {list(SUPPORTED_CELLS)}, not {cell.name!r}")
        if learner.optimizer.name not in ("adam", "sgd"):
            raise NotImplementedError(f"device='gpu' supports the optimizers adam and sgd, not {learner.optimizer.name!r}")
        self.learner = learner
        self.method = method
        self.dtype = learner.model.dtype
        self.k = K.get_kernels(self.dtype)
        self._cell_kernel = self.k.cells[cell.name]
        B, dt = learner.batch, self.dtype
        S, P, a, Kt, n = cell.S, cell.P, cell.a, cell.n_terms, cell.n
        self.B, self.S, self.P, self.a, self.K, self.n = B, S, P, a, Kt, n
        self.n_out = learner.model.n_out
        est = learner.estimator
        self._kron = method != "rtrl"
        if self._kron:
            self.r = est.rank
            kk = self.r + Kt
            if kk > K.KMAX:
                raise NotImplementedError(f"device='gpu' handles rank + {Kt} <= {K.KMAX} (got rank {self.r})")
            self.kterms = kk
            self._exact_path = min(a, kk) <= self.r
            self._mode = MODE_TRUNCATED if method == "ok-truncated" else MODE_OPTIMAL
            self._grad_scale = dt.type(est.gradient_scale)

        z = lambda *shape, dtype=dt: cuda.to_device(np.zeros(shape, dtype))  # noqa: E731
        # per-step buffers
        self.d_x = z(B, cell.n_in)
        self.d_y = z(B, dtype=np.int64)
        self.d_mask = z(B, dtype=np.uint8)
        self.d_rows = z(B, Kt, a)
        self.d_aux = z(B, P)
        self.d_tmp = z(B, 6 * n)
        self.d_H = z(B, S, S)
        self.d_g = z(B, self.n_out)
        self.d_delta = z(B, S)
        self.d_scalars = z(B + 2, dtype=np.float64)   # per-stream losses, ‖g_W‖, ‖g_V‖
        self.h_scalars = np.zeros(B + 2, np.float64)
        if self._kron:
            r, kk = self.r, self.kterms
            L = P * S
            self.L = L
            self.d_work = z(B, kk, P, S)
            self.d_work3 = self.d_work.reshape(B, kk, L)
            self.d_prod = self.d_work.reshape(B, kk * P, S)[:, :r * P, :]   # At Hᵀ goes here
            self.d_Dt = self.d_work[:, r:, :, :]                            # new terms (D_kᵀ)
            self.d_X = z(B, kk, r)
            self.d_vproj = z(B, r, P)
            split = max(K.GRAM_COLS, min(L, K.GRAM_SPLIT))
            self._split = split
            self.d_Gp = z(B, _blocks(L, split), kk, kk)
            if method in ("kf", "kf-avg"):
                self.d_signs2 = z(B, r * (Kt + 1))
                self.d_pn = z(B, Kt)
                self.d_ucoef = z(B, r)
            else:
                k2 = min(a, kk)
                self.d_scr = dict(Ut=z(B, a, kk), tau=z(B, kk), Q=z(B, a, k2), R=z(B, k2, kk),
                                  G=z(B, kk, kk), T1=z(B, k2, kk), Mj=z(B, k2, k2), V=z(B, k2, k2),
                                  P=z(B, k2, k2), sig=z(B, kk), inv=z(B, k2), coef=z(B, kk, r),
                                  Pc=z(B, k2, r), Xi=z(B, k2, r), signs=z(B, kk),
                                  offs=z(B, dtype=np.float64), wv=z(B, 2, kk),
                                  perm=z(B, k2, dtype=np.int64))
        else:
            self.d_Dt = z(B, Kt, P, S)
            self.d_G_next = z(B, S, a * P)
        self.from_host()

    # ------------------------------------------------------------------------------
    def from_host(self):
        """Upload the learner's host state (parameters, gradients, optimizer moments, state,
        estimator arrays and random states) — at construction and after ``load_state_dict``."""
        ln = self.learner
        p, g = ln.model.params, ln.grads
        self.d_W = cuda.to_device(p["W"])
        self.d_V = cuda.to_device(p["V"])
        self.d_gW = cuda.to_device(g["W"])
        self.d_gV = cuda.to_device(g["V"])
        opt = ln.optimizer
        if opt.name == "adam":
            self.d_mW, self.d_vW = cuda.to_device(opt.m["W"]), cuda.to_device(opt.v["W"])
            self.d_mV, self.d_vV = cuda.to_device(opt.m["V"]), cuda.to_device(opt.v["V"])
        self.d_s = cuda.to_device(np.ascontiguousarray(ln.state))
        self.d_s_new = cuda.to_device(np.zeros_like(ln.state))
        est = ln.estimator
        self.d_rng = cuda.to_device(est.rng_state) if est.stochastic or self._kron else None
        if self._kron:
            self.d_us = cuda.to_device(est.us)
            self.d_At = cuda.to_device(est.At)
        else:
            self.d_G = cuda.to_device(est.G)

    def to_host(self):
        """Copy the device state back into the learner's host objects (``model.params``,
        ``grads``, optimizer moments, ``state``, estimator factors and random states), so
        ``learner.state_dict()`` and checkpoints see the current values."""
        ln = self.learner
        p, g = ln.model.params, ln.grads
        self.d_W.copy_to_host(p["W"])
        self.d_V.copy_to_host(p["V"])
        self.d_gW.copy_to_host(g["W"])
        self.d_gV.copy_to_host(g["V"])
        opt = ln.optimizer
        if opt.name == "adam":
            self.d_mW.copy_to_host(opt.m["W"])
            self.d_vW.copy_to_host(opt.v["W"])
            self.d_mV.copy_to_host(opt.m["V"])
            self.d_vV.copy_to_host(opt.v["V"])
        ln.state[...] = self.d_s.copy_to_host()
        est = ln.estimator
        if self._kron:
            est.load_factors(self.d_us.copy_to_host(), self.d_At.copy_to_host())
            self.d_rng.copy_to_host(est.rng_state)
        else:
            est.G[...] = self.d_G.copy_to_host()

    # ------------------------------------------------------------------------------
    def step(self, x_t, y_t, reset=None):
        """One online step on the device, same semantics and order as the CPU
        :meth:`oknumba.OnlineLearner.step` (inputs validated by the learner's checks);
        advances ``learner.steps`` / ``updates`` / ``last_grad_norms`` and returns the mean
        cross-entropy (nats) of the streams with a target."""
        ln = self.learner
        x, y, reset, n_valid = ln._check_step_input(x_t, y_t, reset)
        k, B = self.k, self.B
        self.d_x.copy_to_device(x)
        self.d_y.copy_to_device(y)
        if reset is not None and reset.any():
            self.d_mask.copy_to_device(reset.astype(np.uint8))
            self._zero(self.d_s)
            if self._kron:
                self._zero(self.d_us)
                self._zero(self.d_At)
            else:
                self._zero(self.d_G)
        s_prev, s = self.d_s, self.d_s_new
        Dt = self.d_Dt
        self._cell_kernel[B, K.TPB](self.d_W, self.d_x, s_prev, s, self.d_rows, self.d_aux, Dt,
                                    self.d_H, self.d_tmp)
        k.readout[B, K.TPB](self.d_V, s, self.d_y, self.n, self.d_g, self.d_delta, self.d_scalars)
        n_dv = self.d_gV.shape[0] * self.d_gV.shape[1]
        k.readout_dV[_blocks(n_dv, K.TPB), K.TPB](s, self.d_y, self.d_g, self.n, self.d_gV)
        if self._kron:
            self._kron_step()
        else:
            self._rtrl_step()
        self.d_s, self.d_s_new = s, s_prev
        ln.steps += 1
        update = ln.steps % ln.update_every == 0
        if update:
            self._update()
        self.d_scalars.copy_to_host(self.h_scalars)
        loss = 0.0
        for b in range(B):
            loss += float(self.h_scalars[b])
        if update:
            ln.last_grad_norms = (float(self.h_scalars[B]), float(self.h_scalars[B + 1]))
            ln.updates += 1
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {ln.steps}; lower lr or check the inputs")
        return loss / n_valid if n_valid else 0.0

    # ------------------------------------------------------------------------------
    def _zero(self, arr):
        flat = arr.reshape(self.B, arr.size // self.B)
        self.k.zero_rows[(_blocks(flat.shape[1], K.TPB), self.B), K.TPB](self.d_mask, flat)

    def _bmm(self, X, Y, C, transY, kron, rows, Dt):
        T = K.TILE
        grid = (_blocks(C.shape[2], T), _blocks(C.shape[1], T), self.B)
        self.k.bmm[grid, (T, T)](X, Y, C, transY, kron, rows, Dt)

    def _kron_step(self):
        k, B, r = self.k, self.B, self.r
        At3 = self.d_At.reshape(B, r * self.P, self.S)
        self._bmm(At3, self.d_H, self.d_prod, True, False, self.d_rows, self.d_Dt)
        kf = self.method in ("kf", "kf-avg")
        if kf or not self._exact_path:      # KF needs only the norms (the diagonal)
            ns = self.d_Gp.shape[1]
            k.gram_partial[(ns, B), K.TPB](self.d_work3, self.d_Gp, self._split, kf)
        if kf:
            k.kf_small[B, K.TPB](self.d_us, self.d_rows, self.d_Gp, self.d_rng, self.d_X,
                                 self.d_signs2, self.d_pn, self.d_ucoef)
        else:
            sc = self.d_scr
            k.ok_reduce_small[B, K.TPB](self.d_us, self.d_rows, self.d_Gp, self.d_rng, self._mode,
                                        self.d_X, sc["Ut"], sc["tau"], sc["Q"], sc["R"], sc["G"],
                                        sc["T1"], sc["Mj"], sc["V"], sc["P"], sc["sig"], sc["inv"],
                                        sc["coef"], sc["Pc"], sc["Xi"], sc["signs"], sc["offs"],
                                        sc["wv"], sc["perm"])
        outA = self.d_At.reshape(B, r, self.L)
        k.combine[(_blocks(self.L, K.TPB), B), K.TPB](self.d_X, self.d_work3, outA)
        k.kron_proj[_blocks(B * r * self.P, K.TPB), K.TPB](self.d_At, self.d_delta, self.d_vproj)
        k.kron_grad[_blocks(self.a * self.P, K.TPB), K.TPB](self.d_us, self.d_vproj,
                                                            self._grad_scale, self.d_gW)

    def _rtrl_step(self):
        k = self.k
        self._bmm(self.d_H, self.d_G, self.d_G_next, False, True, self.d_rows, self.d_Dt)
        self.d_G, self.d_G_next = self.d_G_next, self.d_G
        n = self.a * self.P
        k.rtrl_grad[_blocks(n, K.TPB), K.TPB](self.d_G, self.d_delta, self.d_gW.reshape(n))

    def _update(self):
        ln, k, B = self.learner, self.k, self.B
        opt = ln.optimizer
        opt.t += 1
        nW, nV = self.d_W.size, self.d_V.size
        W, V = self.d_W.reshape(nW), self.d_V.reshape(nV)
        gW, gV = self.d_gW.reshape(nW), self.d_gV.reshape(nV)
        scale = float(ln._grad_scale)
        max_norm = -1.0 if ln.clip is None else float(ln.clip)
        k.grad_norms[1, K.TPB](gW, gV, scale, self.d_scalars, B)
        if opt.name == "adam":
            t = opt.t
            c2 = math.sqrt(1.0 - opt.beta2 ** t)
            lr_t = opt.lr * c2 / (1.0 - opt.beta1 ** t)
            eps_t = opt.eps * c2
            args = (scale, max_norm, lr_t, float(opt.beta1), float(opt.beta2), eps_t)
            k.adam[_blocks(nW, K.TPB), K.TPB](W, gW, self.d_mW.reshape(nW), self.d_vW.reshape(nW),
                                              self.d_scalars, B, *args)
            k.adam[_blocks(nV, K.TPB), K.TPB](V, gV, self.d_mV.reshape(nV), self.d_vV.reshape(nV),
                                              self.d_scalars, B + 1, *args)
        else:
            lr = float(opt.lr)
            k.sgd[_blocks(nW, K.TPB), K.TPB](W, gW, self.d_scalars, B, scale, max_norm, lr)
            k.sgd[_blocks(nV, K.TPB), K.TPB](V, gV, self.d_scalars, B + 1, scale, max_norm, lr)

    def __repr__(self):
        return f"GPUBackend(method={self.method!r}, cell={self.learner.model.cell_name!r}, dtype={self.dtype.name})"
