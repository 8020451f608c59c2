"""Readouts: the map from the hidden state to the outputs, and the built-in losses, one registry.

Every readout is linear in the hidden part ``h`` (the first n entries) of the state:
``out_b = [h_b, 1] V`` with ``V ∈ R^{(n+1)×n_out}`` (last row = bias). What differs is what
the outputs mean and the built-in loss on them:

* ``"softmax"`` — the outputs are logits; targets are class ids ``y_b`` (−1 = no target);
  loss the cross-entropy ``L_b = log Σ_o e^{out_o} − out_{y_b}`` (nats), ``∂L/∂out = p − e_y``
  with ``p = softmax(out)``; :meth:`Readout.predict` gives ``p``.
* ``"linear"`` — the outputs are values; targets are real vectors ``y_b ∈ R^{n_out}`` with NaN
  marking an entry without a target; loss the squared error
  ``L_b = ½ Σ_{o: y_bo not NaN} (out_bo − y_bo)²``, ``∂L/∂out = out − y`` (0 where NaN);
  :meth:`Readout.predict` gives the values.

Whatever the loss, the backward pass through the readout is the same:
``∂L/∂V += [h, 1]ᵀ g`` and ``δ = ∂L/∂s = g V[:n]ᵀ`` (zero outside ``h``) for ``g = ∂L/∂out``
— which is what :meth:`oknumba.OnlineLearner.backward` takes for a loss of one's own.
A readout registers once (:func:`register_readout`); ``RNN(..., readout=NAME)``, the learner,
the functional API and the noise study read it from the model.
"""
import numpy as np

from ._jit import kernel


# -- kernels -----------------------------------------------------------------------------------
@kernel(fastmath=True)
def readout_outputs(V, s, n, out):
    """``out[b] = [h_b, 1] V`` (B, n_out) for the states ``s`` (B, S)."""
    n_out = V.shape[1]
    for b in range(s.shape[0]):
        for o in range(n_out):
            out[b, o] = V[n, o]
        for i in range(n):
            hi = s[b, i]
            for o in range(n_out):
                out[b, o] += hi * V[i, o]


@kernel(fastmath=True)
def readout_backward(V, s, n, g, dV, delta):
    """``dV += [h, 1]ᵀ g`` and ``delta = g V[:n]ᵀ`` (B, S; zero outside ``h``) for
    ``g = ∂L/∂out`` (B, n_out)."""
    n_out = V.shape[1]
    delta[:] = 0.0
    for b in range(s.shape[0]):
        for i in range(n):
            hi = s[b, i]
            acc = 0.0
            for o in range(n_out):
                dV[i, o] += hi * g[b, o]
                acc += g[b, o] * V[i, o]
            delta[b, i] = acc
        for o in range(n_out):
            dV[n, o] += g[b, o]


@kernel
def softmax_loss_grad(out, y, g):
    """Cross-entropy (nats) summed over the streams with ``y ≥ 0``; writes ``g = p − e_y``
    (zero rows where ``y < 0``)."""
    total = 0.0
    for b in range(out.shape[0]):
        if y[b] < 0:
            g[b, :] = 0.0
            continue
        mx = out[b].max()
        z = 0.0
        for o in range(out.shape[1]):
            e = np.exp(out[b, o] - mx)
            g[b, o] = e
            z += e
        total += np.log(z) + mx - out[b, y[b]]
        for o in range(out.shape[1]):
            g[b, o] /= z
        g[b, y[b]] -= 1.0
    return total


@kernel
def softmax_loss(out, y, per_stream):
    """Cross-entropy (nats) per stream into ``per_stream`` (0 where ``y < 0``); returns the sum."""
    total = 0.0
    for b in range(out.shape[0]):
        per_stream[b] = 0.0
        if y[b] < 0:
            continue
        mx = out[b].max()
        z = 0.0
        for o in range(out.shape[1]):
            z += np.exp(out[b, o] - mx)
        per_stream[b] = np.log(z) + mx - out[b, y[b]]
        total += per_stream[b]
    return total


@kernel
def squared_loss_grad(out, y, g):
    """``½ Σ (out − y)²`` over the entries with a target (not NaN); writes ``g = out − y``
    (zero where NaN). Returns the sum."""
    total = 0.0
    for b in range(out.shape[0]):
        for o in range(out.shape[1]):
            if np.isnan(y[b, o]):
                g[b, o] = 0.0
            else:
                r = out[b, o] - y[b, o]
                g[b, o] = r
                total += 0.5 * r * r
    return total


@kernel
def squared_loss(out, y, per_stream):
    """``½ Σ_o (out − y)²`` per stream (NaN entries left out) into ``per_stream``; returns the sum."""
    total = 0.0
    for b in range(out.shape[0]):
        acc = 0.0
        for o in range(out.shape[1]):
            if not np.isnan(y[b, o]):
                r = out[b, o] - y[b, o]
                acc += 0.5 * r * r
        per_stream[b] = acc
        total += acc
    return total


@kernel
def class_target_count(y, n_out):
    """Streams with a class target ``0 ≤ y_b < n_out`` (``y_b = −1``: none); −1 if a target
    is outside ``[−1, n_out)``."""
    n = 0
    for t in y:
        if t < -1 or t >= n_out:
            return -1
        if t >= 0:
            n += 1
    return n


@kernel
def value_target_count(y, n_out):
    """:func:`_finite_or_nan_count` of the (B, n_out) targets of one step, in the form of
    :func:`class_target_count`."""
    return _finite_or_nan_count(y)


@kernel
def _finite_or_nan_count(y):
    """Streams with at least one target (not NaN); −1 if an entry is ±inf."""
    n = 0
    for b in range(y.shape[0]):
        has = False
        for o in range(y.shape[1]):
            v = y[b, o]
            if np.isinf(v):
                return -1
            if not np.isnan(v):
                has = True
        if has:
            n += 1
    return n


# -- the readouts ------------------------------------------------------------------------------
class Readout:
    """Base class: subclasses set ``name`` and implement the target check and the loss."""

    name = None

    def check_targets(self, ys, name, lead, n_out, dtype):
        """Validated contiguous targets of shape ``lead + (per-step shape)``; raises
        ``TypeError``/``ValueError`` naming ``name`` and what to change."""
        raise NotImplementedError

    #: for the fused learner step (:mod:`oknumba.fused`), a kernel ``(y, n_out)`` giving the
    #: number of streams of one step's targets ``y`` that have a target, or −1 when a target
    #: is one that :meth:`check_targets` rejects (None: the step makes the separate calls)
    target_count_kernel = None

    def count(self, y):
        """Streams of one step's targets ``y`` that have a target."""
        raise NotImplementedError

    def loss_grad(self, out, y, g):
        """Summed loss of one step, and ``g = ∂L/∂out`` written into ``g`` (B, n_out)."""
        raise NotImplementedError

    def loss(self, out, y, per_stream):
        """Per-stream losses of one step into ``per_stream``; returns their sum."""
        raise NotImplementedError

    def predict(self, out):
        """What a prediction reports for the outputs ``out`` (…, n_out)."""
        return out

    def step(self, V, s, n, y, out, g, dV, delta):
        """One step's built-in loss through the readout: the outputs into ``out``, the loss's
        ``g = ∂L/∂out`` into ``g``, then :func:`readout_backward` (``dV +=``, ``delta =``).
        Returns the summed loss. (The learner's ``forward`` + ``backward`` run the same three.)"""
        readout_outputs(V, s, n, out)
        loss = self.loss_grad(out, y, g)
        readout_backward(V, s, n, g, dV, delta)
        return loss

    def __repr__(self):
        return f"<readout {self.name!r}>"


class SoftmaxReadout(Readout):
    """Logits, class-id targets (−1 = none), cross-entropy (module docstring)."""

    name = "softmax"
    target_doc = "class ids in [0, n_out) with -1 = no target"
    #: the kernel behind :meth:`loss_grad` (for the fused learner step, :mod:`oknumba.fused`)
    loss_grad_kernel = staticmethod(softmax_loss_grad)
    target_count_kernel = staticmethod(class_target_count)

    def check_targets(self, ys, name, lead, n_out, dtype):
        y = np.asarray(ys)
        if y.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array of class ids (-1 = no target) for the"
                            f" softmax readout, got dtype {y.dtype}")
        if y.shape != tuple(lead):
            raise ValueError(f"{name} must have shape {tuple(lead)}, got {y.shape}")
        if y.size and (y.min() < -1 or y.max() >= n_out):
            raise ValueError(f"{name} must hold class ids in [0, {n_out - 1}] or -1 for 'no target';"
                             f" found values in [{y.min()}, {y.max()}]")
        return np.ascontiguousarray(y, dtype=np.int64)

    def count(self, y):
        return int(np.count_nonzero(y >= 0))

    def loss_grad(self, out, y, g):
        return self.loss_grad_kernel(out, y, g)

    def loss(self, out, y, per_stream):
        return softmax_loss(out, y, per_stream)

    def predict(self, out):
        z = np.exp(out - out.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)


class LinearReadout(Readout):
    """Values, real-valued targets (NaN = none), squared error (module docstring)."""

    name = "linear"
    target_doc = "real values with NaN = no target"
    loss_grad_kernel = staticmethod(squared_loss_grad)
    target_count_kernel = staticmethod(value_target_count)

    def check_targets(self, ys, name, lead, n_out, dtype):
        y = np.asarray(ys)
        shape = tuple(lead) + (n_out,)
        if y.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real array (NaN = no target) for the linear readout,"
                            f" got dtype {y.dtype}")
        if y.shape != shape:
            raise ValueError(f"{name} must have shape {shape} for the linear readout, got {y.shape}")
        y = np.ascontiguousarray(y, dtype=dtype)
        if np.isinf(y).any():
            raise ValueError(f"{name} contains inf (use NaN to mark an entry without a target)")
        return y

    def count(self, y):
        return int(_finite_or_nan_count(y.reshape(-1, y.shape[-1])))

    def loss_grad(self, out, y, g):
        return self.loss_grad_kernel(out, y, g)

    def loss(self, out, y, per_stream):
        return squared_loss(out, y, per_stream)


#: readout name -> Readout instance, in registration order
READOUTS = {}


def register_readout(readout):
    """Add a :class:`Readout` instance under its ``name``."""
    if not isinstance(readout, Readout) or not readout.name:
        raise TypeError(f"register_readout takes a Readout instance with a name, got {readout!r}")
    READOUTS[readout.name] = readout
    return readout


def get_readout(name):
    if name not in READOUTS:
        raise ValueError(f"readout must be one of {list(READOUTS)}, got {name!r}")
    return READOUTS[name]


for _r in (SoftmaxReadout(), LinearReadout()):
    register_readout(_r)

__all__ = ["Readout", "SoftmaxReadout", "LinearReadout", "READOUTS", "register_readout",
           "get_readout", "readout_outputs", "readout_backward"]
