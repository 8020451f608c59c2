"""Backpropagation through time, whole-sequence and truncated.

Forward pass storing every step's ĥ_k, D_k and H; backward pass

    g_t = δ_t + g_{t+1} H_{t+1},     dW += Σ_k outer(ĥ_k,t, g_tᵀ D_k,t)

where ``g_{t+1} H_{t+1}`` is dropped for a stream whose state was reset before step t+1.
TBPTT with truncation k splits the sequence into chunks ``[0, k), [k, 2k), …``: the state is
carried across chunks but no gradient flows across a chunk boundary (this is the paper's
TBPTT baseline, where the online learner updates every k steps). With ``k ≥ T`` it equals
BPTT.

Online, :class:`TruncatedBPTT` (method ``"tbptt"``) is a *windowed* estimator behind the
interface of :mod:`oknumba.estimators.base`: it keeps the last k steps' ĥ_k, D_k, H, δ and
reset flags and, before every k-th update, backpropagates through them.
"""
import numpy as np

from .._jit import kernel
from .._validate import check_positive_int
from ._kernels import add_outer_rows_D
from .base import Estimator


@kernel(fastmath=True)
def _vjp_H(g, H, out):
    """``out[b] = g[b]ᵀ H[b]`` (the state vector-Jacobian product)."""
    B, S = g.shape
    for b in range(B):
        for i in range(S):
            out[b, i] = 0.0
        for p in range(S):
            gp = g[b, p]
            if gp != 0.0:
                for i in range(S):
                    out[b, i] += gp * H[b, p, i]


def backprop_chunk(rows, D, H, deltas, resets, dW, g, carry):
    """Backpropagate through one chunk of stored steps (no gradient enters from after it).

    ``rows`` (T,B,K,a), ``D`` (T,B,K,S,P), ``H`` (T,B,S,S), ``deltas`` (T,B,S) = ∂L_t/∂s_t,
    ``resets`` (T,B); ``g`` and ``carry`` are (B,S) work arrays. Adds into ``dW``.
    """
    g[:] = 0.0
    for t in range(deltas.shape[0] - 1, -1, -1):
        g += deltas[t]
        add_outer_rows_D(rows[t], D[t], g, g.dtype.type(1.0), dW)
        if t == 0:
            break
        _vjp_H(g, H[t], carry)
        g[:] = carry
        g[resets[t]] = 0.0


def bptt_grad(model, W, V, xs, ys, resets, truncation=None):
    """Loss (nats) and exact (or truncated) gradients ``(dW, dV)`` over one sequence.

    Inputs are already validated: ``xs`` (T,B,n_in), ``ys`` (T,B) int64, ``resets`` (T,B) bool.
    """
    cell = model.cell
    T, B = ys.shape[:2]
    dt = model.dtype
    rows = np.zeros((T, B, cell.n_terms, cell.a), dt)
    aux = np.zeros((B, cell.P), dt)
    D = np.zeros((T, B, cell.n_terms, cell.S, cell.P), dt)
    H = np.zeros((T, B, cell.S, cell.S), dt)
    deltas = np.zeros((T, B, cell.S), dt)
    states = np.zeros((T + 1, B, cell.S), dt)
    dW = np.zeros_like(W)
    dV = np.zeros_like(V)
    out, g_out = np.zeros((B, model.n_out), dt), np.zeros((B, model.n_out), dt)
    loss = 0.0
    for t in range(T):
        s_prev = states[t]
        s_prev[resets[t]] = 0.0
        cell.forward(W, xs[t], s_prev, states[t + 1], rows[t], aux)
        cell.fill_D(W, s_prev, states[t + 1], rows[t], aux, D[t])
        cell.fill_H(W, s_prev, states[t + 1], rows[t], aux, H[t])
        loss += model.readout.step(V, states[t + 1], cell.n, ys[t], out, g_out, dV, deltas[t])
    g = np.zeros((B, cell.S), dt)
    carry = np.zeros((B, cell.S), dt)
    k = T if truncation is None else truncation
    for t0 in range(0, T, k):
        t1 = min(t0 + k, T)
        backprop_chunk(rows[t0:t1], D[t0:t1], H[t0:t1], deltas[t0:t1], resets[t0:t1], dW, g, carry)
    return loss, dW, dV


class TruncatedBPTT(Estimator):
    """TBPTT(k) (method ``"tbptt"``): the gradient of the last k steps' losses backpropagated
    within those k steps, applied every k steps (``update_interval = k``).

    The window ``rows`` (k,B,K,a), ``D`` (k,B,K,S,P), ``H`` (k,B,S,S), ``deltas`` (k,B,S),
    ``resets`` (k,B) holds one slot per step of the current chunk; the cell and the readout
    write the step's slot directly (:meth:`cell_buffers`). No influence is kept
    (``has_influence`` is False): the gradient exists only at the end of a window.
    """

    method = "tbptt"
    has_influence = False

    def __init__(self, cell, batch, dtype, truncation=None):
        super().__init__(cell, batch, dtype)
        if truncation is None:
            raise ValueError("method 'tbptt' needs truncation=k (an integer >= 1)")
        k = self.truncation = check_positive_int(truncation, "truncation")
        self.update_interval = k
        B, dt = batch, self.dtype
        self.window = dict(rows=np.zeros((k, B, cell.n_terms, cell.a), dt),
                           D=np.zeros((k, B, cell.n_terms, cell.S, cell.P), dt),
                           H=np.zeros((k, B, cell.S, cell.S), dt),
                           deltas=np.zeros((k, B, cell.S), dt),
                           resets=np.zeros((k, B), bool))
        self._carry = np.zeros((2, B, cell.S), dt)
        self._pending_reset = None

    def reset(self, mask):
        self._pending_reset = mask        # recorded in the step's slot by cell_buffers

    def cell_buffers(self, buffers, delta, step):
        """The window slot of this step (``step mod k``), with its reset flags recorded."""
        w, slot = self.window, step % self.truncation
        w["resets"][slot] = False if self._pending_reset is None else self._pending_reset
        self._pending_reset = None
        return w["rows"][slot], w["D"][slot], w["H"][slot], w["deltas"][slot]

    def update(self, W, s_prev, s, rows, aux, D, H):
        pass                              # the step's quantities are already in the window

    def add_gradient(self, delta, dW):
        pass                              # the gradient is formed once per window

    def step(self, W, s_prev, s, rows, aux, D, H, delta, dW):
        pass

    def before_update(self, dW):
        """``dW +=`` the window's backpropagated gradient (:func:`backprop_chunk`)."""
        w = self.window
        backprop_chunk(w["rows"], w["D"], w["H"], w["deltas"], w["resets"], dW,
                       self._carry[0], self._carry[1])

    def dense(self):
        raise NotImplementedError("tbptt keeps no influence estimate (it backpropagates its window)")

    def _arrays(self):
        return self.window
