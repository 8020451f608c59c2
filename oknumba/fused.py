"""One kernel per learner step: the whole :meth:`oknumba.OnlineLearner.step` in a single call.

A step of a small model is a dozen kernel calls of a few microseconds each (cell forward and
Jacobians, readout outputs, loss gradient, readout backward, the method's influence update and
gradient, the optimizer), and each call costs 0.3–1 µs of Numba dispatch plus the Python
between them — at n = 32 that was half of a UORO step. :func:`learner_step` makes the very
same calls, in the same order, from inside one compiled kernel, so it gives bit-identical
results (a test compares it with the separate calls of ``forward``/``backward``).

Numba cannot take a kernel as an argument of a cached kernel, so the kernels are chosen by
number: :func:`by_id` ``(table, i, *args)`` calls the ``i``-th kernel of a table at compile
time (``table`` and ``i`` are literals of the compiled signature). The tables are built from
the registries — cells (:data:`oknumba.cells.CELLS`, each cell's ``kernels`` and
``variant_kernels``), readouts (``loss_grad_kernel``), methods (the estimator's
``fused_step_kernel``) and optimizers (``fused_update_kernel``) — and hold only what the
package itself defines, in registration order: the numbers, and so the cached machine code,
are the same in every process. A cell, readout, method or optimizer registered from outside
the package (or one without a fused kernel), a subclass defined outside it, or an instance
whose method was replaced (checked when the step is built, at the first step and after the
parameters are replaced) simply runs the separate calls.

The arrays that the step reads and writes in place (parameters, buffers, gradients, the
estimate, the two state arrays, the optimizer's moments) are bound once into a :class:`BoundArrays` struct when the step is built: a call
then unboxes that one object and the step's inputs, not two dozen arrays (each array argument
costs about 50 ns of unboxing per call).

``OKNUMBA_FUSED=0`` turns the fused step off (for comparisons).
"""
import functools
import os

import numba
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.experimental import structref
from numba.extending import overload

from ._jit import kernel
from .readouts import readout_backward, readout_outputs

ENABLED = os.environ.get("OKNUMBA_FUSED", "1") != "0"
_PACKAGE = __name__.rsplit(".", 1)[0]


def _ours(obj):
    return getattr(obj, "__module__", "").split(".")[0] == _PACKAGE


def _replaced_on_instance(obj):
    """Whether a method of ``obj``'s class has been replaced on the instance itself (a wrapper
    that records or changes what the method does, for example): the fused kernels would skip it."""
    cls = type(obj)
    return any(callable(v) and callable(getattr(cls, k, None))
               for k, v in getattr(obj, "__dict__", {}).items())


def _cell_kernel_sets():
    from .cells import CELLS

    sets = []
    for cls in CELLS.values():
        if _ours(cls):
            for ks in (cls.kernels, *cls.variant_kernels):
                if ks not in sets:
                    sets.append(ks)
    return sets


def _unique(items):
    out = []
    for f in items:
        if f is not None and f not in out:
            out.append(f)
    return out


def _readout_kernels(attr):
    from .readouts import READOUTS

    return _unique(getattr(r, attr, None) for r in READOUTS.values() if _ours(type(r)))


def _estimator_kernels():
    from .methods import METHODS

    return _unique(getattr(i.estimator, "fused_step_kernel", None) for i in METHODS.values()
                   if i.estimator is not None and _ours(i.estimator))


def _optimizer_kernels():
    from .optim import OPTIMIZERS

    return _unique(getattr(c, "fused_update_kernel", None) for c in OPTIMIZERS.values() if _ours(c))


#: table name -> function returning its kernels, in a fixed order
TABLES = {
    "cell.forward": lambda: [ks.forward for ks in _cell_kernel_sets()],
    "cell.fill_D": lambda: [ks.fill_D for ks in _cell_kernel_sets()],
    "cell.fill_H": lambda: [ks.fill_H for ks in _cell_kernel_sets()],
    "cell.jvp": lambda: [ks.jvp for ks in _cell_kernel_sets()],
    "readout.loss_grad": lambda: _readout_kernels("loss_grad_kernel"),
    "readout.count": lambda: _readout_kernels("target_count_kernel"),
    "estimator.step": _estimator_kernels,
    "optimizer.update": _optimizer_kernels,
}


def kernel_id(table, fn):
    """The number of kernel ``fn`` in ``table`` (for :func:`by_id`), None if not there."""
    kernels = TABLES[table]()
    return kernels.index(fn) if fn in kernels else None


def by_id(table, i, *args):
    """``TABLES[table]()[i](*args)``, resolved when the calling kernel is compiled (``table``
    a string constant, ``i`` an integer literal of the compiled signature). Jitted code only."""
    raise TypeError("by_id is only callable from jitted code")


@overload(by_id)
def _by_id(table, i, *args):
    if not isinstance(table, types.StringLiteral) or not isinstance(i, types.IntegerLiteral):
        raise TypingError(f"by_id needs a constant table name and an integer literal, got {table}, {i}")
    f = TABLES[table.literal_value]()[i.literal_value]

    def impl(table, i, *args):
        return f(*args)

    return impl


@kernel
def all_finite(x):
    """Whether every entry of ``x`` is finite (not NaN or ±inf)."""
    for v in x.ravel():
        if not np.isfinite(v):
            return False
    return True


@kernel
def learner_step(cell_id, readout_id, count_id, method_id, optimizer_id, want_H, b, x, y, flip,
                 due, t, scale, max_norm, opt_scalars):
    """One learner step (:meth:`oknumba.OnlineLearner.step` after its type and shape checks) on
    the learner's arrays bound in ``b`` (:class:`BoundArrays`), from the state ``s_prev = b.s0``
    into ``s = b.s1`` (``flip``: the other way round; the learner swaps the two each step):
    the value checks of the inputs ``x`` (finite) and targets ``y`` (the readout's
    ``target_count_kernel``), the cell's forward step and Jacobians, ``out = [h, 1] V``, the
    readout's loss and ``g = ∂L/∂out``, ``dV += [h, 1]ᵀ g`` and ``δ = g V[:n]ᵀ``, the
    method's influence update and gradient ``dW += δᵀ G̃``, and when ``due`` the optimizer's
    update number ``t`` of the clipped (``max_norm``) gradients times ``scale`` (its arrays
    bound in ``b.opt``, its constants ``opt_scalars``). Returns ``(n_valid, loss, ‖g_W‖,
    ‖g_V‖)``: the streams with a target (norms 0 without an update), or ``n_valid = −1`` when
    ``x`` is not finite or a target is invalid — and then nothing has changed."""
    W, V, rows, aux, D, H = b.W, b.V, b.rows, b.aux, b.D, b.H
    out, g, dV, delta, dW, est = b.out, b.g, b.dV, b.delta, b.dW, b.est
    s_prev, s = (b.s1, b.s0) if flip else (b.s0, b.s1)
    if not all_finite(x):
        return -1, 0.0, 0.0, 0.0
    n_valid = by_id("readout.count", count_id, y, out.shape[1])
    if n_valid < 0:
        return -1, 0.0, 0.0, 0.0
    by_id("cell.forward", cell_id, W, x, s_prev, s, rows, aux)
    by_id("cell.fill_D", cell_id, W, s_prev, s, rows, aux, D)
    if want_H:
        by_id("cell.fill_H", cell_id, W, s_prev, s, rows, aux, H)
    n = V.shape[0] - 1
    readout_outputs(V, s, n, out)
    loss = by_id("readout.loss_grad", readout_id, out, y, g)
    readout_backward(V, s, n, g, dV, delta)
    by_id("estimator.step", method_id, cell_id, W, s_prev, s, rows, aux, D, H, delta, dW, est)
    norm_W = norm_V = 0.0
    if due:
        norm_W, norm_V = by_id("optimizer.update", optimizer_id, W, V, dW, dV, scale, max_norm, t,
                               b.opt, opt_scalars)
    return n_valid, loss, norm_W, norm_V


@structref.register
class BoundArraysType(types.StructRef):
    """The Numba type of :class:`BoundArrays` (one per combination of field types)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class BoundArrays(structref.StructRefProxy):
    """The arrays of one learner that its fused step works on in place, held by reference
    (the same memory as the learner's arrays): ``W, V`` (parameters), ``rows, aux, D, H``
    (the cell's buffers), ``out, g`` (readout outputs and ``∂L/∂out``), ``dV, delta, dW``
    (gradients and ``δ``), ``est`` (the estimator's fused-step arguments), ``s0, s1`` (the
    learner's two state arrays, which swap roles every step) and ``opt`` (the optimizer's
    arrays). Made by :func:`bind_arrays`."""


structref.define_boxing(BoundArraysType, BoundArrays)


def _new_bound(W, V, rows, aux, D, H, out, g, dV, delta, dW, est, s0, s1, opt):
    raise TypeError("_new_bound is only callable from jitted code")


@overload(_new_bound)
def _new_bound_impl(W, V, rows, aux, D, H, out, g, dV, delta, dW, est, s0, s1, opt):
    typ = BoundArraysType([("W", W), ("V", V), ("rows", rows), ("aux", aux), ("D", D), ("H", H),
                           ("out", out), ("g", g), ("dV", dV), ("delta", delta), ("dW", dW),
                           ("est", est), ("s0", s0), ("s1", s1), ("opt", opt)])

    def impl(W, V, rows, aux, D, H, out, g, dV, delta, dW, est, s0, s1, opt):
        b = structref.new(typ)
        b.W, b.V, b.rows, b.aux, b.D, b.H = W, V, rows, aux, D, H
        b.out, b.g, b.dV, b.delta, b.dW, b.est = out, g, dV, delta, dW, est
        b.s0, b.s1, b.opt = s0, s1, opt
        return b

    return impl


@kernel
def bind_arrays(W, V, rows, aux, D, H, out, g, dV, delta, dW, est, s0, s1, opt):
    """A :class:`BoundArrays` holding these arrays (by reference)."""
    return _new_bound(W, V, rows, aux, D, H, out, g, dV, delta, dW, est, s0, s1, opt)


class FusedStep:
    """A learner's compiled :func:`learner_step` (built by :meth:`build`): the compiled
    function for exactly the argument types of this learner's arrays, called without Numba's
    per-call type dispatch, with the learner's persistent arrays bound once."""

    def __init__(self, entry, ids, bound, params, state0, idle_scalars):
        self._entry, self._ids, self._bound = entry, ids, bound
        #: ``run(x, y, flip, due, t, scale, max_norm, opt_scalars)``: the compiled step with
        #: its constant leading arguments filled in (a C-level partial: no Python frame)
        self.run = functools.partial(entry, *ids, bound)
        #: the optimizer's constants for steps without an update (unused there; same types)
        self.idle_scalars = idle_scalars
        #: the parameter arrays the step was compiled and bound for
        self.params = params
        #: the learner's state array bound as ``s0`` (``flip``: it is the new state this step)
        self.state0 = state0

    @classmethod
    def build(cls, learner, x, y):
        """The fused step of a CPU single-layer ``learner``, or None when one of its parts has
        no fused kernel (then the learner makes the separate calls). ``x``, ``y``: a step's
        checked inputs and targets (their types are compiled for)."""
        if not ENABLED or learner._gpu is not None or learner._stacked:
            return None
        m, est, opt = learner.model, learner._estimator, learner._optimizer
        # a subclass from outside the package, or a method replaced on an instance, may change
        # what the kernels do: separate calls
        parts = (m.cell, m.readout, est, opt)
        if not all(_ours(type(o)) and not _replaced_on_instance(o) for o in parts):
            return None
        est_args = est.fused_step_args()
        if est_args is None:
            return None
        cell_sets = _cell_kernel_sets()
        ids = (cell_sets.index(m.cell.kernels) if m.cell.kernels in cell_sets else None,
               kernel_id("readout.loss_grad", getattr(m.readout, "loss_grad_kernel", None)),
               kernel_id("readout.count", getattr(m.readout, "target_count_kernel", None)),
               kernel_id("estimator.step", getattr(type(est), "fused_step_kernel", None)),
               kernel_id("optimizer.update", getattr(type(opt), "fused_update_kernel", None)))
        if any(i is None for i in ids):
            return None
        W, V = m._params["W"], m._params["V"]
        buf = learner._buf
        rows, D, H, delta = est.cell_buffers(buf, learner._delta, learner.steps)
        bound = bind_arrays(W, V, rows, buf["aux"], D, H, learner._out, learner._g,
                            learner._grads["V"], delta, learner._grads["W"], est_args,
                            learner._state, learner._s_new, opt.fused_arrays())
        head = (*ids, H.size > 0)
        idle = opt.fused_scalars()
        sample = (*head, bound, x, y, True, True, 1, 1.0, 1.0, idle)
        sig = tuple(types.literal(a) if k < len(head) else numba.typeof(a)
                    for k, a in enumerate(sample))
        return cls(learner_step.compile(sig), head, bound, (W, V), learner._state, idle)

    def serves(self, params):
        """Whether this step was built for the arrays ``params["W"]``, ``params["V"]``."""
        return self.params[0] is params["W"] and self.params[1] is params["V"]

    def __call__(self, x, y, flip, due, t, scale, max_norm, opt_scalars):
        """Run the step (as :attr:`run`); returns ``(n_valid, loss, ‖g_W‖, ‖g_V‖)``
        (:func:`learner_step`). ``x`` and ``y`` must have the types compiled for (the learner's
        checks make writable, aligned C-contiguous arrays of the model's dtype)."""
        return self.run(x, y, flip, due, t, scale, max_norm, opt_scalars)
