"""A recurrent cell plus a linear softmax readout: the model every method trains.

Readout: ``y_t = [h_t, 1] V`` with ``V ∈ R^{(n+1)×n_out}``, trained by its
direct gradient; loss is the softmax cross-entropy in nats of every target ``≥ 0`` (a
target of −1 contributes nothing).
"""
import numpy as np

from ._jit import kernel
from ._validate import check_dtype, check_finite, check_positive_int
from .cells import make_cell


@kernel(fastmath=True)
def _logits(V, s, b, n, logits):
    """``logits = [h_b, 1] V`` for stream b; returns their maximum."""
    for o in range(V.shape[1]):
        logits[o] = V[n, o]
    for i in range(n):
        hi = s[b, i]
        for o in range(V.shape[1]):
            logits[o] += hi * V[i, o]
    return logits.max()


@kernel(fastmath=True)
def readout_loss_grad(V, s, y, n, dV, delta):
    """Loss (nats, summed over streams with ``y ≥ 0``) and its gradients.

    Writes ``delta = ∂L/∂s`` (B,S; zero outside the hidden part and for streams without a
    target) and adds ``∂L/∂V`` into ``dV``. With ``p = softmax([h, 1] V)``:
    ``∂L/∂logits = p − onehot(y)``, ``∂L/∂h = (p − onehot(y)) V[:n]ᵀ``.
    """
    B = s.shape[0]
    n_out = V.shape[1]
    logits = np.empty(n_out, dtype=s.dtype)
    total = 0.0
    delta[:] = 0.0
    for b in range(B):
        if y[b] < 0:
            continue
        mx = _logits(V, s, b, n, logits)
        z = 0.0
        for o in range(n_out):
            logits[o] = np.exp(logits[o] - mx)
            z += logits[o]
        total += np.log(z) + mx - (np.log(logits[y[b]]) + mx)
        for o in range(n_out):
            logits[o] /= z
        logits[y[b]] -= 1.0
        for i in range(n):
            hi = s[b, i]
            acc = 0.0
            for o in range(n_out):
                dV[i, o] += hi * logits[o]
                acc += logits[o] * V[i, o]
            delta[b, i] = acc
        for o in range(n_out):
            dV[n, o] += logits[o]
    return total


@kernel(fastmath=True)
def readout_loss(V, s, y, n, out):
    """Per-stream cross-entropy (nats) into ``out`` (0 where ``y < 0``); returns the sum."""
    n_out = V.shape[1]
    logits = np.empty(n_out, dtype=s.dtype)
    total = 0.0
    for b in range(s.shape[0]):
        out[b] = 0.0
        if y[b] < 0:
            continue
        mx = _logits(V, s, b, n, logits)
        z = 0.0
        for o in range(n_out):
            z += np.exp(logits[o] - mx)
        out[b] = np.log(z) + mx - logits[y[b]]
        total += out[b]
    return total


class RNN:
    """A recurrent network: ``cell`` (``"vanilla"``, ``"lstm"``, ``"gru"``, ``"rhn"``) plus a
    linear softmax readout.

    Parameters
    ----------
    cell : str
    n_in, n_hidden, n_out : int
        Input size (one-hot or dense), hidden units n, output classes.
    seed : int
        Seed of the initialisation.
    dtype : numpy.float32 or numpy.float64
    init : str
        ``"paper"`` (default): W, V ~ N(0, 0.01²) as in the OK paper; ``"normal"`` with
        ``init_scale`` as the standard deviation; ``"xavier"``; ``"uniform"``
        (see :meth:`oknumba.cells.Cell.init_W`).
    init_scale : float, optional

    Attributes
    ----------
    params : dict
        ``"W"`` (a×P) recurrent weights with ``a = n_in + n + 1`` and ``P`` = gate blocks × n;
        ``"V"`` ((n+1)×n_out) readout weights (last row = bias).
    """

    def __init__(self, cell, n_in, n_hidden, n_out, seed=0, dtype=np.float64, init="paper",
                 init_scale=None):
        if not isinstance(cell, str):
            raise TypeError(f"cell must be a string naming the cell, got {type(cell).__name__}")
        self.dtype = check_dtype(dtype)
        self.cell = make_cell(cell, n_in, n_hidden)
        self.n_out = check_positive_int(n_out, "n_out")
        rng = np.random.default_rng(seed)
        W = self.cell.init_W(rng, self.dtype, init, init_scale)
        if init in ("paper", "normal"):
            V = rng.normal(0.0, 0.01 if init_scale is None else init_scale,
                           (self.cell.n + 1, self.n_out))
        else:
            lim = np.sqrt(6.0 / (self.cell.n + 1 + self.n_out)) * (1.0 if init_scale is None else init_scale)
            V = rng.uniform(-lim, lim, (self.cell.n + 1, self.n_out))
            V[-1] = 0.0
        self._device = None        # a GPUBackend holding the current values, if any
        self._params = {"W": W, "V": np.ascontiguousarray(V, dtype=self.dtype)}
        self.init = init
        self.seed = seed

    @property
    def params(self):
        """``{"W": (a×P), "V": ((n+1)×n_out)}``. While a GPU learner trains this model, reading
        brings the device's current values back first (never a stale copy)."""
        if self._device is not None:
            self._device.host_read()
        return self._params

    @params.setter
    def params(self, value):
        if self._device is not None:
            self._device.host_read()
        self._params = value

    # sizes -------------------------------------------------------------------
    @property
    def n_in(self):
        return self.cell.n_in

    @property
    def n_hidden(self):
        return self.cell.n

    @property
    def cell_name(self):
        return self.cell.name

    def check_params(self):
        """Validate ``params`` (shapes, dtype, finiteness) and return (W, V) ready for kernels."""
        shapes = {"W": (self.cell.a, self.cell.P), "V": (self.cell.n + 1, self.n_out)}
        if set(self.params) != set(shapes):
            raise ValueError(f"model.params must have exactly the keys {sorted(shapes)}, got {sorted(self.params)}")
        out = []
        for k, shape in shapes.items():
            p = self.params[k]
            if not isinstance(p, np.ndarray) or p.shape != shape:
                raise ValueError(f"model.params[{k!r}] must be an ndarray of shape {shape},"
                                 f" got {getattr(p, 'shape', type(p).__name__)}")
            if p.dtype != self.dtype:
                raise TypeError(f"model.params[{k!r}] must have dtype {self.dtype}, got {p.dtype}")
            check_finite(p, f"model.params[{k!r}]")
            if not p.flags.c_contiguous:
                self.params[k] = p = np.ascontiguousarray(p)
            out.append(p)
        return tuple(out)

    def zero_state(self, batch):
        return np.zeros((batch, self.cell.S), self.dtype)

    def __repr__(self):
        return (f"RNN({self.cell.name!r}, n_in={self.n_in}, n_hidden={self.n_hidden},"
                f" n_out={self.n_out}, dtype={self.dtype.name})")
