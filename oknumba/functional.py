"""Frozen-parameter runs over a whole sequence: the functional API.

``sequence_loss`` and ``sequence_grad`` take a model, inputs ``xs`` (T,B,n_in), targets
``ys`` (T,B) (class ids, −1 = no target) and optional ``resets`` (T,B) bool that zero a
stream's state — and, for RTRL-type methods, its influence — before that step. With θ
frozen, ``Σ_t δ_tᵀ G_t`` plus the readout's direct gradient is exactly the BPTT gradient of
``Σ_t L_t`` (RTRL, Williams & Zipser 1989), which is what the tests check.
"""
import numpy as np

from ._threads import pinned_threads
from ._validate import as_float_array, as_resets, check_positive_int
from .estimators import ESTIMATORS, OFFLINE_METHODS, make_estimator
from .estimators.bptt import bptt_grad
from .readouts import readout_outputs
from .stack import make_stack_run, run_stack_estimators, stack_bptt_grad

METHODS = tuple(OFFLINE_METHODS) + tuple(ESTIMATORS)


def _check_model(model):
    from .model import RNN

    if not isinstance(model, RNN):
        raise TypeError(f"model must be an oknumba.RNN, got {type(model).__name__}")
    return model.check_params()


def _validate_inputs(model, xs, resets):
    """Inputs ``xs`` (T, B, n_in) and ``resets`` (T, B), checked and converted."""
    x = np.asarray(xs)
    if x.ndim != 3:
        raise ValueError(f"xs must have shape (T, B, n_in={model.n_in}), got {x.shape}")
    T, B = x.shape[:2]
    if T < 1 or B < 1:
        raise ValueError(f"xs must hold at least one step and one stream, got shape {x.shape}")
    return as_float_array(x, "xs", (T, B, model.n_in), model.dtype), as_resets(resets, "resets", (T, B))


def validate_sequence(model, xs, ys, resets):
    """Validate and convert ``(xs, ys, resets)``; returns contiguous arrays of the model's dtype."""
    x, r = _validate_inputs(model, xs, resets)
    y = model.readout.check_targets(ys, "ys", x.shape[:2], model.n_out, model.dtype)
    return x, y, r


def sequence_loss(model, xs, ys, resets=None):
    """Sum over steps and streams of the readout's loss (softmax: cross-entropy in nats of every
    target ``≥ 0``; linear: ``½ Σ (out − y)²`` over the entries that are not NaN)."""
    return stream_loss(model, xs, ys, resets)[0]


def stream_loss(model, xs, ys, resets=None, state=None):
    """Forward-only evaluation that can carry the state across calls.

    Returns ``(total_loss, n_targets, final_state)`` (``n_targets``: stream-steps with a
    target); pass ``final_state`` back as ``state`` to continue through a long text chunk by
    chunk (the evaluation protocol of the OK paper's released PTB code: no resets through the
    whole evaluation text).
    """
    W, V = _check_model(model)
    xs, ys, resets = validate_sequence(model, xs, ys, resets)
    T, B = xs.shape[:2]
    per_stream = np.zeros(B, model.dtype)
    total, n_targets = 0.0, 0
    outs, final = _forward_sequence(model, W, V, xs, resets, state)
    for t in range(T):
        total += model.readout.loss(outs[t], ys[t], per_stream)
        n_targets += model.readout.count(ys[t])
    return float(total), n_targets, final


def predict(model, xs, resets=None, state=None):
    """Readout predictions for new inputs, carrying the state.

    Returns ``(outputs, final_state)``: ``outputs`` (T, B, n_out) are class probabilities
    (softmax readout) or values (linear readout); pass ``final_state`` (B, S) back as
    ``state`` to continue where the last call stopped. Parameters are not changed.
    """
    W, V = _check_model(model)
    x, r = _validate_inputs(model, xs, resets)
    outs, final = _forward_sequence(model, W, V, x, r, state)
    return model.readout.predict(outs), final


def _forward_sequence(model, W, V, xs, resets, state):
    """Readout outputs (T, B, n_out) of validated inputs from ``state`` (or zeros), and the
    final state."""
    cell = model.cell
    T, B = xs.shape[:2]
    stacked = model.layers > 1
    buf = cell.workspace(B, model.dtype, jacobians=False) if stacked else cell.buffers(B, model.dtype, with_H=False)
    s_prev, s = model.zero_state(B), model.zero_state(B)
    if state is not None:
        st = np.asarray(state)
        if st.shape != (B, cell.S):
            raise ValueError(f"state must have shape ({B}, {cell.S}) (batch, state size), got {st.shape}")
        s_prev[...] = as_float_array(st, "state", (B, cell.S), model.dtype)
    outs = np.empty((T, B, model.n_out), model.dtype)
    for t in range(T):
        s_prev[resets[t]] = 0.0
        if stacked:
            cell.forward(W, xs[t], s_prev, s, buf)
        else:
            cell.forward(W, xs[t], s_prev, s, buf["rows"], buf["aux"])
        readout_outputs(V, s, cell.n, outs[t])
        s_prev, s = s, s_prev
    return outs, s_prev.copy()


def sequence_grad(model, xs, ys, method, resets=None, *, rank=None, seed=None, truncation=None,
                  threads=1):
    """Loss and gradient of ``Σ_t L_t`` over one sequence with parameters frozen.

    Parameters
    ----------
    model : oknumba.RNN
    xs, ys, resets : see module docstring.
    method : str
        ``"bptt"`` (exact), ``"tbptt"`` (needs ``truncation``), ``"rtrl"`` (exact, forward
        mode), and the approximate estimators registered in :mod:`oknumba.estimators`.
    rank : int, optional
        Number of Kronecker terms for ``"ok"``, ``"ok-truncated"``, ``"kf-avg"``.
    seed : int or numpy.random.Generator, optional
        Randomness of stochastic estimators (per-stream splitmix64 states derived from it):
        the returned gradient is one sample whose expectation is the exact gradient.
    truncation : int, optional
        TBPTT chunk length k ≥ 1.
    threads : int or None
        BLAS and Numba threads during the call (default 1, as
        :class:`~oknumba.OnlineLearner`; None leaves the thread settings alone).

    Returns
    -------
    loss : float
        As :func:`sequence_loss`.
    grads : dict
        Keyed and shaped like ``model.params``.
    """
    W, V = _check_model(model)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    xs, ys, resets = validate_sequence(model, xs, ys, resets)
    if method == "tbptt":
        if truncation is None:
            raise ValueError("method 'tbptt' needs truncation=k (an integer >= 1)")
        truncation = check_positive_int(truncation, "truncation")
    elif truncation is not None:
        raise ValueError(f"truncation is only used by method 'tbptt', not {method!r}")
    if method in OFFLINE_METHODS and rank is not None:
        raise ValueError(f"rank is only used by the rank methods (ok, ok-truncated, kf-avg), not {method!r}")
    if threads is not None:
        check_positive_int(threads, "threads")
    stacked = model.layers > 1
    with pinned_threads(threads):
        if method in OFFLINE_METHODS:
            grad = stack_bptt_grad if stacked else bptt_grad
            loss, dW, dV = grad(model, W, V, xs, ys, resets, truncation if method == "tbptt" else None)
        else:
            make = make_stack_run if stacked else make_estimator
            est = make(method, model.cell, ys.shape[1], model.dtype, rank=rank, seed=seed)
            est.threads = threads
            loss, dW, dV = run_estimator(model, W, V, xs, ys, resets, est)
    grads = {**dW, "V": dV} if stacked else {"W": dW, "V": dV}
    if not (np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())):
        raise FloatingPointError(f"the {method} gradient overflowed {model.dtype.name} (inputs or weights"
                                 " too large): scale the inputs or use float64")
    return float(loss), grads


def run_estimator(model, W, V, xs, ys, resets, est, on_step=None):
    """Drive an online estimator through a validated sequence with frozen parameters.

    Returns ``(loss, dW, dV)``; ``on_step(t, est, delta)`` is called after each step's
    update with ``delta = ∂L_t/∂s_t`` (B,S). For a stack ``est`` is a
    :class:`~oknumba.stack.StackRun` and ``dW`` a dict ``{"W0": …, …}``.
    """
    if model.layers > 1:
        return run_stack_estimators(model, W, V, xs, ys, resets, est, on_step)
    cell = model.cell
    T, B = ys.shape[:2]
    buf = cell.buffers(B, model.dtype, with_H=est.needs_H)
    s_prev, s = model.zero_state(B), model.zero_state(B)
    delta = np.zeros((B, cell.S), model.dtype)
    dW, dV = np.zeros_like(W), np.zeros_like(V)
    out, g = np.zeros((B, model.n_out), model.dtype), np.zeros((B, model.n_out), model.dtype)
    loss = 0.0
    for t in range(T):
        if resets[t].any():
            s_prev[resets[t]] = 0.0
            est.reset(resets[t])
        cell.step(W, xs[t], s_prev, s, buf["rows"], buf["aux"], buf["D"], buf["H"], est.needs_H)
        loss += model.readout.step(V, s, cell.n, ys[t], out, g, dV, delta)
        est.step(W, s_prev, s, buf["rows"], buf["aux"], buf["D"], buf["H"], delta, dW)
        if on_step is not None:
            on_step(t, est, delta)
        s_prev, s = s, s_prev
    return loss, dW, dV
