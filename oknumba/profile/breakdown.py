"""Where a learner step's time goes (``oknumba profile --breakdown``).

After the whole step is timed, each phase of :meth:`oknumba.OnlineLearner.step` is timed alone
by calling it in a loop on the learner's own buffers (same shapes, same data, same process and
threads):

* ``cell`` — the cell's forward step, immediate factors D and state Jacobian H (for a stack:
  every layer's, and the downstream D and H blocks, :mod:`oknumba.stack`);
* ``readout`` — the outputs, the built-in loss and its gradient, and the readout's backward
  (∂L/∂V and δ = ∂L/∂s);
* ``estimator`` — the method's influence update and gradient (for TBPTT its window's
  backpropagation, once per k steps, per step); of it, ``products`` is the bare-product time
  (``numpy.matmul`` on the method's dominant shapes: the physical limit) and
  ``estimator other`` the rest (Gram, reduction, recombination, new terms, gradient
  projections — one fused pass for the Kronecker methods);
* ``optimizer`` — clipping and the Adam/SGD update, per step;
* ``glue`` — the whole step minus the phases above: Python, input checks, thread pinning.

A phase timed alone runs with warm caches for its own data, so the phases can sum to a
little more or less than the step; ``glue`` absorbs the difference (it can be slightly
negative for large models, where it is noise).
"""
import statistics

import numpy as np

from ..readouts import readout_backward, readout_outputs
from .timing import _time_samples

#: the phases of :func:`phase_times`, in order
PHASES = ("cell", "readout", "estimator", "products", "estimator other", "optimizer", "glue")


def _callables(learner, x, y):
    """``{phase: fn}`` calling each phase once on the learner's buffers."""
    m = learner.model
    V = m._params["V"]
    n = m.cell.n
    grads, opt = learner._grads, learner._optimizer
    s_prev, s, delta, out, g = learner._state, learner._s_new, learner._delta, learner._out, learner._g
    est, every = learner._estimator, learner.update_every

    def readout():
        readout_outputs(V, s, n, out)
        m.readout.loss_grad(out, y, g)
        readout_backward(V, s, n, g, grads["V"], delta)

    def optimizer():
        opt.update(m._params, grads, learner.grad_scale, learner.clip)

    if learner._stacked:
        Ws = tuple(m._params[k] for k in m.cell.param_shapes())

        def cell():
            est.forward(Ws, x, s_prev, s, learner.steps)

        def estimator():
            est.backward(Ws, delta, grads)

        def window():
            est.before_update(grads)
    else:
        W = m._params["W"]
        rows, D, H, dl = est.cell_buffers(learner._buf, delta, learner.steps)
        aux = learner._buf["aux"]

        def cell():
            m.cell.step(W, x, s_prev, s, rows, aux, D, H, H.size > 0)

        def estimator():
            est.step(W, s_prev, s, rows, aux, D, H, dl, grads["W"])

        def window():
            est.before_update(grads["W"])

    return dict(cell=cell, readout=readout, estimator=estimator, window=window, optimizer=optimizer,
                every=every)


def phase_times(learner, x, y, reps, samples, step_us, bare_us=None):
    """Median µs per step of each phase in :data:`PHASES` (``products`` / ``estimator other``
    None without a bare-product time), for the learner's next input ``x``, targets ``y``;
    ``step_us``: the whole step's median. Changes the learner's state (profiling only)."""
    if learner._gpu is not None:
        raise ValueError("--breakdown times the CPU step's phases; profile the GPU without it")
    fns = _callables(learner, x, y)
    every = fns.pop("every")
    med = {}
    for name in ("cell", "readout", "estimator", "optimizer"):
        med[name] = statistics.median(_time_samples(fns[name], reps, samples))
    if every > 1:           # per-window work (TBPTT's backpropagation), per step
        med["estimator"] += statistics.median(_time_samples(fns["window"], max(1, reps // every),
                                                            samples)) / every
        med["optimizer"] /= every
    out = dict(med)
    out["products"] = bare_us
    out["estimator other"] = None if bare_us is None else med["estimator"] - bare_us
    out["glue"] = step_us - sum(med.values())
    learner._grads.update({k: np.zeros_like(v) for k, v in learner._grads.items()})
    return {k: out[k] for k in PHASES}


def format_breakdown(results):
    """The breakdown table: per method and n, each phase's µs and share of the step."""
    rows = [r for r in results if r.get("phases")]
    if not rows:
        return []
    head = f"{'method':<16}{'n':>6}{'step µs':>11}" + "".join(f"{p:>17}" for p in PHASES)
    lines = ["", "where the step's time goes (µs, % of the step; products = the bare products):", head]
    for r in rows:
        cells = []
        for p in PHASES:
            v = r["phases"][p]
            cells.append(f"{'-':>17}" if v is None else f"{v:>10.1f} {100 * v / r['us_per_step']:>5.0f}%")
        lines.append(f"{r['method']:<16}{r['n']:>6}{r['us_per_step']:>11.1f}" + "".join(cells))
    return lines
