"""Backpropagation through time, whole-sequence and truncated.

Forward pass storing every step's ĥ_k, D_k and H; backward pass

    g_t = δ_t + g_{t+1} H_{t+1},     dW += Σ_k outer(ĥ_k,t, g_tᵀ D_k,t)

where ``g_{t+1} H_{t+1}`` is dropped for a stream whose state was reset before step t+1.
TBPTT with truncation k splits the sequence into chunks ``[0, k), [k, 2k), …``: the state is
carried across chunks but no gradient flows across a chunk boundary (this is the paper's
TBPTT baseline, where the online learner updates every k steps). With ``k ≥ T`` it equals
BPTT.
"""
import numpy as np

from .._jit import kernel
from ..model import readout_loss_grad
from ._kernels import add_outer_rows_D


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
    T, B = ys.shape
    dt = model.dtype
    rows = np.zeros((T, B, cell.n_terms, cell.a), dt)
    aux = np.zeros((B, cell.P), dt)
    D = np.zeros((T, B, cell.n_terms, cell.S, cell.P), dt)
    H = np.zeros((T, B, cell.S, cell.S), dt)
    deltas = np.zeros((T, B, cell.S), dt)
    states = np.zeros((T + 1, B, cell.S), dt)
    dW = np.zeros_like(W)
    dV = np.zeros_like(V)
    loss = 0.0
    for t in range(T):
        s_prev = states[t]
        s_prev[resets[t]] = 0.0
        cell.forward(W, xs[t], s_prev, states[t + 1], rows[t], aux)
        cell.fill_D(W, s_prev, states[t + 1], rows[t], aux, D[t])
        cell.fill_H(W, s_prev, states[t + 1], rows[t], aux, H[t])
        loss += readout_loss_grad(V, states[t + 1], ys[t], cell.n, dV, deltas[t])
    g = np.zeros((B, cell.S), dt)
    carry = np.zeros((B, cell.S), dt)
    k = T if truncation is None else truncation
    for t0 in range(0, T, k):
        t1 = min(t0 + k, T)
        backprop_chunk(rows[t0:t1], D[t0:t1], H[t0:t1], deltas[t0:t1], resets[t0:t1], dW, g, carry)
    return loss, dW, dV
