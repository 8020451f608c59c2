"""Reference checks for cells, readouts and methods (in the spirit of ``numpy.testing``).

The package's own tests and ``scripts/accuracy_report.py`` use these oracles, and a new cell
or readout (registered through :func:`oknumba.cells.register_cell` /
:func:`oknumba.readouts.register_readout`) can be checked the same way:

* :func:`step_jacobians` — ``H`` and ``F = Σ_k ĥ_k ⊗ D_k`` of one step from the cell's kernels;
* :func:`step_jacobians_fd` — the same two by central finite differences of the forward step;
* :func:`loss_gradient_fd` — central finite differences of :func:`oknumba.sequence_loss` at
  chosen coordinates of a parameter, to compare with :func:`oknumba.sequence_grad`;
* :func:`rel_err` — ``max |a − b| / max |b|``, the relative error quoted throughout.
"""
import numpy as np

from .functional import sequence_grad, sequence_loss


def rel_err(a, b):
    """``max |a − b| / max |b|`` in float64 (``b`` the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def forward_step(cell, W, x, s_prev):
    """One forward step of ``cell`` for a batch: returns ``(s, buffers)``."""
    buf = cell.buffers(x.shape[0], W.dtype)
    s = np.zeros_like(s_prev)
    cell.forward(W, x, s_prev, s, buf["rows"], buf["aux"])
    return s, buf


def filled_step(cell, W, x, s_prev):
    """One forward step with ``D`` and ``H`` filled too: returns ``(s, buffers)``."""
    s, buf = forward_step(cell, W, x, s_prev)
    cell.fill_D(W, s_prev, s, buf["rows"], buf["aux"], buf["D"])
    cell.fill_H(W, s_prev, s, buf["rows"], buf["aux"], buf["H"])
    return s, buf


def step_jacobians(cell, W, x, s_prev):
    """``(s, H, F)`` from the cell's kernels: ``H = ∂s/∂s₋`` (B, S, S) and the immediate
    influence ``F = ∂s/∂W = Σ_k ĥ_k ⊗ D_k`` (B, S, a, P)."""
    s, buf = filled_step(cell, W, x, s_prev)
    F = np.einsum("bkq,bkpj->bpqj", buf["rows"], buf["D"])
    return s, buf["H"], F


def step_jacobians_fd(cell, W, x, s_prev, eps=1e-6):
    """``(H, F)`` of one step by central finite differences of :func:`forward_step`."""
    H = np.zeros((x.shape[0], cell.S, cell.S))
    for i in range(cell.S):
        e = np.zeros(cell.S)
        e[i] = eps
        H[:, :, i] = (forward_step(cell, W, x, s_prev + e)[0] - forward_step(cell, W, x, s_prev - e)[0]) / (2 * eps)
    F = np.zeros((x.shape[0], cell.S) + W.shape)
    for q in range(W.shape[0]):
        for j in range(W.shape[1]):
            Wp, Wm = W.copy(), W.copy()
            Wp[q, j] += eps
            Wm[q, j] -= eps
            F[:, :, q, j] = (forward_step(cell, Wp, x, s_prev)[0] - forward_step(cell, Wm, x, s_prev)[0]) / (2 * eps)
    return H, F


def loss_gradient_fd(model, xs, ys, resets, key, indices, eps=1e-6):
    """Central differences of :func:`oknumba.sequence_loss` with respect to the flat
    ``indices`` of ``model.params[key]`` (restored afterwards); returns an array."""
    p = model.params[key]
    out = np.empty(len(indices))
    for n, idx in enumerate(indices):
        old = p.flat[idx]
        p.flat[idx] = old + eps
        lp = sequence_loss(model, xs, ys, resets)
        p.flat[idx] = old - eps
        lm = sequence_loss(model, xs, ys, resets)
        p.flat[idx] = old
        out[n] = (lp - lm) / (2 * eps)
    return out


def unbiasedness_z(model, xs, ys, resets, method, rank=None, n_seeds=400, key="W"):
    """The unbiasedness z-test of a stochastic method's gradient of ``model.params[key]``
    (``"W"``; ``"W0"``, ``"W1"``, … for a stack) against exact RTRL.

    Draws ``n_seeds`` gradient samples (seeds 0..n−1); returns ``(z_max, live, mean, exact,
    samples)`` where ``z = |mean − exact| / (sd/√n)`` over the ``live`` coordinates (those
    with noise); an unbiased method gives ``z_max`` below about 5.5 (a false alarm needs a
    5.5σ excursion in one of ~100 coordinates), and must be exact where it has no noise."""
    _, exact = sequence_grad(model, xs, ys, "rtrl", resets=resets)
    samples = np.stack([sequence_grad(model, xs, ys, method, resets=resets, rank=rank, seed=seed)[1][key]
                        for seed in range(n_seeds)])
    se = samples.std(axis=0) / np.sqrt(n_seeds)
    live = se > 1e-12 * np.abs(exact[key]).max()
    mean = samples.mean(axis=0)
    z = np.abs(mean - exact[key])[live] / se[live]
    return (float(z.max()) if z.size else 0.0), live, mean, exact[key], samples


__all__ = ["rel_err", "forward_step", "filled_step", "step_jacobians", "step_jacobians_fd", "loss_gradient_fd",
           "unbiasedness_z"]
