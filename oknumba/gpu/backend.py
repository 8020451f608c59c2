"""GPU execution of :meth:`oknumba.OnlineLearner.step` (numba.cuda).

:class:`GPUBackend` takes a constructed :class:`~oknumba.OnlineLearner`, copies its
parameters, gradients, optimizer moments, state, estimator arrays (or TBPTT window) and
per-stream random states to the device, and from then on keeps them resident: each
:meth:`GPUBackend.step` sends ``x_t``, ``y_t`` (and the reset mask when one is set) and
receives the B per-stream losses plus the two gradient norms in one small copy. The step
follows the CPU order exactly:

1. zero the state and the estimator arrays of the streams flagged in ``reset``;
2. the estimator's work on the previous step's arrays (Kronecker methods: the deferred
   recombination ``A_i = Σ_j X[j, i] W_j``, :mod:`oknumba.gpu.kronecker`);
3. cell forward, ``ĥ_k``, ``D_kᵀ`` and ``H`` (:mod:`oknumba.gpu.cells`, one block per stream);
4. readout: loss, ``δ = ∂L/∂s``, ``∂L/∂V`` (:mod:`oknumba.gpu.readout`);
5. the estimator update and its gradient (:mod:`oknumba.gpu.estimators`);
6. every ``update_every`` steps (TBPTT: its backward pass first): scale by 1/B, clip each
   parameter's gradient, Adam or SGD, zero the gradients (:mod:`oknumba.gpu.optim`).

**Host copies are never stale.** While the run lives on the device, the learner's host
arrays (``model.params``, ``learner.state``, ``grads``, ``optimizer``, ``estimator``) are
brought back on first access after a step (:meth:`GPUBackend.host_read`, called by those
properties, by ``state_dict`` and so by checkpoints and the CLI's ``params.npz``); after such
a read the host is the reference again and the next step uploads it first, so a value written
into ``model.params`` between steps is not lost either.
"""
import numpy as np

from . import SUPPORTED_CELLS, require_gpu

# numba.cuda and the kernel modules are imported on first use, after require_gpu() has checked
# that numba-cuda is installed (so a missing extra gives the instructions, not an ImportError)
cuda = cells = estimators = optim = readout = TPB = blocks = None


def _load():
    global cuda, cells, estimators, optim, readout, TPB, blocks
    if cuda is None:
        from numba import cuda as _cuda

        from . import _device, cells as _cells, estimators as _estimators, optim as _optim
        from . import readout as _readout
        cells, estimators, optim, readout = _cells, _estimators, _optim, _readout
        TPB, blocks = _device.TPB, _device.blocks
        cuda = _cuda


class GPUBackend:
    """Device-resident twin of an :class:`~oknumba.OnlineLearner` (every method; the cells
    :data:`~oknumba.gpu.SUPPORTED_CELLS`).

    Parameters
    ----------
    learner : oknumba.OnlineLearner
        Its host arrays are the initial values; :meth:`to_host` writes back into them.

    Raises
    ------
    RuntimeError
        Without a usable GPU (or the simulator), saying how to get one.
    NotImplementedError
        For a cell without GPU kernels (a user-registered one).
    """

    def __init__(self, learner):
        require_gpu()
        _load()
        cell = learner.model.cell
        if cell.name not in SUPPORTED_CELLS:
            raise NotImplementedError(f"device='gpu' has kernels for the cells {list(SUPPORTED_CELLS)},"
                                      f" not {cell.name!r} (use device='cpu')")
        self.learner = learner
        self.method = learner.method
        self.cell = cell
        self.dtype = learner.model.dtype
        self.B = B = learner.batch
        self.n_out = learner.model.n_out
        self._cell_kernel = cells.get(self.dtype).step[cell.name]
        self._readout = readout.get(self.dtype)
        self._optim = optim.get(self.dtype)
        z = lambda *shape, dtype=self.dtype: cuda.to_device(np.zeros(shape, dtype))  # noqa: E731
        self.d_x = z(B, cell.n_in)
        self.d_y = z(B, dtype=np.int64)
        self.d_mask = z(B, dtype=np.uint8)
        self.d_aux = z(B, cell.P)
        self.d_coef = cuda.to_device(np.zeros(cells.scratch_shapes(cell, B)[0], self.dtype))
        self.d_g = z(B, self.n_out)
        self.d_scalars = z(B + 2, dtype=np.float64)   # per-stream losses, ‖g_W‖, ‖g_V‖
        self.h_scalars = np.zeros(B + 2, np.float64)
        self.est = estimators.make(self)
        #: the device holds values the host copies do not have yet
        self.host_stale = False
        #: the host copies were handed out (and may have been changed) since the last upload
        self.device_stale = False
        self.from_host()

    # ------------------------------------------------------------------------------
    def from_host(self):
        """Upload the learner's host state (parameters, gradients, optimizer moments, state,
        estimator arrays and random states) — at construction and after ``load_state_dict``."""
        host = self.learner.host_copies()
        p, g = host.params, host.grads
        self.d_W = cuda.to_device(p["W"])
        self.d_V = cuda.to_device(p["V"])
        self.d_gW = cuda.to_device(g["W"])
        self.d_gV = cuda.to_device(g["V"])
        opt = host.optimizer
        if opt.name == "adam":
            self.d_mW, self.d_vW = cuda.to_device(opt.m["W"]), cuda.to_device(opt.v["W"])
            self.d_mV, self.d_vV = cuda.to_device(opt.m["V"]), cuda.to_device(opt.v["V"])
        self.d_s_prev = cuda.to_device(np.ascontiguousarray(host.state))
        self.d_s = cuda.to_device(np.zeros_like(host.state))
        self.est.upload()
        self.host_stale = self.device_stale = False

    def to_host(self):
        """Copy the device state back into the learner's host objects (``model.params``,
        ``grads``, optimizer moments, ``state``, estimator arrays and random states)."""
        host = self.learner.host_copies()
        p, g = host.params, host.grads
        self.d_W.copy_to_host(p["W"])
        self.d_V.copy_to_host(p["V"])
        self.d_gW.copy_to_host(g["W"])
        self.d_gV.copy_to_host(g["V"])
        opt = host.optimizer
        if opt.name == "adam":
            self.d_mW.copy_to_host(opt.m["W"])
            self.d_vW.copy_to_host(opt.v["W"])
            self.d_mV.copy_to_host(opt.m["V"])
            self.d_vV.copy_to_host(opt.v["V"])
        host.state[...] = self.d_s_prev.copy_to_host()
        self.est.download()
        self.host_stale = False

    def host_read(self):
        """Make the host copies current before they are read (and let the next step upload
        them, since the reader may change them)."""
        if self.host_stale:
            self.to_host()
        self.device_stale = True

    # ------------------------------------------------------------------------------
    def step(self, x, y, reset, n_valid):
        """One online step on the device, same semantics and order as the CPU
        :meth:`oknumba.OnlineLearner.step` (inputs already validated by the learner); returns
        ``(sum of the per-stream losses, update done, gradient norms or None)``."""
        if self.device_stale:
            self.from_host()
        ln, B, est = self.learner, self.B, self.est
        self.d_x.copy_to_device(x)
        self.d_y.copy_to_device(y)
        if reset is not None and reset.any():
            self.d_mask.copy_to_device(reset.astype(np.uint8))
            est.zero(self.d_s_prev, self.d_mask)
            est.reset(self.d_mask)
        est.before_cell()
        rows, Dt, H, delta = est.cell_buffers(ln.steps)
        self._cell_kernel[B, TPB](self.d_W, self.d_x, self.d_s_prev, self.d_s, rows, self.d_aux,
                                  Dt, H, self.d_coef, est.needs_H)
        r = self._readout
        r.readout[B, TPB](self.d_V, self.d_s, self.d_y, self.cell.n, self.d_g, delta, self.d_scalars)
        n_dv = self.d_gV.size
        r.readout_dV[blocks(n_dv), TPB](self.d_s, self.d_y, self.d_g, self.cell.n, self.d_gV)
        est.after_readout()
        self.d_s_prev, self.d_s = self.d_s, self.d_s_prev
        update = (ln.steps + 1) % ln.update_every == 0
        if update:
            est.before_update()
            self._update()
        self.d_scalars.copy_to_host(self.h_scalars)
        self.host_stale = True
        loss = float(np.sum(self.h_scalars[:B]))
        norms = (float(self.h_scalars[B]), float(self.h_scalars[B + 1])) if update else None
        return loss, update, norms

    # ------------------------------------------------------------------------------
    def _update(self):
        ln, k, B = self.learner, self._optim, self.B
        opt = ln.host_copies().optimizer
        nW, nV = self.d_W.size, self.d_V.size
        W, V = self.d_W.reshape(nW), self.d_V.reshape(nV)
        gW, gV = self.d_gW.reshape(nW), self.d_gV.reshape(nV)
        scale = float(ln.grad_scale)
        max_norm = -1.0 if ln.clip is None else float(ln.clip)
        k.grad_norms[1, TPB](gW, gV, scale, self.d_scalars, B)
        if opt.name == "adam":
            lr_t, eps_t = opt.count_update()
            args = (scale, max_norm, lr_t, float(opt.beta1), float(opt.beta2), eps_t)
            k.adam[blocks(nW), TPB](W, gW, self.d_mW.reshape(nW), self.d_vW.reshape(nW),
                                    self.d_scalars, B, *args)
            k.adam[blocks(nV), TPB](V, gV, self.d_mV.reshape(nV), self.d_vV.reshape(nV),
                                    self.d_scalars, B + 1, *args)
        else:
            lr, = opt.count_update()
            k.sgd[blocks(nW), TPB](W, gW, self.d_scalars, B, scale, max_norm, lr)
            k.sgd[blocks(nV), TPB](V, gV, self.d_scalars, B + 1, scale, max_norm, lr)

    def __repr__(self):
        return f"GPUBackend(method={self.method!r}, cell={self.cell.name!r}, dtype={self.dtype.name})"
