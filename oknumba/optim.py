"""Optimizers and gradient clipping for online training (in-place, jitted).

* Adam (Kingma & Ba) with the paper's defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-8:
  ``m ← β₁m + (1−β₁)g``, ``v ← β₂v + (1−β₂)g²``,
  ``θ ← θ − lr · m̂ / (sqrt(v̂) + ε)`` with ``m̂ = m/(1−β₁ᵗ)``, ``v̂ = v/(1−β₂ᵗ)``.
* SGD: ``θ ← θ − lr · g``.
* Clipping by norm: each parameter's gradient ``g ← g · min(1, c/‖g‖)`` (the released OK code
  clips the gradient of W to norm 1).
"""
import math
import numbers

import numpy as np

from ._jit import kernel


@kernel(fastmath=True)
def _adam(p, g, m, v, lr_t, b1, b2, eps_t, gscale):
    """One Adam step on ``p`` with the gradient ``gscale·g``; zeroes ``g`` in the same pass
    (one pass over the four arrays)."""
    pf, gf, mf, vf = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    # constants in the parameters' dtype: float32 runs stay float32 (8-wide sqrt and divide)
    f = p.dtype.type
    lr_t, b1, b2, eps_t, gscale = f(lr_t), f(b1), f(b2), f(eps_t), f(gscale)
    c1, c2 = f(1.0) - b1, f(1.0) - b2
    for i in range(pf.shape[0]):
        gi = gf[i] * gscale
        gf[i] = 0.0
        mf[i] = b1 * mf[i] + c1 * gi
        vf[i] = b2 * vf[i] + c2 * gi * gi
        pf[i] -= lr_t * mf[i] / (np.sqrt(vf[i]) + eps_t)


@kernel(fastmath=True)
def _sgd(p, g, lr, gscale):
    """``p ← p − lr·gscale·g``, zeroing ``g`` in the same pass."""
    pf, gf = p.reshape(-1), g.reshape(-1)
    lr, gscale = p.dtype.type(lr), p.dtype.type(gscale)
    for i in range(pf.shape[0]):
        pf[i] -= lr * (gf[i] * gscale)
        gf[i] = 0.0


@kernel(fastmath=True)
def _clip_scale(g, scale, max_norm):
    """``(‖scale·g‖, c)`` with ``c = scale · min(1, max_norm/‖scale·g‖)`` (max_norm ≤ 0: no
    clipping), in g's dtype: ``c·g`` is the scaled and clipped gradient. Reads g only."""
    gf = g.reshape(-1)
    scale = g.dtype.type(scale)
    acc = g.dtype.type(0.0)
    for i in range(gf.shape[0]):
        x = gf[i] * scale
        acc += x * x
    norm = np.sqrt(acc)
    c = scale
    if max_norm > 0.0 and norm > max_norm:
        c = scale * (g.dtype.type(max_norm) / norm)
    return norm, c


@kernel(fastmath=True)
def _adam_pair(W, V, gW, gV, mW, vW, mV, vV, scale, max_norm, t, lr, b1, b2, eps):
    """Scale, clip and apply Adam (step t ≥ 1) to both parameters of the model, zeroing the
    gradients — two passes over each gradient (its norm, then the update). Bias corrections
    are folded into the step size and ε (equivalent)."""
    nW, cW = _clip_scale(gW, scale, max_norm)
    nV, cV = _clip_scale(gV, scale, max_norm)
    c2 = np.sqrt(1.0 - b2 ** t)
    lr_t = lr * c2 / (1.0 - b1 ** t)
    eps_t = eps * c2
    _adam(W, gW, mW, vW, lr_t, b1, b2, eps_t, cW)
    _adam(V, gV, mV, vV, lr_t, b1, b2, eps_t, cV)
    return nW, nV


@kernel(fastmath=True)
def _sgd_pair(W, V, gW, gV, scale, max_norm, lr):
    nW, cW = _clip_scale(gW, scale, max_norm)
    nV, cV = _clip_scale(gV, scale, max_norm)
    _sgd(W, gW, lr, cW)
    _sgd(V, gV, lr, cV)
    return nW, nV


@kernel
def _adam_fused(W, V, gW, gV, scale, max_norm, t, arrays, scalars):
    """:func:`_adam_pair` with the optimizer's moment arrays in the tuple ``arrays``
    (:meth:`Adam.fused_arrays`, bound once) and its constants in ``scalars``
    (:meth:`Adam.fused_scalars`, read every step): the optimizer's part of the fused step
    (:mod:`oknumba.fused`)."""
    mW, vW, mV, vV = arrays
    lr, b1, b2, eps = scalars
    return _adam_pair(W, V, gW, gV, mW, vW, mV, vV, scale, max_norm, t, lr, b1, b2, eps)


@kernel
def _sgd_fused(W, V, gW, gV, scale, max_norm, t, arrays, scalars):
    """:func:`_sgd_pair` in the form of :func:`_adam_fused` (no arrays, ``scalars = (lr,)``)."""
    return _sgd_pair(W, V, gW, gV, scale, max_norm, scalars[0])


def _update_each(params, grads, scale, clip, apply):
    """Scale and clip every gradient, ``apply(key, c)`` the optimizer step to each parameter
    with the gradient ``c·grads[key]`` (which zeroes it) — for models with more than the two
    parameters W, V: stacks. Returns the norms before clipping, in ``params`` order."""
    max_norm = -1.0 if clip is None else float(clip)
    clipped = [_clip_scale(grads[k], float(scale), max_norm) for k in params]
    for k, (_, c) in zip(params, clipped):
        apply(k, c)
    return tuple(norm for norm, _ in clipped)


class Optimizer:
    """What the optimizers share: the fused learner step's hooks (:mod:`oknumba.fused`).
    Subclasses set ``fused_update_kernel`` (a kernel ``(W, V, gW, gV, scale, max_norm, t,
    arrays, scalars)`` returning the two gradient norms), :meth:`fused_arrays` and
    :meth:`fused_scalars`."""

    fused_update_kernel = None

    def fused_arrays(self):
        """The ``arrays`` tuple of ``fused_update_kernel``: the optimizer's own arrays, updated
        in place (bound once, when the fused step is built)."""
        raise NotImplementedError

    def fused_scalars(self):
        """The ``scalars`` tuple of ``fused_update_kernel`` (floats, read at every step: a
        changed ``lr`` applies from the next update)."""
        raise NotImplementedError


class Adam(Optimizer):
    name = "adam"
    #: the update of the fused learner step (:mod:`oknumba.fused`)
    fused_update_kernel = staticmethod(_adam_fused)

    def __init__(self, params, lr=10 ** -3.5, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = float(lr), beta1, beta2, eps
        self.t = 0
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def update(self, params, grads, scale=1.0, clip=None):
        """Scale the gradients of ``{"W", "V"}``, clip each to norm ``clip``, step, and zero
        them — one kernel call. Returns the gradient norms ``(‖g_W‖, ‖g_V‖)`` before clipping
        (for a stack's ``{"W0", …, "V"}``: one norm per parameter, in that order)."""
        self.t += 1
        m, v = self.m, self.v
        if len(params) != 2:
            c2 = math.sqrt(1.0 - self.beta2 ** self.t)
            lr_t, eps_t = self.lr * c2 / (1.0 - self.beta1 ** self.t), self.eps * c2
            return _update_each(params, grads, scale, clip,
                                lambda k, c: _adam(params[k], grads[k], m[k], v[k], lr_t, self.beta1,
                                                   self.beta2, eps_t, c))
        return _adam_pair(params["W"], params["V"], grads["W"], grads["V"], m["W"], v["W"],
                          m["V"], v["V"], float(scale), -1.0 if clip is None else float(clip),
                          self.t, self.lr, self.beta1, self.beta2, self.eps)

    def fused_arrays(self):
        m, v = self.m, self.v
        return (m["W"], v["W"], m["V"], v["V"])

    def fused_scalars(self):
        return (self.lr, float(self.beta1), float(self.beta2), float(self.eps))

    def count_update(self):
        """Advance the step counter for an update applied elsewhere (the GPU path) and return
        that update's constants ``(lr_t, eps_t)``: the bias corrections folded into the step
        size and ε as in the kernel, ``lr_t = lr·sqrt(1−β₂ᵗ)/(1−β₁ᵗ)``, ``eps_t = ε·sqrt(1−β₂ᵗ)``."""
        self.t += 1
        c2 = math.sqrt(1.0 - self.beta2 ** self.t)
        return self.lr * c2 / (1.0 - self.beta1 ** self.t), self.eps * c2

    def state_dict(self):
        d = {"t": self.t}
        for k in self.m:
            d[f"m.{k}"] = self.m[k].copy()
            d[f"v.{k}"] = self.v[k].copy()
        return d

    def load_state_dict(self, d):
        self.t = int(d["t"])
        for k in self.m:
            self.m[k][...] = d[f"m.{k}"]
            self.v[k][...] = d[f"v.{k}"]


class SGD(Optimizer):
    name = "sgd"
    fused_update_kernel = staticmethod(_sgd_fused)

    def __init__(self, params, lr=1e-2):
        self.lr = float(lr)
        self.t = 0

    def update(self, params, grads, scale=1.0, clip=None):
        """As :meth:`Adam.update`."""
        self.t += 1
        if len(params) != 2:
            return _update_each(params, grads, scale, clip, lambda k, c: _sgd(params[k], grads[k], self.lr, c))
        return _sgd_pair(params["W"], params["V"], grads["W"], grads["V"], float(scale),
                         -1.0 if clip is None else float(clip), self.lr)

    def fused_arrays(self):
        return ()

    def fused_scalars(self):
        return (self.lr,)

    def count_update(self):
        """Advance the step counter for an update applied elsewhere (the GPU path); returns
        ``(lr,)``."""
        self.t += 1
        return (self.lr,)

    def state_dict(self):
        return {"t": self.t}

    def load_state_dict(self, d):
        self.t = int(d["t"])


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(name, params, lr):
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return OPTIMIZERS[name](params, lr=float(lr))
