"""The estimator interface: one shape for every gradient method.

An estimator tracks, per stream b of a batch, an estimate ``G̃`` of the influence
``G_t = ds_t/dW`` (S × a·P) following the RTRL recursion ``G_t = H_t G_{t-1} + F_t``
(Williams & Zipser 1989), ``F_t = Σ_k ĥ_k ⊗ D_k`` (the Kronecker form of Mujika et al. 2018,
arXiv 1805.10842). The calls, in the order a step makes them:

* ``reset(mask)`` — zero the influence of the streams where ``mask`` (B,) is True (their
  state was reset before this step);
* ``update(W, s_prev, s, rows, aux, D, H)`` — advance with this step's cell quantities;
  ``H`` is only filled when ``needs_H`` is True (UORO uses ``cell.jvp`` instead);
* ``add_gradient(delta, dW)`` — ``dW += Σ_b delta[b]ᵀ G̃[b]`` reshaped (a×P), the gradient of
  a loss whose derivative with respect to ``s_t`` is ``delta`` (B,S);
* ``step(W, s_prev, s, rows, aux, D, H, delta, dW)`` — ``update`` then ``add_gradient`` in
  as few kernel calls as the method allows (the learner's hot path);
* ``dense()`` — ``G̃`` as a dense (B, S, a, P) array (tests and noise studies, small sizes).

Two hooks let a *windowed* method (TBPTT, :class:`~oknumba.estimators.bptt.TruncatedBPTT`)
use the same interface: ``cell_buffers(buffers, delta, step)`` returns the arrays the cell
and the readout write this step (the learner's own by default, a window slot for TBPTT),
and ``before_update(dW)`` runs before each optimizer update (TBPTT backpropagates its window
there). ``update_interval`` is the update period the method imposes (None: any).

``state_dict()`` / ``load_state_dict()`` return and take every array and random state
needed to continue bit-identically (checkpoints).
"""
import numpy as np

from .._rng import seed_streams


class Estimator:
    #: the ``method`` name accepted by ``sequence_grad`` and ``OnlineLearner``
    method = None
    #: whether ``update`` needs the dense state Jacobian H
    needs_H = True
    #: whether the estimate is random (one unbiased sample of the exact influence)
    stochastic = False
    #: whether the method keeps an influence estimate (``dense()``; TBPTT does not)
    has_influence = True
    #: the steps between optimizer updates the method imposes (None: any ``update_every``)
    update_interval = None
    #: threads for the estimator's parallel kernels (None: Numba's current setting); the
    #: learner sets its own ``threads`` here
    threads = None

    def __init__(self, cell, batch, dtype):
        self.cell = cell
        self.batch = batch
        self.dtype = np.dtype(dtype)

    def reset(self, mask):
        raise NotImplementedError

    def update(self, W, s_prev, s, rows, aux, D, H):
        raise NotImplementedError

    def add_gradient(self, delta, dW):
        raise NotImplementedError

    def step(self, W, s_prev, s, rows, aux, D, H, delta, dW):
        self.update(W, s_prev, s, rows, aux, D, H)
        self.add_gradient(delta, dW)

    def cell_buffers(self, buffers, delta, step):
        """``(rows, D, H, delta)`` the cell and readout write at ``step``: by default the
        learner's ``buffers`` and ``delta``."""
        return buffers["rows"], buffers["D"], buffers["H"], delta

    def before_update(self, dW):
        """Called before each optimizer update (nothing to do for influence estimators)."""

    #: a kernel ``(cell_id, W, s_prev, s, rows, aux, D, H, delta, dW, args)`` doing what
    #: :meth:`step` does, for the fused learner step (:mod:`oknumba.fused`); None: no fusing
    fused_step_kernel = None

    def fused_step_args(self):
        """The ``args`` tuple of ``fused_step_kernel`` (the estimator's own arrays and
        settings, as :meth:`step` passes them), or None where :meth:`step` cannot be fused."""
        return None

    def overflow_error(self):
        """The error for a ``LinAlgError`` inside the method's kernels (the OK reduction meets
        inf/NaN when the products overflowed)."""
        return FloatingPointError(f"the {self.method} influence estimate overflowed {self.dtype.name}"
                                  " (inputs or weights too large): lower lr, scale the inputs or use"
                                  " float64")

    def dense(self):
        raise NotImplementedError

    def state_dict(self):
        return {k: v.copy() for k, v in self._arrays().items()}

    def load_state_dict(self, state):
        for k, v in self._arrays().items():
            if k not in state or state[k].shape != v.shape:
                raise ValueError(f"estimator state mismatch for {k!r}: expected shape {v.shape},"
                                 f" got {getattr(state.get(k), 'shape', None)}")
            v[...] = state[k]

    def _arrays(self):
        return {}


class StochasticEstimator(Estimator):
    """An estimator drawing its random signs from per-stream splitmix64 states
    (:mod:`oknumba._rng`), kept in ``rng_state`` (B,) uint64 and checkpointed with it."""

    stochastic = True

    def __init__(self, cell, batch, dtype, seed=None):
        super().__init__(cell, batch, dtype)
        self.rng_state = seed_streams(seed, batch)
