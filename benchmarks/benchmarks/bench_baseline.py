"""The speed-up of ``OnlineLearner.step`` over the plain-NumPy implementation of the same maths
(:mod:`_plain_numpy`: vanilla RNN, batch 1, row-scaled Jacobians) — plain µs ÷ oknumba µs per
whole step, both measured in this process with interleaved samples, threads pinned for both."""
import statistics

import numpy as np

from ._common import N_IN, N_OUT, THREADS

HIDDEN = [32, 64, 128, 256]
METHODS = ["uoro", "kf", "rtrl"]
#: seconds of steps per timing sample (each side)
SAMPLE_SECONDS = 0.1


def make_pair(method, n, dtype, threads, plain_cls):
    """``(ours, plain)``: callables doing one step each of the same model on a pool of one-hot
    inputs, already warmed up (compiled)."""
    import oknumba

    model = oknumba.RNN("vanilla", N_IN, n, N_OUT, seed=0, dtype=dtype)
    learner = oknumba.OnlineLearner(model, method, batch=1, seed=0, threads=threads)
    base = plain_cls(model.params["W"], model.params["V"], N_IN, method)
    rng = np.random.default_rng(0)
    eye = np.eye(N_IN, dtype=dtype)
    xs = eye[rng.integers(0, N_IN, size=64)]
    ys = rng.integers(0, N_OUT, size=64)
    xs_b = np.ascontiguousarray(xs[:, None, :])
    ys_b = ys[:, None].astype(np.int64)
    state = {"i": 0, "j": 0}

    def ours():
        i = state["i"] = (state["i"] + 1) % 64
        learner.step(xs_b[i], ys_b[i])

    def plain():
        j = state["j"] = (state["j"] + 1) % 64
        base.step(xs[j], ys[j])

    for _ in range(3):
        ours()
        plain()
    return ours, plain


def interleaved_medians(a, b, samples):
    """Median µs per call of ``a`` and of ``b`` over ``samples`` samples each, taken in turn
    (a, b, a, b, …) so that a change in the machine's load hits both alike — the profiler's
    own sampling (:func:`oknumba.profile.timing.interleaved_samples`)."""
    from oknumba.profile.timing import interleaved_samples, reps_for

    ta, tb = interleaved_samples([(fn, reps_for(fn, SAMPLE_SECONDS)) for fn in (a, b)], samples)
    return statistics.median(ta), statistics.median(tb)


class TrackSpeedupOverPlainNumpy:
    """plain-NumPy µs ÷ oknumba µs per step (batch 1, float64; targets at n = 32: uoro ≥ 10,
    kf ≥ 5; ≥ 1 everywhere)."""

    params = [METHODS, HIDDEN]
    param_names = ["method", "hidden"]
    unit = "speed-up"
    timeout = 600

    def track_speedup(self, method, hidden):
        from oknumba._threads import pinned_threads

        from ._plain_numpy import PlainLearner

        with pinned_threads(THREADS):
            ours, plain = make_pair(method, hidden, "float64", THREADS, PlainLearner)
            t_ours, t_plain = interleaved_medians(ours, plain, 5)
        return t_plain / t_ours
