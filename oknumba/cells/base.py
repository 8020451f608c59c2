"""The cell interface shared by all recurrent cells.

Notation (after Mujika et al. 2018, arXiv 1805.10842): state ``s ∈ R^S``; input row
``ĥ = (x, h₋, 1) ∈ R^a`` with ``a = n_in + n + 1``; all recurrent parameters in
``W ∈ R^{a×P}``, pre-activations ``z = ĥ W``. A cell provides, per stream of a batch:

* the forward step ``s = f(s₋, x; W)``;
* the immediate influence as a short Kronecker sum ``F = ∂s/∂W = Σ_k ĥ_k ⊗ D_k`` with
  ``(u ⊗ A)[p, (k, j)] = u_k A[p, j]`` — one term (``ĥ``, ``D = ∂s/∂z``) for vanilla, LSTM
  and RHN, two for the GRU (whose candidate block reads ``(x, r⊙h₋, 1)``);
* the state Jacobian ``H = ∂s/∂s₋`` (S×S), built by row scaling in ``O(S·n)``
  (``O(n³)`` only for the GRU, whose reset gate couples units);
* the Jacobian-vector product ``H v`` in ``O(S·P)`` without forming ``H``.

Kernels are plain functions of arrays, batched over the leading stream axis and generic in
float32/float64. A cell object only knows its sizes and dispatches to its kernels.
"""
from typing import Callable, NamedTuple

import numpy as np

from .._validate import check_dtype, check_positive_int

INIT_SCHEMES = ("paper", "normal", "xavier", "uniform")


class CellKernels(NamedTuple):
    """A cell's four kernels, each a Numba function of arrays batched over streams:

    * ``forward(W, x, s_prev, s, rows, aux)`` fills ``s``, ``rows`` and ``aux``;
    * ``fill_D(W, s_prev, s, rows, aux, D)`` fills ``D`` (B,K,S,P);
    * ``fill_H(W, s_prev, s, rows, aux, H)`` fills ``H`` (B,S,S);
    * ``jvp(W, s_prev, s, rows, aux, v, out)`` writes ``out = H v`` (B,S).
    """
    forward: Callable
    fill_D: Callable
    fill_H: Callable
    jvp: Callable


class Cell:
    """Base class. Subclasses set ``name``, ``n_blocks``, ``state_factor``, ``n_terms``
    and ``kernels`` (a :class:`CellKernels`). A cell with a ``depth`` (transition micro-layers
    per step) sets ``max_depth`` > 1 and takes ``depth`` in its constructor."""

    kernels: CellKernels = None
    #: further :class:`CellKernels` an instance may use instead of ``kernels`` (e.g. the deep
    #: RHN's), listed so that the fused learner step (:mod:`oknumba.fused`) knows them
    variant_kernels = ()
    #: largest ``depth`` the cell takes (1: no depth option)
    max_depth = 1
    depth = 1

    name = None
    n_blocks = 1      # gate blocks: P = n_blocks * n
    state_factor = 1  # S = state_factor * n
    n_terms = 1       # Kronecker terms in F

    def __init__(self, n_in, n_hidden):
        self.n_in = check_positive_int(n_in, "n_in")
        self.n = check_positive_int(n_hidden, "n_hidden")
        self.S = self.state_factor * self.n
        self.P = self.n_blocks * self.n
        self.a = self.n_in + self.n + 1

    # -- parameters ---------------------------------------------------------------
    def init_W(self, rng, dtype=np.float64, init="paper", scale=None):
        """Recurrent weights ``W`` (a×P).

        ``"paper"`` / ``"normal"``: N(0, scale²) with scale 0.01 by default (the paper's
        initialisation); ``"xavier"``: U(±scale·sqrt(6/(a+P))), scale 1 by default;
        ``"uniform"``: U(±scale), scale 0.1 by default. Biases (the last row) start at 0
        for ``"xavier"`` and ``"uniform"``.
        """
        dtype = check_dtype(dtype)
        shape = (self.a, self.P)
        if init in ("paper", "normal"):
            W = rng.normal(0.0, 0.01 if scale is None else scale, shape)
        elif init == "xavier":
            lim = (1.0 if scale is None else scale) * np.sqrt(6.0 / (self.a + self.P))
            W = rng.uniform(-lim, lim, shape)
            W[-1] = 0.0
        elif init == "uniform":
            lim = 0.1 if scale is None else scale
            W = rng.uniform(-lim, lim, shape)
            W[-1] = 0.0
        else:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {init!r}")
        return np.ascontiguousarray(W, dtype=dtype)

    # -- buffers ------------------------------------------------------------------
    def buffers(self, batch, dtype, with_H=True):
        """Preallocated per-step arrays: rows (B,K,a), aux (B,P), D (B,K,S,P), H (B,S,S)."""
        B, K = batch, self.n_terms
        return dict(rows=np.zeros((B, K, self.a), dtype), aux=np.zeros((B, self.P), dtype),
                    D=np.zeros((B, K, self.S, self.P), dtype),
                    H=np.zeros((B, self.S, self.S) if with_H else (0, 0, 0), dtype))

    # -- kernels --------------------------------------------------------------------
    def forward(self, W, x, s_prev, s, rows, aux):
        """Fill ``s`` (B,S), the input rows ``rows`` (B,K,a) and pre-activations ``aux`` (B,P)."""
        self.kernels.forward(W, x, s_prev, s, rows, aux)

    def fill_D(self, W, s_prev, s, rows, aux, D):
        """Fill ``D`` (B,K,S,P) so that ``∂s/∂W = Σ_k rows[:,k] ⊗ D[:,k]``."""
        self.kernels.fill_D(W, s_prev, s, rows, aux, D)

    def fill_H(self, W, s_prev, s, rows, aux, H):
        """Fill ``H = ∂s/∂s₋`` (B,S,S)."""
        self.kernels.fill_H(W, s_prev, s, rows, aux, H)

    def jvp(self, W, s_prev, s, rows, aux, v, out):
        """``out = H v`` per stream (B,S), without forming H."""
        self.kernels.jvp(W, s_prev, s, rows, aux, v, out)

    def step(self, W, x, s_prev, s, rows, aux, D, H, want_H=True):
        """:meth:`forward`, :meth:`fill_D` and (if ``want_H``) :meth:`fill_H` in turn."""
        k = self.kernels
        k.forward(W, x, s_prev, s, rows, aux)
        k.fill_D(W, s_prev, s, rows, aux, D)
        if want_H:
            k.fill_H(W, s_prev, s, rows, aux, H)

    def hidden(self, s):
        """The part of the state the readout sees (``h``; the first n entries)."""
        return s[..., :self.n]

    @property
    def x_terms(self):
        """The terms k whose input rows ``rows[:, k, :n_in]`` hold the input x (all of them
        unless a cell says otherwise): ``∂s/∂x = Σ_{k ∈ x_terms} D_k W[:n_in]ᵀ``, which a
        stacked layer above needs (:mod:`oknumba.stack`)."""
        return range(self.n_terms)

    def param_shapes(self):
        """``{"W": (a, P)}``: the recurrent parameters, by their key in ``model.params``."""
        return {"W": (self.a, self.P)}

    def __repr__(self):
        return f"{type(self).__name__}(n_in={self.n_in}, n_hidden={self.n})"
