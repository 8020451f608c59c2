"""Where a learner step's time goes (``oknumba profile --breakdown``).

:func:`timed_step` runs :meth:`oknumba.OnlineLearner.step`'s own phases in the step's order
with a clock read between them (a test checks that it trains bit-identically; the seven
``perf_counter_ns`` reads cost about 0.4 µs):

* ``cell`` — the learner's forward half: the cell's forward step, immediate factors D and
  state Jacobian H (for a stack: every layer's, and the downstream D and H blocks,
  :mod:`oknumba.stack`), and the readout's outputs;
* ``readout`` — the built-in loss and its gradient ∂L/∂out;
* ``estimator`` — the readout's backward (∂L/∂V and δ = ∂L/∂s) and the method's influence
  update and gradient (TBPTT: its window's backpropagation before an update); of it,
  ``products`` is the bare-product time (``numpy.matmul`` on the method's dominant shapes,
  timed apart: the physical limit) and ``estimator other`` the rest (Gram, reduction,
  recombination, new terms, gradient projections — one fused pass for the Kronecker methods);
* ``optimizer`` — clipping and the Adam/SGD update;
* ``glue`` — everything else: input checks, thread pinning, Python between the calls.

The phases are the separate calls of ``forward``/``backward``; where the learner's ``step``
runs them as one kernel (:mod:`oknumba.fused`) the step's own time (``µs/step``) is that of
the fused call, and the separate calls' dispatch and glue is what fusing saves.

Phases are medians over the samples of their mean per step, so they can sum to a little
more or less than the step's median.
"""
import statistics
import time

#: the phases of :func:`phase_times`, in order
PHASES = ("cell", "readout", "estimator", "products", "estimator other", "optimizer", "glue")
_TIMED = ("cell", "readout", "estimator", "optimizer", "glue")


def timed_step(learner, x_t, y_t, acc, clock=time.perf_counter_ns):
    """One :meth:`~oknumba.OnlineLearner.step` (no reset) made of the learner's own phases,
    adding each phase's nanoseconds to ``acc`` (a dict with the keys of the timed phases);
    returns the step's loss."""
    t0 = clock()
    x, _ = learner._check_step_input(x_t, None)
    y, n_valid = learner._check_step_targets(y_t)
    pin = learner._step_threads
    old = pin.pin() if pin is not None else None
    t1 = clock()
    out = learner._forward(x, None)
    t2 = clock()
    loss = learner.model.readout.loss_grad(out, y, learner._g)
    t3 = clock()
    due = learner._influence_step(learner._g)
    t4 = clock()
    if due:
        learner._apply_update()
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
