"""Online training: one parameter update per step (or every ``update_every`` steps).

Each call of :meth:`OnlineLearner.step` on a batch of B independent streams:

1. zeroes the state (and the influence estimate) of the streams flagged in ``reset``;
2. runs the cell forward and its Jacobians ``ĥ_k``, ``D_k``, ``H``;
3. advances the influence estimate ``G̃_t ≈ H_t G̃_{t-1} + F_t`` (RTRL family) or stores the
   step in the truncation window (TBPTT);
4. adds the gradient of ``(1/B) Σ_b L_t,b``: ``δ_tᵀ G̃_t`` for W and the direct readout
   gradient for V;
5. every ``update_every`` steps clips each parameter's gradient to norm ``clip`` and applies
   the optimizer (Adam with the paper's defaults, lr = 10^-3.5, by default).

The influence is not corrected for the parameter change (the standard online-RTRL
approximation). TBPTT with truncation k updates every k steps with the gradient of the last
k steps' losses backpropagated within that window — the paper's baseline.
"""
import math
import numbers
import types

import numpy as np

from ._jit import kernel
from ._threads import StepThreads, pinned_threads
from .fused import FusedStep, all_finite
from ._validate import check_positive_int
from .estimators import make_estimator
from .stack import make_stack_run
from .methods import method_names
from .model import RNN
from .readouts import readout_backward, readout_outputs
from .optim import make_optimizer

#: every registered method (:mod:`oknumba.methods`)
LEARNER_METHODS = tuple(method_names())


def _host_view(name, doc):
    """A read-only property returning ``self.<name>``, after a GPU run has brought its
    values back (:meth:`oknumba.gpu.GPUBackend.host_read`)."""
    def get(self):
        if self._gpu is not None:
            self._gpu.host_read()
        return getattr(self, name)

    return property(get, doc=doc)


def _kernel_layout(a):
    """Whether ``a`` is a writable, aligned C-contiguous array (the layout the fused step is
    compiled for; others are copied once by the checks)."""
    return a.flags.carray           # C-contiguous, aligned and writeable


class OnlineLearner:
    """Online learner for an :class:`oknumba.RNN`.

    Parameters
    ----------
    model : oknumba.RNN
        Trained in place (``model.params`` change after each update).
    method : str
        ``"ok"``, ``"ok-truncated"``, ``"kf"``, ``"kf-avg"``, ``"uoro"``, ``"rtrl"`` or ``"tbptt"``.
    rank : int, optional
        r for ``"ok"``, ``"ok-truncated"`` and ``"kf-avg"``.
    batch : int
        Number of independent streams B.
    optimizer : {"adam", "sgd"}
    lr : float
    clip : float or None
        Per-parameter gradient norm bound (None: no clipping).
    update_every : int
        Steps between optimizer updates (1 = fully online). For TBPTT it equals the truncation.
    truncation : int, optional
        Window k of ``"tbptt"``.
    seed : int
        Seed of the estimator's random signs.
    threads : int or None
        BLAS and Numba threads of each :meth:`step` (default 1: fastest for small and
        mid-sized models, and immune to other processes holding the cores; give 2 or more
        for large models on an idle machine). Each step sets every loaded BLAS library to
        ``threads`` and puts the previous count back (about 1 µs per library), so numpy code
        between steps is unaffected — except scipy's own bundled BLAS (used by Numba's
        kernels and ``scipy.linalg``, never by numpy), which stays at ``threads``: raising it
        after every step wakes its pool and slowed steps 1.1–1.2× on busy cores. The
        estimators' parallel kernels run on ``threads`` Numba threads. :meth:`pinned` pins
        both for a whole block. None leaves the thread settings alone (the BLAS pools then
        use every core, which can be 10–50× slower on busy cores).
    device : {"cpu", "gpu"}
        ``"gpu"`` keeps parameters, states and influence factors resident on a CUDA GPU
        (every method; needs ``pip install "oknumba[cuda]"`` and a driver, or
        ``NUMBA_ENABLE_CUDASIM=1`` for the simulator). Same seeds draw the same signs as on
        the CPU. Reading ``model.params``, ``state``, ``grads``, ``optimizer``, ``estimator``
        or :meth:`state_dict` brings the device's values back first (they are never stale),
        and values written into them are uploaded before the next step.
    """

    def __init__(self, model, method, rank=None, batch=1, optimizer="adam", lr=10 ** -3.5,
                 clip=1.0, update_every=1, truncation=None, seed=0, threads=1, device="cpu"):
        if not isinstance(model, RNN):
            raise TypeError(f"model must be an oknumba.RNN, got {type(model).__name__}")
        if method not in LEARNER_METHODS:
            raise ValueError(f"method must be one of {list(LEARNER_METHODS)}, got {method!r}")
        model.check_params()
        self.model = model
        self.method = method
        self.batch = check_positive_int(batch, "batch")
        if clip is not None and (isinstance(clip, bool) or not (isinstance(clip, numbers.Real) and clip > 0)):
            raise ValueError(f"clip must be a positive number or None, got {clip!r}")
        self.clip = clip
        if threads is not None:
            check_positive_int(threads, "threads")
        self.threads = threads
        cell, dt, B = model.cell, model.dtype, self.batch
        self._stacked = stacked = model.layers > 1
        make = make_stack_run if stacked else make_estimator
        self._estimator = est = make(method, cell, B, dt, rank=rank, seed=seed, truncation=truncation)
        # checked by the estimator
        self.truncation = getattr(est.estimators[0] if stacked else est, "truncation", None)
        est.threads = threads
        self._step_threads = None if threads is None else StepThreads(threads)
        #: the pin around a fused step (:mod:`oknumba.fused`: compiled code only)
        self._kernel_threads = None if threads is None else self._step_threads.for_kernels()
        if est.update_interval is not None:       # the method fixes the update period
            if update_every not in (1, est.update_interval):
                raise ValueError(f"for {method!r} the update interval is {est.update_interval}"
                                 f" (its truncation); leave update_every=1")
            self.update_every = est.update_interval
        else:
            self.update_every = check_positive_int(update_every, "update_every")
        self.rank = rank
        self.seed = seed
        self._optimizer = make_optimizer(optimizer, model.params, lr)
        # of the estimators only UORO does without H (TBPTT keeps its own in its window)
        self._buf = None if stacked else cell.buffers(B, dt, with_H=est.needs_H and est.has_influence)
        self._state = model.zero_state(B)
        self._s_new = model.zero_state(B)
        self._delta = np.zeros((B, cell.S), dt)
        self._out = np.zeros((B, model.n_out), dt)     # readout outputs of the current step
        self._g = np.zeros((B, model.n_out), dt)       # ∂L/∂out of the built-in loss
        self._pending = None                           # what forward() leaves for backward()
        self._fused = None                             # the fused step (None: not built, False: none)
        self._grads = {k: np.zeros_like(p) for k, p in model.params.items()}
        self._grad_scale = dt.type(1.0 / B)
        self._kernel_params = self._kernel_snapshot(*model.check_params())   # what the kernels were checked for
        self.steps = 0
        self.updates = 0
        #: ``(‖g_W‖, ‖g_V‖)`` before clipping at the last update (None before the first)
        self.last_grad_norms = None
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        self.device, self._gpu = device, None
        if device == "gpu" and stacked:
            raise ValueError(f"device='gpu' runs one recurrent layer; train the {model.layers}-layer stack"
                             " with device='cpu'")
        if device == "gpu" and model.cell.depth != 1:
            raise ValueError("device='gpu' runs depth-1 cells only; train a deep-transition cell with"
                             " device='cpu'")
        if device == "gpu" and model.readout.name != "softmax":
            raise ValueError(f"device='gpu' supports the softmax readout only; train the"
                             f" {model.readout.name!r} readout with device='cpu'")
        if device == "gpu":
            from .gpu import GPUBackend

            self._gpu = GPUBackend(self)
            model._device = self._gpu

    # host views: with device="gpu" every read brings the device's values back first
    state = _host_view("_state", "The current state (B, S).")
    grads = _host_view("_grads", "Gradients accumulated since the last update, keyed like ``model.params``.")
    optimizer = _host_view("_optimizer", "The optimizer (its moments and step count).")
    estimator = _host_view("_estimator", "The method's estimator (:mod:`oknumba.estimators`; for"
                                         " ``\"tbptt\"`` its window).")

    def host_copies(self):
        """The host objects themselves — ``params``, ``grads``, ``optimizer``, ``state``,
        ``estimator`` — *without* bringing a device's values back first: for device backends,
        which fill them (``to_host``) and read them (``from_host``)."""
        return types.SimpleNamespace(params=self.model._params, grads=self._grads,
                                     optimizer=self._optimizer, state=self._state,
                                     estimator=self._estimator)

    @property
    def grad_scale(self):
        """The factor ``1/B`` applied to the summed per-stream gradients before an update."""
        return self._grad_scale

    def sync(self):
        """Bring a GPU-resident run's values into the host arrays now (reads do it by
        themselves); a no-op on the CPU."""
        if self._gpu is not None:
            self._gpu.host_read()

    # ------------------------------------------------------------------------------
    def pinned(self):
        """Context manager pinning Numba and BLAS threads to ``threads`` (restored after)."""
        return pinned_threads(self.threads)

    def _check_step_input(self, x, reset, values=True):
        """Cheap attribute checks here, value checks (unless ``values`` is false: the fused
        step makes them) in a kernel. Returns a writable, aligned C-contiguous array of the
        model's dtype (what the fused step is compiled for)."""
        B, m = self.batch, self.model
        if not (isinstance(x, np.ndarray) and x.dtype == m.dtype and _kernel_layout(x)):
            x = np.asarray(x)
            if x.dtype.kind != "f":
                raise TypeError(f"x_t must be a float array of shape ({B}, {m.n_in}) (one-hot for symbols),"
                                f" got dtype {x.dtype}")
            x = np.require(x, m.dtype, ("C", "W", "A"))
        if x.shape != (B, m.n_in):
            raise ValueError(f"x_t must have shape ({B}, {m.n_in}), got {x.shape}")
        if reset is not None:
            reset = np.asarray(reset)
            if reset.shape != (B,) or reset.dtype != np.bool_:
                raise ValueError(f"reset must be a boolean array of shape ({B},), got {reset.dtype} {reset.shape}")
        if values and not all_finite(x):
            raise ValueError("x_t contains NaN or inf")
        return x, reset

    def _check_step_targets(self, y, values=True):
        """The step's targets, checked (in the layout of :meth:`_check_step_input`), and the
        number of streams with a target (None when not ``values``: the fused step checks the
        values and counts)."""
        B, m = self.batch, self.model
        if m.readout.name == "softmax":
            if not (isinstance(y, np.ndarray) and y.dtype == np.int64 and _kernel_layout(y)):
                y = np.asarray(y)
                if y.dtype.kind not in "iu":
                    raise TypeError(f"y_t must be an integer array of shape ({B},) (class ids, -1 = no"
                                    f" target), got dtype {y.dtype}")
                if y.dtype.kind == "u" and y.size and y.max() >= m.n_out:   # before int64 wraps it
                    raise ValueError(f"y_t must hold class ids in [0, {m.n_out - 1}] or -1, got {y}")
                y = np.require(y, np.int64, ("C", "W", "A"))
            if y.shape != (B,):
                raise ValueError(f"y_t must have shape ({B},), got {y.shape}")
            if not values:
                return y, None
            n_valid = m.readout.target_count_kernel(y, m.n_out)
            if n_valid < 0:
                raise ValueError(f"y_t must hold class ids in [0, {m.n_out - 1}] or -1, got {y}")
            return y, n_valid
        y = m.readout.check_targets(y, "y_t", (B,), m.n_out, m.dtype)
        if not _kernel_layout(y):
            y = np.require(y, m.dtype, ("C", "W", "A"))
        return y, m.readout.count(y) if values else None

    def step(self, x_t, y_t, reset=None):
        """One online step on all streams with the readout's built-in loss; returns its mean
        over the streams with a target (softmax: cross-entropy in nats, ``y ≥ 0``; linear:
        ``½ Σ (out − y)²`` over the entries that are not NaN).

        Exactly :meth:`forward`, the built-in loss's gradient ``g = ∂L/∂out``
        (:meth:`oknumba.readouts.Readout.loss_grad`), then :meth:`backward` ``(g)``."""
        # a current fused step checks the values itself, before it changes anything (a reset
        # changes the state before the kernel: then they are checked here)
        plan = self._fused
        checked_here = not (plan and reset is None and plan.serves(self.model._params))
        x, reset = self._check_step_input(x_t, reset, checked_here)
        y, n_valid = self._check_step_targets(y_t, checked_here)
        if self._gpu is not None:
            loss, update, norms = self._gpu.step(x, y, reset, n_valid)
            self.steps += 1
            if update:
                self.last_grad_norms = norms
                self.updates += 1
            return self._finish(loss, n_valid)
        pin = self._kernel_threads if self._fused else self._step_threads
        old_threads = pin.pin() if pin is not None else None
        try:
            fused = self._fused_step(x, y, reset)
            if fused is None:             # (so no current fused step: checked above)
                out = self._forward(x, reset)
                loss = self.model.readout.loss_grad(out, y, self._g)
                self._backward(self._g)
            else:
                n_kernel, loss = fused
                if n_kernel < 0:              # nothing changed: the checks here say what is wrong
                    self._check_step_input(x, None)
                    self._check_step_targets(y)
                    raise AssertionError("the fused step rejected inputs that the checks accept")
                n_valid = n_kernel
        finally:
            if old_threads is not None:
                pin.restore(old_threads)
        return self._finish(loss, n_valid)

    def _fused_step(self, x, y, reset):
        """The step's kernels in one call (:mod:`oknumba.fused`; bit-identical to
        :meth:`_forward`, the loss and :meth:`_backward`); returns ``(n_valid, loss)`` with
        ``n_valid = −1`` for inputs that fail the value checks (then nothing has changed), or
        None where this learner has no fused step."""
        plan = self._fused
        if plan is False or self._stacked:
            return None
        m, est = self.model, self._estimator
        W, V = m._params["W"], m._params["V"]
        kW, kV, shape_W, shape_V = self._kernel_params
        if W is not kW or V is not kV or W.shape != shape_W or V.shape != shape_V:
            self._adopt_params()
        if plan is None or not plan.serves(m._params):
            plan = self._fused = FusedStep.build(self, x, y) or False
            if plan is False:
                return None
        s_prev, s = self._state, self._s_new
        if reset is not None and reset.any():
            s_prev[reset] = 0.0
            est.reset(reset)
        due = (self.steps + 1) % self.update_every == 0
        opt = self._optimizer
        scalars = opt.fused_scalars() if due else plan.idle_scalars
        try:
            n_valid, loss, norm_W, norm_V = plan.run(
                x, y, s_prev is not plan.state0, due, opt.t + 1, float(self._grad_scale),
                -1.0 if self.clip is None else float(self.clip), scalars)
        except np.linalg.LinAlgError:
            raise est.overflow_error() from None
        if n_valid < 0:
            return n_valid, loss
        self._pending = None
        self._state, self._s_new = s, s_prev
        self.steps += 1
        if due:
            opt.t += 1                        # the update the kernel made
            self.last_grad_norms = (norm_W, norm_V)
            self.updates += 1
        return n_valid, loss

    def forward(self, x_t, reset=None):
        """The first half of a step, for a loss of one's own: advance the state on input
        ``x_t`` (B, n_in) (``reset`` (B,) bool zeroes a stream's state and influence first) and
        return the readout outputs (B, n_out) — logits for the softmax readout, values for the
        linear one (a copy). Complete the step with :meth:`backward`."""
        if self._gpu is not None:
            raise NotImplementedError("forward/backward run on the CPU; on the GPU use step(x, y)")
        if self._pending is not None:
            raise RuntimeError("forward() called twice: complete the step with backward(g) first")
        x, reset = self._check_step_input(x_t, reset)
        pin = self._step_threads
        old_threads = pin.pin() if pin is not None else None
        try:
            out = self._forward(x, reset)
        finally:
            if old_threads is not None:
                pin.restore(old_threads)
        return out.copy()

    def backward(self, g):
        """The second half of a step: ``g = ∂L/∂out`` (B, n_out) of one's loss at the outputs
        :meth:`forward` returned (zero rows for streams without a loss). Adds the readout's
        and the method's gradients (``∂L/∂V = [h, 1]ᵀ g``; ``δ = g V[:n]ᵀ`` into the influence
        estimate) and, when due, clips and applies the optimizer update."""
        if self._pending is None:
            raise RuntimeError("backward(g) needs a forward(x) first (one backward per forward)")
        m = self.model
        g = np.asarray(g)
        if g.shape != (self.batch, m.n_out) or g.dtype.kind not in "fiu":
            raise ValueError(f"g must be a real array of shape ({self.batch}, {m.n_out}) (∂L/∂out),"
                             f" got {g.dtype} {g.shape}")
        g = np.ascontiguousarray(g, m.dtype)
        if not all_finite(g):
            raise ValueError("g contains NaN or inf")
        pin = self._step_threads
        old_threads = pin.pin() if pin is not None else None
        try:
            self._backward(g)
        finally:
            if old_threads is not None:
                pin.restore(old_threads)

    def _adopt_params(self):
        """``model.params`` entries were replaced (or reshaped in place) since the last step:
        check the new arrays as at construction before any kernel reads them."""
        try:
            W, V = self.model.check_params()
        except (TypeError, ValueError) as e:
            raise type(e)(f"{e} (model.params was changed after the learner was built; keep the"
                          " shapes and dtype, or write values in place: params['W'][...] = ...)") from None
        self._kernel_params = self._kernel_snapshot(W, V)
        return W, V

    @staticmethod
    def _kernel_snapshot(W, V):
        """The arrays (and shapes) the kernels were checked for (``W`` a tuple for a stack)."""
        return (W, V, tuple(w.shape for w in W) if isinstance(W, tuple) else W.shape, V.shape)

    def _stack_forward(self, x, reset):
        m = self.model
        Ws = tuple(m._params[k] for k in m.cell.param_shapes())
        V = m._params["V"]
        kW, kV, shapes_W, shape_V = self._kernel_params
        if (V is not kV or V.shape != shape_V
                or any(a is not b or a.shape != sh for a, b, sh in zip(Ws, kW, shapes_W))):
            Ws, V = self._adopt_params()
        s_prev, s, run = self._state, self._s_new, self._estimator
        if reset is not None and reset.any():
            s_prev[reset] = 0.0
            run.reset(reset)
        run.forward(Ws, x, s_prev, s, self.steps)
        readout_outputs(V, s, m.cell.n, self._out)
        self._pending = (Ws, V, s_prev, s)
        return self._out

    def _forward(self, x, reset):
        if self._stacked:
            return self._stack_forward(x, reset)
        m, cell = self.model, self.model.cell
        W, V = m._params["W"], m._params["V"]
        kW, kV, shape_W, shape_V = self._kernel_params
        if W is not kW or V is not kV or W.shape != shape_W or V.shape != shape_V:
            W, V = self._adopt_params()
        s_prev, s = self._state, self._s_new
        est, aux = self._estimator, self._buf["aux"]
        if reset is not None and reset.any():
            s_prev[reset] = 0.0
            est.reset(reset)
        rows, D, H, delta = est.cell_buffers(self._buf, self._delta, self.steps)
        cell.step(W, x, s_prev, s, rows, aux, D, H, H.size > 0)
        readout_outputs(V, s, cell.n, self._out)
        self._pending = (W, V, s_prev, s, rows, aux, D, H, delta)
        return self._out

    def _backward(self, g):
        if self._influence_step(g):
            self._apply_update()

    def _influence_step(self, g):
        """The readout's backward and the method's step with ``g = ∂L/∂out``; advances the
        state and the step count and, when an update is due, lets the estimator complete its
        gradient (TBPTT's window). Returns whether an update is due."""
        m, est, grads = self.model, self._estimator, self._grads
        if self._stacked:
            W, V, s_prev, s = self._pending
            self._pending = None
            readout_backward(V, s, m.cell.n, g, grads["V"], self._delta)
            est.backward(W, self._delta, grads)
            dW = grads
        else:
            W, V, s_prev, s, rows, aux, D, H, delta = self._pending
            self._pending = None
            readout_backward(V, s, m.cell.n, g, grads["V"], delta)
            est.step(W, s_prev, s, rows, aux, D, H, delta, grads["W"])
            dW = grads["W"]
        self._state, self._s_new = s, s_prev
        self.steps += 1
        due = self.steps % self.update_every == 0
        if due:
            est.before_update(dW)
        return due

    def _apply_update(self):
        """Clip and apply the accumulated gradients (the optimizer zeroes them)."""
        self.last_grad_norms = self._optimizer.update(self.model._params, self._grads, self._grad_scale,
                                                      self.clip)
        self.updates += 1

    def _finish(self, loss, n_valid):
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {self.steps}; lower lr or check the inputs")
        return loss / n_valid if n_valid else 0.0

    # ------------------------------------------------------------------------------
    def config(self):
        m = self.model
        cfg = dict(cell=m.cell_name, n_in=m.n_in, n_hidden=m.n_hidden, n_out=m.n_out,
                   dtype=m.dtype.name, method=self.method, rank=self.rank, batch=self.batch,
                   optimizer=self._optimizer.name, lr=self._optimizer.lr, clip=self.clip,
                   update_every=self.update_every, truncation=self.truncation, seed=self.seed)
        if m.readout.name != "softmax":       # (absent for the defaults: earlier checkpoints match)
            cfg["readout"] = m.readout.name
        if m.layers > 1:
            cfg["layers"] = m.layers
            if list(m.cell.depth) != [1] * m.layers:
                cfg["depth"] = list(m.cell.depth)
        elif m.cell.depth != 1:
            cfg["depth"] = m.cell.depth
        return cfg

    def state_dict(self):
        """Everything needed to continue bit-identically: arrays under flat keys plus JSON-able
        scalars (random generator states included)."""
        self.sync()
        arrays = {f"params.{k}": v for k, v in self.model.params.items()}
        arrays.update({f"grads.{k}": v for k, v in self.grads.items()})
        arrays["state"] = self.state
        meta = {"steps": self.steps, "updates": self.updates, "config": self.config()}
        opt = self._optimizer.state_dict()
        meta["optimizer_t"] = opt.pop("t")
        arrays.update({f"optimizer.{k}": v for k, v in opt.items()})
        est = self._estimator.state_dict()
        arrays.update({f"estimator.{k}": v for k, v in est.items()})
        return {k: np.array(v, copy=True) for k, v in arrays.items()}, meta

    def load_state_dict(self, arrays, meta):
        if meta.get("config") != self.config():
            diff = {k: (meta.get("config", {}).get(k), v) for k, v in self.config().items()
                    if meta.get("config", {}).get(k) != v}
            raise ValueError(f"checkpoint does not match this learner; differing settings (checkpoint, now): {diff}")
        own, _ = self.state_dict()
        # the estimator checks its own arrays (it also accepts the layouts of earlier versions)
        own = {k: v for k, v in own.items() if not k.startswith("estimator.")}
        missing = sorted(set(own) - set(arrays))
        if missing:
            raise ValueError(f"checkpoint is missing arrays {missing}")
        for k, v in own.items():
            if arrays[k].shape != v.shape or arrays[k].dtype != v.dtype:
                raise ValueError(f"checkpoint array {k!r} has {arrays[k].dtype}{arrays[k].shape}, expected {v.dtype}{v.shape}")

        def put(prefix, target):
            for key in target:
                target[key][...] = arrays[f"{prefix}.{key}"]

        put("params", self.model.params)
        put("grads", self.grads)
        self._state[...] = arrays["state"]
        opt = {k[len("optimizer."):]: v for k, v in arrays.items() if k.startswith("optimizer.")}
        opt["t"] = meta["optimizer_t"]
        self._optimizer.load_state_dict(opt)
        # version-1 checkpoints kept TBPTT's window under "window."
        est = {k.split(".", 1)[1]: v for k, v in arrays.items()
               if k.startswith("estimator.") or k.startswith("window.")}
        self._estimator.load_state_dict(est)
        self.steps = int(meta["steps"])
        self.updates = int(meta["updates"])
        if self._gpu is not None:
            self._gpu.from_host()
