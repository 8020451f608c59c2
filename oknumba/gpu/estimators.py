"""Device twins of the estimators (:mod:`oknumba.estimators`) and of TBPTT's window: which
device arrays each method keeps, how it moves them to and from its host object, and which
kernels one step launches.

Every class has the CPU estimator's shape: ``reset(mask)``, a ``step`` split around the cell
kernel (``before_cell`` — work that must read the previous step's arrays before the cell
overwrites them —, then ``after_readout`` with this step's δ), plus ``upload`` /
``download``, the one conversion point between the host object and the device arrays.
``download`` goes through the host estimator's ``load_state_dict`` (and ``upload`` through its
``state_dict``), so the layouts are the CPU's own and a checkpoint written from a GPU run is
an ordinary one.
"""
import numpy as np
from numba import cuda

from ..estimators.mixing import MODE_OPTIMAL, MODE_TRUNCATED
from ..methods import method_info
from ..estimators.uoro import EPSILON
from . import bptt, cells, kronecker, products, reduction, uoro
from ._device import GRAM_COLS, GRAM_SPLIT, KMAX, TILE, TPB, blocks


def _zeros(*shape, dtype):
    return cuda.to_device(np.zeros(shape, dtype))


class DeviceEstimator:
    """Base: the buffers the cell kernel writes (``rows``, ``Dt``, ``H``) and δ."""

    needs_H = True
    #: the cell kernel writes ``D_kᵀ`` into the estimator's own storage (set in ``upload``)
    owns_Dt = False

    def __init__(self, backend):
        self.bk = backend
        self.dt = backend.dtype
        cell, B = backend.cell, backend.B
        self.prod = products.get(self.dt)
        self.rows = _zeros(B, cell.n_terms, cell.a, dtype=self.dt)
        self.Dt = None if self.owns_Dt else _zeros(B, cell.n_terms, cell.P, cell.S, dtype=self.dt)
        self.H = _zeros(B, cell.S, cell.S, dtype=self.dt) if self.needs_H else _zeros(1, 1, 1, dtype=self.dt)
        self.delta = _zeros(B, cell.S, dtype=self.dt)

    def zero(self, arr, d_mask):
        """``arr[b] = 0`` for the streams in the device mask."""
        B = self.bk.B
        flat = arr.reshape(B, arr.size // B)
        self.prod.zero_rows[(blocks(flat.shape[1]), B), TPB](d_mask, flat)

    def bmm(self, X, Y, C, transY, kron=False):
        grid = (blocks(C.shape[2], TILE), blocks(C.shape[1], TILE), self.bk.B)
        self.prod.bmm[grid, (TILE, TILE)](X, Y, C, transY, kron, self.rows, self.Dt)

    def cell_buffers(self, step):
        """``(rows, Dt, H, delta)`` the cell and readout kernels write at ``step``."""
        return self.rows, self.Dt, self.H, self.delta

    def reset(self, d_mask):
        pass

    def before_cell(self):
        pass

    def after_readout(self):
        raise NotImplementedError

    def before_update(self):
        pass


class KroneckerDevice(DeviceEstimator):
    """ok, ok-truncated, kf, kf-avg: ``us``, the stored rows ``W`` (B, k, P, S) and ``X``
    (:mod:`oknumba.gpu.kronecker`)."""

    owns_Dt = True   # the new-term rows W_r … W_{k−1}

    def __init__(self, backend):
        est = backend.learner.host_copies().estimator
        cell, B, dt = backend.cell, backend.B, backend.dtype
        self.r = r = est.rank
        self.k = k = r + cell.n_terms
        if k > KMAX:
            raise NotImplementedError(f"device='gpu' handles rank + {cell.n_terms} <= {KMAX} (got rank {r})")
        super().__init__(backend)
        self.kr = kronecker.get(dt)
        self.red = reduction.get(dt)
        self.kf = est.method in ("kf", "kf-avg")
        self.mode = MODE_TRUNCATED if est.method == "ok-truncated" else MODE_OPTIMAL
        self.scale = dt.type(est.gradient_scale)
        self.exact = min(cell.a, k) <= r
        P, S = cell.P, cell.S
        self.L = P * S
        self.A = _zeros(B, r, P, S, dtype=dt)
        self.v = _zeros(B, k, P, dtype=dt)
        self.proj = _zeros(B, r, P, dtype=dt)
        self.split = max(GRAM_COLS, min(self.L, GRAM_SPLIT))
        self.Gp = _zeros(B, blocks(self.L, self.split), k, k, dtype=dt)
        if self.kf:
            self.scr = dict(signs2=_zeros(B, r * (cell.n_terms + 1), dtype=dt),
                            pn=_zeros(B, cell.n_terms, dtype=dt), ucoef=_zeros(B, r, dtype=dt))
        else:
            a, k2 = cell.a, min(cell.a, k)
            z = lambda *s, dtype=dt: _zeros(*s, dtype=dtype)  # noqa: E731
            self.scr = dict(Ut=z(B, a, k), tau=z(B, k), Q=z(B, a, k2), R=z(B, k2, k),
                            gram=z(B, k, k), T1=z(B, k2, k), Mj=z(B, k2, k2), V=z(B, k2, k2),
                            P=z(B, k2, k2), sig=z(B, k), inv=z(B, k2), coef=z(B, k, r),
                            Pc=z(B, k2, r), Xi=z(B, k2, r), signs=z(B, k),
                            offs=z(B, dtype=np.float64), wv=z(B, 2, k),
                            perm=z(B, k2, dtype=np.int64))

    def upload(self):
        st = self.bk.learner.host_copies().estimator.state_dict()
        self.us, self.X = cuda.to_device(st["us"]), cuda.to_device(st["X"])
        self.term_rows = cuda.to_device(np.ascontiguousarray(st["W"]))  # stored rows (B,k,P,S)
        self.rng = cuda.to_device(st["rng_state"])
        self.Dt = self.term_rows[:, self.r:]                            # the new-term rows
        self.term_rows3 = self.term_rows.reshape(self.bk.B, self.k, self.L)

    def download(self):
        est = self.bk.learner.host_copies().estimator
        est.load_state_dict({"us": self.us.copy_to_host(), "X": self.X.copy_to_host(),
                             "W": self.term_rows.copy_to_host(),
                             "rng_state": self.rng.copy_to_host()})

    def reset(self, d_mask):
        self.zero(self.us, d_mask)
        self.zero(self.term_rows, d_mask)
        n = self.X.size
        self.kr.identity_coefficients[blocks(n), TPB](d_mask, self.X)

    def before_cell(self):
        B, r = self.bk.B, self.r
        self.kr.combine[(blocks(self.L), B), TPB](self.X, self.term_rows3, self.A.reshape(B, r, self.L))

    def after_readout(self):
        bk, B, r, P, S = self.bk, self.bk.B, self.r, self.bk.cell.P, self.bk.cell.S
        prod_rows = self.term_rows.reshape(B, self.k * P, S)[:, :r * P, :]
        self.bmm(self.A.reshape(B, r * P, S), self.H, prod_rows, True)
        if self.kf or not self.exact:          # KF needs only the norms (the diagonal)
            ns = self.Gp.shape[1]
            self.red.gram_partial[(ns, B), TPB](self.term_rows3, self.Gp, self.split, self.kf)
        kp = blocks(B * self.k * P)
        self.kr.project_rows[kp, TPB](self.term_rows, self.delta, self.v)
        sc = self.scr
        if self.kf:
            self.red.kf_small[B, TPB](self.us, self.rows, self.Gp, self.rng, self.X,
                                      sc["signs2"], sc["pn"], sc["ucoef"])
        else:
            self.red.ok_reduce_small[B, TPB](
                self.us, self.rows, self.Gp, self.rng, self.mode, self.X, sc["Ut"], sc["tau"],
                sc["Q"], sc["R"], sc["gram"], sc["T1"], sc["Mj"], sc["V"], sc["P"], sc["sig"],
                sc["inv"], sc["coef"], sc["Pc"], sc["Xi"], sc["signs"], sc["offs"], sc["wv"],
                sc["perm"])
        self.kr.factor_proj[blocks(B * r * P), TPB](self.X, self.v, self.proj)
        self.kr.kron_grad[blocks(bk.cell.a * P), TPB](self.us, self.proj, self.scale, bk.d_gW)


class RTRLDevice(DeviceEstimator):
    """Exact RTRL: ``G`` (B, S, a·P), ``G' = H G + Σ_k ĥ_k ⊗ D_k``."""

    def __init__(self, backend):
        super().__init__(backend)
        cell = backend.cell
        self.G_next = _zeros(backend.B, cell.S, cell.a * cell.P, dtype=self.dt)

    def upload(self):
        self.G = cuda.to_device(self.bk.learner.host_copies().estimator.G)

    def download(self):
        self.bk.learner.host_copies().estimator.G[...] = self.G.copy_to_host()

    def reset(self, d_mask):
        self.zero(self.G, d_mask)

    def after_readout(self):
        self.bmm(self.H, self.G, self.G_next, False, kron=True)
        self.G, self.G_next = self.G_next, self.G
        n = self.G.shape[2]
        self.prod.rtrl_grad[blocks(n), TPB](self.G, self.delta, self.bk.d_gW.reshape(n))


class UORODevice(DeviceEstimator):
    """UORO: ``s̃`` (B, S), ``θ̃`` (B, a·P); the cell's JVP instead of H (:mod:`oknumba.gpu.uoro`)."""

    needs_H = False

    def __init__(self, backend):
        super().__init__(backend)
        cell, B, dt = backend.cell, backend.B, self.dt
        self.uo = uoro.get(dt)
        self.eps = dt.type(EPSILON)
        self.jvp = cells.get(dt).jvp[cell.name]
        self.s_prime = _zeros(B, cell.S, dtype=dt)
        self.nu = _zeros(B, cell.S, dtype=dt)
        self.vbuf = _zeros(B, cell.n_terms, cell.P, dtype=dt)
        self.dtheta = _zeros(B, cell.a * cell.P, dtype=dt)
        self.cgrad = _zeros(B, dtype=np.float64)
        self.jvp_scratch = cuda.to_device(np.zeros(cells.scratch_shapes(cell, B)[1], dt))

    def upload(self):
        est = self.bk.learner.host_copies().estimator
        self.s_tilde, self.theta = cuda.to_device(est.s_tilde), cuda.to_device(est.theta)
        self.rng = cuda.to_device(est.rng_state)

    def download(self):
        est = self.bk.learner.host_copies().estimator
        est.load_state_dict({"s_tilde": self.s_tilde.copy_to_host(),
                             "theta": self.theta.copy_to_host(),
                             "rng_state": self.rng.copy_to_host()})

    def reset(self, d_mask):
        self.zero(self.s_tilde, d_mask)
        self.zero(self.theta, d_mask)

    def after_readout(self):
        bk, B = self.bk, self.bk.B
        self.jvp[B, TPB](bk.d_W, bk.d_s_prev, bk.d_s, bk.d_coef, self.s_tilde, self.s_prime,
                         self.jvp_scratch)
        self.uo.uoro_step[B, TPB](self.s_tilde, self.theta, self.s_prime, self.rows, self.Dt,
                                  self.rng, self.eps, self.nu, self.vbuf, self.dtheta,
                                  self.delta, self.cgrad, True)
        n = self.theta.shape[1]
        self.uo.uoro_grad[blocks(n), TPB](self.theta, self.cgrad, bk.d_gW.reshape(n))


class TBPTTDevice(DeviceEstimator):
    """TBPTT(k): the window of :class:`~oknumba.estimators.bptt.TruncatedBPTT` on the device;
    the backward pass every k steps (:mod:`oknumba.gpu.bptt`)."""

    def __init__(self, backend):
        self.bk = backend
        self.dt = backend.dtype
        self.prod = products.get(self.dt)
        self.bp = bptt.get(self.dt)
        self.kr = kronecker.get(self.dt)
        cell, B = backend.cell, backend.B
        self.g = _zeros(B, cell.S, dtype=self.dt)
        self.g2 = _zeros(B, cell.S, dtype=self.dt)
        self.v = _zeros(B, cell.n_terms, cell.P, dtype=self.dt)
        self._no_reset = _zeros(B, dtype=np.uint8)
        self._one = self.dt.type(1.0)     # kron_grad's scale
        self._reset_mask = None

    def upload(self):
        w = self.bk.learner.host_copies().estimator.window
        self.w_rows, self.w_H = cuda.to_device(w["rows"]), cuda.to_device(w["H"])
        self.w_Dt = cuda.to_device(np.ascontiguousarray(w["D"].transpose(0, 1, 2, 4, 3)))
        self.w_deltas = cuda.to_device(w["deltas"])
        self.w_resets = cuda.to_device(w["resets"].astype(np.uint8))

    def download(self):
        w = self.bk.learner.host_copies().estimator.window
        w["rows"][...] = self.w_rows.copy_to_host()
        w["H"][...] = self.w_H.copy_to_host()
        w["D"][...] = self.w_Dt.copy_to_host().transpose(0, 1, 2, 4, 3)
        w["deltas"][...] = self.w_deltas.copy_to_host()
        w["resets"][...] = self.w_resets.copy_to_host().astype(bool)

    def cell_buffers(self, step):
        """The window slot of ``step`` (``step mod k``), with its reset flags recorded — as
        :meth:`oknumba.estimators.bptt.TruncatedBPTT.cell_buffers`."""
        slot = step % self.w_deltas.shape[0]
        mask = self._no_reset if self._reset_mask is None else self._reset_mask
        self.bp.assign[blocks(self.bk.B), TPB](mask, self.w_resets[slot])
        self._reset_mask = None
        return self.w_rows[slot], self.w_Dt[slot], self.w_H[slot], self.w_deltas[slot]

    def reset(self, d_mask):
        self._reset_mask = d_mask      # recorded in the step's slot by cell_buffers

    def after_readout(self):
        pass

    def before_update(self):
        """``backprop_chunk`` over the window: from its last step to its first."""
        bp, gW = self.bp, self.bk.d_gW
        k = self.w_deltas.shape[0]
        B, S = self.g.shape
        nv, nW = self.v.size, gW.size
        bp.assign[blocks(B * S), TPB](self.w_deltas[k - 1].reshape(B * S), self.g.reshape(B * S))
        for t in range(k - 1, -1, -1):
            self.kr.project_rows[blocks(nv), TPB](self.w_Dt[t], self.g, self.v)
            self.kr.kron_grad[blocks(nW), TPB](self.w_rows[t], self.v, self._one, gW)
            if t == 0:
                break
            bp.carry[blocks(B * S), TPB](self.g, self.w_H[t], self.w_resets[t],
                                          self.w_deltas[t - 1], self.g2)
            self.g, self.g2 = self.g2, self.g


def make(backend):
    """The device estimator the method registers (:attr:`oknumba.methods.MethodInfo.gpu`)."""
    info = method_info(backend.learner.method)
    if info.gpu is None:
        raise ValueError(f"method {info.name!r} has no GPU implementation: use device='cpu'")
    return globals()[info.gpu](backend)
