"""A recurrent cell plus a linear readout: the model every method trains.

Readout (:mod:`oknumba.readouts`): ``out_t = [h_t, 1] V`` with ``V ∈ R^{(n+1)×n_out}``,
trained by its direct gradient; ``"softmax"`` (logits, cross-entropy in nats of every class-id
target ``≥ 0``; −1 contributes nothing) or ``"linear"`` (values, squared error on real targets;
NaN contributes nothing).
"""
import numpy as np

from ._validate import check_dtype, check_finite, check_positive_int
from .cells import make_cell
from .readouts import get_readout
from .stack import count_layers, layer_list, make_stack


class RNN:
    """A recurrent network: ``cell`` (``"vanilla"``, ``"lstm"``, ``"gru"``, ``"rhn"``) plus a
    linear readout (``readout="softmax"`` or ``"linear"``; :mod:`oknumba.readouts`).

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
    depth : int
        Transition micro-layers per step for a deep-transition cell (``"rhn"``, Zilly et al.
        2017; 1 = the OK paper's RHN).
    layers : int, optional
        Stacked recurrent layers L (default: 1, or the length of the per-layer lists):
        ``cell``, ``n_hidden`` and ``depth`` may then be lists (bottom layer first, mixed cells
        allowed) or one value for every layer. Layer l reads layer l−1's hidden output of
        the same step; the readout reads the top layer (:mod:`oknumba.stack`).
    readout : {"softmax", "linear"}
        ``"softmax"`` (default): class-id targets, cross-entropy; ``"linear"``: real targets of
        shape (…, n_out) with NaN = no target, squared error ``½ Σ (out − y)²``.

    Attributes
    ----------
    params : dict
        ``"W"`` (a×P) recurrent weights with ``a = n_in + n + 1`` and ``P`` = gate blocks × n;
        ``"V"`` ((n+1)×n_out) readout weights (last row = bias). A stack has ``"W0"`` …
        ``"W{L-1}"`` (layer l: ``a_l = n_in,l + n_l + 1`` rows) in place of ``"W"``, and n is
        the top layer's.
    """

    def __init__(self, cell, n_in, n_hidden, n_out, seed=0, dtype=np.float64, init="paper",
                 init_scale=None, readout="softmax", depth=1, layers=None):
        self.dtype = check_dtype(dtype)
        self.readout = get_readout(readout)
        L = count_layers(layers, cell=cell, n_hidden=n_hidden, depth=depth)
        if L == 1:
            cell, n_hidden, depth = (v[0] if isinstance(v, (list, tuple)) else v
                                     for v in (cell, n_hidden, depth))
            if not isinstance(cell, str):
                raise TypeError(f"cell must be a string naming the cell, got {type(cell).__name__}")
            self.cell = make_cell(cell, n_in, n_hidden, depth=depth)
        else:
            self.cell = make_stack(layer_list(cell, L, "cell", "cell name"), n_in,
                                   layer_list(n_hidden, L, "n_hidden", "size"),
                                   layer_list(depth, L, "depth", "integer"))
        self.n_out = check_positive_int(n_out, "n_out")
        rng = np.random.default_rng(seed)
        if L == 1:
            recurrent = {"W": self.cell.init_W(rng, self.dtype, init, init_scale)}
        else:
            recurrent = self.cell.init_W(rng, self.dtype, init, init_scale)
        if init in ("paper", "normal"):
            V = rng.normal(0.0, 0.01 if init_scale is None else init_scale,
                           (self.cell.n + 1, self.n_out))
        else:
            lim = np.sqrt(6.0 / (self.cell.n + 1 + self.n_out)) * (1.0 if init_scale is None else init_scale)
            V = rng.uniform(-lim, lim, (self.cell.n + 1, self.n_out))
            V[-1] = 0.0
        self._device = None        # a GPUBackend holding the current values, if any
        self._params = {**recurrent, "V": np.ascontiguousarray(V, dtype=self.dtype)}
        self.vocab = None          # a character vocabulary (dict) when loaded with one
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
    def layers(self):
        """Recurrent layers (1, or L for a stack: :mod:`oknumba.stack`)."""
        return getattr(self.cell, "L", 1)

    @property
    def n_hidden(self):
        """Hidden units n (a list, bottom layer first, for a stack)."""
        return self.cell.sizes if self.layers > 1 else self.cell.n

    @property
    def cell_name(self):
        """The cell's name (a list, bottom layer first, for a stack)."""
        return self.cell.names if self.layers > 1 else self.cell.name

    def check_params(self):
        """Validate ``params`` (shapes, dtype, finiteness) and return ``(W, V)`` ready for
        kernels — ``W`` a tuple ``(W0, …, W_{L−1})`` for a stack."""
        shapes = {**self.cell.param_shapes(), "V": (self.cell.n + 1, self.n_out)}
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
        return (out[0], out[1]) if self.layers == 1 else (tuple(out[:-1]), out[-1])

    def zero_state(self, batch):
        return np.zeros((batch, self.cell.S), self.dtype)

    def predict(self, xs, resets=None, state=None):
        """Outputs for new inputs ``xs`` (T, B, n_in), carrying ``state`` (B, S) across calls:
        returns ``(outputs (T, B, n_out), final_state)`` — class probabilities (softmax) or
        values (linear); see :func:`oknumba.functional.predict`."""
        from .functional import predict

        return predict(self, xs, resets=resets, state=state)

    def save(self, path, vocab=None):
        """Write the model to one ``.npz`` (parameters and configuration; a character
        vocabulary too if given); :func:`oknumba.load_model` reads it back."""
        from .model_io import save_model

        return save_model(self, path, vocab=vocab)

    def __repr__(self):
        ro = "" if self.readout.name == "softmax" else f", readout={self.readout.name!r}"
        if self.layers > 1:
            depth = list(self.cell.depth)
            ro += "" if depth == [1] * self.layers else f", depth={depth}"
            ro += f", layers={self.layers}"
        else:
            ro += "" if self.cell.depth == 1 else f", depth={self.cell.depth}"
        return (f"RNN({self.cell_name!r}, n_in={self.n_in}, n_hidden={self.n_hidden},"
                f" n_out={self.n_out}, dtype={self.dtype.name}{ro})")
