"""Where a learner step's time goes (``oknumba profile --breakdown``).

:func:`timed_step` is :meth:`oknumba.OnlineLearner.step` with a clock read between its
phases (the same calls in the same order on the learner's own buffers — a test checks that it
trains bit-identically — plus seven ``perf_counter_ns`` reads, about 0.4 µs):

* ``cell`` — the cell's forward step, immediate factors D and state Jacobian H (for a stack:
  every layer's, and the downstream D and H blocks, :mod:`oknumba.stack`);
* ``readout`` — the outputs, the built-in loss and its gradient, and the readout's backward
  (∂L/∂V and δ = ∂L/∂s);
* ``estimator`` — the method's influence update and gradient (TBPTT: its window's
  backpropagation before an update); of it, ``products`` is the bare-product time
  (``numpy.matmul`` on the method's dominant shapes, timed apart: the physical limit) and
  ``estimator other`` the rest (Gram, reduction, recombination, new terms, gradient
  projections — one fused pass for the Kronecker methods);
* ``optimizer`` — clipping and the Adam/SGD update;
* ``glue`` — everything else: input checks, thread pinning, Python between the calls.

Phases are medians over the samples of their mean per step, so they can sum to a little
more or less than the step's median.
"""
import statistics
import time

from ..readouts import readout_backward, readout_outputs

#: the phases of :func:`phase_times`, in order
PHASES = ("cell", "readout", "estimator", "products", "estimator other", "optimizer", "glue")
_TIMED = ("cell", "readout", "estimator", "optimizer", "glue")


def timed_step(learner, x_t, y_t, acc, clock=time.perf_counter_ns):
    """One :meth:`~oknumba.OnlineLearner.step` (no reset) adding each phase's nanoseconds to
    ``acc`` (a dict with the keys of the timed phases); returns the step's loss."""
    t0 = clock()
    x, _ = learner._check_step_input(x_t, None)
    y, n_valid = learner._check_step_targets(y_t)
    pin = learner._step_threads
    old = pin.pin() if pin is not None else None
    m, est, grads = learner.model, learner._estimator, learner._grads
    V = m._params["V"]
    s_prev, s = learner._state, learner._s_new
    t1 = clock()
    if learner._stacked:
        W = tuple(m._params[k] for k in m.cell.param_shapes())
        est.forward(W, x, s_prev, s, learner.steps)
        delta = learner._delta
    else:
        W = m._params["W"]
        rows, D, H, delta = est.cell_buffers(learner._buf, learner._delta, learner.steps)
        m.cell.step(W, x, s_prev, s, rows, learner._buf["aux"], D, H, H.size > 0)
    t2 = clock()
    readout_outputs(V, s, m.cell.n, learner._out)
    loss = m.readout.loss_grad(learner._out, y, learner._g)
    readout_backward(V, s, m.cell.n, learner._g, grads["V"], delta)
    t3 = clock()
    if learner._stacked:
        est.backward(W, delta, grads)
    else:
        est.step(W, s_prev, s, rows, learner._buf["aux"], D, H, delta, grads["W"])
    learner._state, learner._s_new = s, s_prev
    learner.steps += 1
    due = learner.steps % learner.update_every == 0
    if due:
        est.before_update(grads if learner._stacked else grads["W"])
    t4 = clock()
    if due:
        learner.last_grad_norms = learner._optimizer.update(m._params, grads, learner._grad_scale,
                                                            learner.clip)
        learner.updates += 1
    t5 = clock()
    if old is not None:
        pin.restore(old)
    loss = learner._finish(loss, n_valid)
    t6 = clock()
    acc["cell"] += t2 - t1
    acc["readout"] += t3 - t2
    acc["estimator"] += t4 - t3
    acc["optimizer"] += t5 - t4
    acc["glue"] += (t1 - t0) + (t6 - t5)
    return loss


def phase_times(learner, xs, ys, reps, samples, step_us, bare_us=None):
    """Median µs per step of each phase in :data:`PHASES` over ``samples`` blocks of ``reps``
    :func:`timed_step` calls cycling through ``xs`` (N, B, n_in) / ``ys``; ``products`` and
    ``estimator other`` are None without a bare-product time ``bare_us``. ``step_us`` (the
    plain step's median) is kept beside them as ``step``."""
    if learner._gpu is not None:
        raise ValueError("--breakdown times the CPU step's phases; profile the GPU without it")
    per = {k: [] for k in _TIMED}
    i = 0
    for _ in range(samples):
        acc = dict.fromkeys(_TIMED, 0)
        for _ in range(reps):
            timed_step(learner, xs[i % len(xs)], ys[i % len(ys)], acc)
            i += 1
        for k in _TIMED:
            per[k].append(acc[k] / 1e3 / reps)
    out = {k: statistics.median(v) for k, v in per.items()}
    out["products"] = bare_us
    out["estimator other"] = None if bare_us is None else out["estimator"] - bare_us
    res = {k: out[k] for k in PHASES}
    res["step"] = step_us
    return res


def format_breakdown(results):
    """The breakdown table: per method and n, each phase's µs and share of the timed step."""
    rows = [r for r in results if r.get("phases")]
    if not rows:
        return []
    head = f"{'method':<16}{'n':>6}{'timed µs':>10}" + "".join(f"{p:>17}" for p in PHASES)
    lines = ["", "where the step's time goes (µs per step and % of the timed step, --breakdown;"
                 " products = the bare products, part of estimator):", head]
    for r in rows:
        ph = r["phases"]
        total = sum(ph[k] for k in _TIMED)
        cells = [f"{'-':>17}" if ph[p] is None else f"{ph[p]:>10.1f} {100 * ph[p] / total:>5.0f}%"
                 for p in PHASES]
        lines.append(f"{r['method']:<16}{r['n']:>6}{total:>10.1f}" + "".join(cells))
    return lines
