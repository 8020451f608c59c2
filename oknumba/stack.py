"""Stacked recurrent layers: L cells, layer l reading layer l−1's hidden output at the same
step, the readout reading the top layer — trained online by every method.

Notation: layer l (0 = bottom) has state ``s_l`` (S_l), hidden output ``h_l`` (its first n_l
entries), input ``x_l = h_{l−1,t}`` (``x`` for l = 0), weights ``W_l`` (a_l × P_l) and, from
its cell, per step the immediate-influence terms ``Σ_k ĥ_{l,k} ⊗ D_{l,k}``, the state Jacobian
``H_l = ∂s_l,t/∂s_l,t−1`` and the input Jacobian

    X_l = ∂s_l,t/∂x_l,t = Σ_k D_{l,k} W_l[:n_in,l]ᵀ     (the terms whose rows read x_l).

**The joint state** is ``s = (s_{L−1}, …, s_1, s_0)`` — top layer first, so the readout reads
``s[:n_{L−1}]`` as for one cell, and the layers a layer influences (itself and those above)
form the *leading* block of ``s``: its downstream state, ``S_down,l = S_l + … + S_{L−1}``
entries. Its Jacobian ``∂s_t/∂s_{t−1}`` is block triangular: block (m, j) is zero for m < j
(no top-down connections), ``H_j`` for m = j and ``X_m ·[h rows] block (m−1, j)`` for m > j.

**Why every method applies unchanged.** ``W_l`` reaches only the downstream state, so its
influence is ``G_l = ∂s_down,l/∂W_l`` (S_down,l × a_l·P_l) with the RTRL recursion

    G_l,t = H_down,l,t G_l,t−1 + Σ_k ĥ_{l,k} ⊗ D_down,l,k,
    D_down,l,k = (…, X_{l+2} X_{l+1}[h] D_{l,k}[h], X_{l+1} D_{l,k}[h], D_{l,k})   (stacked rows)

(``[h]``: the rows of the hidden output), where ``H_down,l`` is the leading S_down,l block of
the joint Jacobian. The immediate term of a layer over its downstream state is still one
Kronecker product per cell term — the cell's ĥ with a taller right factor — so each layer is
an ordinary single-layer problem on a *virtual cell* (:class:`LayerView`: sizes S_down,l,
P_l, a_l) and OK's theorem-optimal reduction, KF-RTRL, UORO, exact RTRL and (T)BPTT run on it
as they are (Benzing et al. 2019, arXiv 1902.03993, §3, state the reduction for one
recurrent layer with immediate influence ĥ ⊗ D; nothing in it depends on D being square or
on its row count). The loss gradient of ``W_l`` is ``δ_down,lᵀ G_l`` with ``δ`` the joint
state's loss derivative (nonzero only in the top layer's h).

**Cost** of layer l per stream and step: the method's products with S_down,l in place of S
— for OK r terms of S_down,l × S_down,l × P_l (rank r_l), for exact RTRL S_down,l² a_l P_l —
so lower layers cost more; memory r·(a_l + S_down,l P_l) for OK. Building the Jacobians
adds O(S_down,l · n · P_l) per layer for D_down and O(S²·n) for the joint H.
"""
import numbers

import numpy as np

from .cells import make_cell


def layer_list(value, L, name, kind):
    """``value`` for each of L layers: a scalar repeated, or a list/tuple of length L."""
    if isinstance(value, (list, tuple)):
        if len(value) != L:
            raise ValueError(f"{name} has {len(value)} entries for {L} layers; give one per layer or a"
                             f" single {kind}")
        return list(value)
    return [value] * L


def count_layers(layers, **values):
    """The number of layers: ``layers`` if given, else the common length of the lists among
    ``values`` (name → value; 1 if none is a list)."""
    for name, v in values.items():
        if isinstance(v, (list, tuple)) and not v:
            raise ValueError(f"{name} is an empty list: give one entry per layer")
    lengths = {len(v) for v in values.values() if isinstance(v, (list, tuple))}
    if layers is None:
        if len(lengths) > 1:
            raise ValueError(f"per-layer lists of different lengths {sorted(lengths)}: give one entry per layer")
        return lengths.pop() if lengths else 1
    if isinstance(layers, bool) or not isinstance(layers, numbers.Integral) or layers < 1:
        raise ValueError(f"layers must be an integer >= 1, got {layers!r}")
    return int(layers)


class LayerView:
    """Layer l of a stack as its estimator sees it: a cell with the downstream state
    (S_down,l entries), the layer's input rows (a_l), gate columns (P_l) and terms. ``jvp``
    applies the current downstream Jacobian ``H`` (set by :class:`StackRun` each step)."""

    def __init__(self, cell, S_down):
        self.S, self.P, self.a, self.n_terms = S_down, cell.P, cell.a, cell.n_terms
        self.H = None

    def jvp(self, W, s_prev, s, rows, aux, v, out):
        """``out = H_down v`` per stream."""
        np.matmul(self.H, v[:, :, None], out=out[:, :, None])


class Stack:
    """L recurrent cells, bottom first (``layers[0]`` reads the input), presented to the model
    with the joint state (top layer first; see the module docstring)."""

    name = "stack"
    max_depth = 1

    def __init__(self, cells):
        self.layers = list(cells)
        self.L = L = len(self.layers)
        sizes = [c.S for c in self.layers]
        self.S = sum(sizes)
        #: where layer l's state starts in the joint state (top first)
        self.offsets = [sum(sizes[l + 1:]) for l in range(L)]
        #: S_down,l: the leading block of the joint state that layer l influences
        self.S_down = [self.offsets[l] + sizes[l] for l in range(L)]
        top = self.layers[-1]
        self.n = top.n               # the readout reads the top layer's h
        self.n_in = self.layers[0].n_in
        self.depth = tuple(c.depth for c in self.layers)

    @property
    def names(self):
        return [c.name for c in self.layers]

    @property
    def sizes(self):
        return [c.n for c in self.layers]

    def param_shapes(self):
        return {f"W{l}": (c.a, c.P) for l, c in enumerate(self.layers)}

    def init_W(self, rng, dtype, init, scale):
        return {f"W{l}": c.init_W(rng, dtype, init, scale) for l, c in enumerate(self.layers)}

    def hidden(self, s):
        return s[..., :self.n]

    def views(self):
        return [LayerView(c, self.S_down[l]) for l, c in enumerate(self.layers)]

    # -- per-step work ------------------------------------------------------------------
    def workspace(self, B, dtype, jacobians=True):
        """Scratch of one step: per-layer states, inputs, own D/H and input Jacobians, and the
        joint state Jacobian."""
        cs, dt = self.layers, dtype
        ws = dict(s_prev=[np.zeros((B, c.S), dt) for c in cs], s=[np.zeros((B, c.S), dt) for c in cs],
                  x=[None] + [np.zeros((B, cs[l - 1].n), dt) for l in range(1, self.L)],
                  rows=[np.zeros((B, c.n_terms, c.a), dt) for c in cs],
                  aux=[np.zeros((B, c.P), dt) for c in cs])
        if jacobians:
            ws.update(D=[np.zeros((B, c.n_terms, c.S, c.P), dt) for c in cs],
                      H=[np.zeros((B, c.S, c.S), dt) for c in cs],
                      X=[None] + [np.zeros((B, cs[l].S, cs[l - 1].n), dt) for l in range(1, self.L)],
                      Hj=np.zeros((B, self.S, self.S), dt))
        return ws

    def forward(self, Ws, x, s_prev, s, ws, rows=None):
        """Advance the joint state ``s_prev`` → ``s`` (B, S) on input ``x``, layer by layer;
        ``rows`` (per layer, default the workspace's) receive the cells' input rows."""
        rows = ws["rows"] if rows is None else rows
        for l, c in enumerate(self.layers):
            o = self.offsets[l]
            sp, sl = ws["s_prev"][l], ws["s"][l]
            sp[...] = s_prev[:, o:o + c.S]
            c.forward(Ws[l], x if l == 0 else ws["x"][l], sp, sl, rows[l], ws["aux"][l])
            s[:, o:o + c.S] = sl
            if l + 1 < self.L:
                ws["x"][l + 1][...] = sl[:, :c.n]

    def jacobians(self, Ws, ws, rows, D, H):
        """After :meth:`forward`: fill each layer's downstream immediate factors ``D[l]``
        (B, K_l, S_down,l, P_l) and, if ``H`` is not None, downstream state Jacobians ``H[l]``
        (B, S_down,l, S_down,l)."""
        cs, off = self.layers, self.offsets
        for l, c in enumerate(cs):
            sp, sl, aux = ws["s_prev"][l], ws["s"][l], ws["aux"][l]
            c.fill_D(Ws[l], sp, sl, rows[l], aux, ws["D"][l])
            if H is not None:
                c.fill_H(Ws[l], sp, sl, rows[l], aux, ws["H"][l])
            if l > 0:                               # X_l = Σ_k D_l,k W_l[:n_in]ᵀ over x-terms
                Dx = ws["D"][l][:, list(c.x_terms)].sum(axis=1)
                np.matmul(Dx, Ws[l][:c.n_in].T, out=ws["X"][l])
        for l, c in enumerate(cs):
            Dd = D[l]
            Dd[:, :, off[l]:off[l] + c.S] = ws["D"][l]
            for m in range(l + 1, self.L):
                below = Dd[:, :, off[m - 1]:off[m - 1] + cs[m - 1].n]
                Dd[:, :, off[m]:off[m] + cs[m].S] = np.matmul(ws["X"][m][:, None], below)
        if H is None:
            return
        Hj = ws["Hj"]
        for j, c in enumerate(cs):
            cols = slice(off[j], off[j] + c.S)
            Hj[:, cols, cols] = ws["H"][j]
            for m in range(j + 1, self.L):
                below = Hj[:, off[m - 1]:off[m - 1] + cs[m - 1].n, cols]
                Hj[:, off[m]:off[m] + cs[m].S, cols] = np.matmul(ws["X"][m], below)
        for l in range(self.L):
            Sd = self.S_down[l]
            H[l][...] = Hj[:, :Sd, :Sd]

    def __repr__(self):
        return f"Stack({', '.join(repr(c) for c in self.layers)})"


def make_stack(cells, n_in, hidden, depths):
    built = []
    for l, (name, n, d) in enumerate(zip(cells, hidden, depths)):
        if not isinstance(name, str):
            raise TypeError(f"cell of layer {l} must be a string naming the cell, got {type(name).__name__}")
        built.append(make_cell(name, n_in if l == 0 else built[-1].n, n, depth=d))
    return Stack(built)


class StackRun:
    """One estimator per layer over its :class:`LayerView`, behind the single-estimator
    interface the learner and ``sequence_grad`` drive (reset, step, before_update, state)."""

    def __init__(self, stack, estimators, batch, dtype):
        self.stack, self.estimators = stack, list(estimators)
        self.views = [e.cell for e in self.estimators]
        B, dt = batch, np.dtype(dtype)
        self.ws = stack.workspace(B, dt)
        self.own = [dict(rows=stack_rows, D=np.zeros((B, v.n_terms, v.S, v.P), dt),
                         H=np.zeros((B, v.S, v.S), dt))
                    for v, stack_rows in zip(self.views, self.ws["rows"])]
        self.deltas = [np.zeros((B, v.S), dt) for v in self.views]
        self.cur = None
        self.update_interval = self.estimators[0].update_interval

    @property
    def threads(self):
        return self.estimators[0].threads

    @threads.setter
    def threads(self, n):
        for e in self.estimators:
            e.threads = n

    def reset(self, mask):
        for e in self.estimators:
            e.reset(mask)

    def forward(self, Ws, x, s_prev, s, step):
        """The stack's forward step and Jacobians, written where each layer's estimator wants
        them (its window slot for TBPTT)."""
        cur = self.cur = [e.cell_buffers(o, d, step) for e, o, d in zip(self.estimators, self.own, self.deltas)]
        rows = [c[0] for c in cur]
        self.stack.forward(Ws, x, s_prev, s, self.ws, rows=rows)
        self.stack.jacobians(Ws, self.ws, rows, [c[1] for c in cur], [c[2] for c in cur])

    def backward(self, Ws, delta, grads):
        """Each layer's gradient from the joint loss derivative ``delta`` (B, S)."""
        ws = self.ws
        for l, (e, v, (rows, D, H, dl)) in enumerate(zip(self.estimators, self.views, self.cur)):
            dl[...] = delta[:, :v.S]
            v.H = H
            e.step(Ws[l], ws["s_prev"][l], ws["s"][l], rows, ws["aux"][l], D, H, dl, grads[f"W{l}"])

    def before_update(self, grads):
        for l, e in enumerate(self.estimators):
            e.before_update(grads[f"W{l}"])

    def state_dict(self):
        return {f"layer{l}.{k}": v for l, e in enumerate(self.estimators) for k, v in e.state_dict().items()}

    def load_state_dict(self, state):
        for l, e in enumerate(self.estimators):
            p = f"layer{l}."
            e.load_state_dict({k[len(p):]: v for k, v in state.items() if k.startswith(p)})


def layer_seed(seed, l):
    """An independent seed for layer l's random signs (layer 0 keeps ``seed``)."""
    if l == 0 or seed is None:
        return seed
    if isinstance(seed, np.random.Generator):
        return seed
    return int(np.random.SeedSequence([int(seed), l]).generate_state(1, dtype=np.uint64)[0] >> 1)


def make_stack_run(method, stack, batch, dtype, rank=None, seed=None, truncation=None):
    """Per-layer estimators of ``method`` (``rank`` an int or one per layer) for a stack."""
    from .estimators import make_estimator

    ranks = layer_list(rank, stack.L, "rank", "integer")
    ests = [make_estimator(method, view, batch, dtype, rank=ranks[l], seed=layer_seed(seed, l),
                           truncation=truncation)
            for l, view in enumerate(stack.views())]
    return StackRun(stack, ests, batch, dtype)


def stack_bptt_grad(model, Ws, V, xs, ys, resets, truncation=None):
    """Loss and exact (or truncated) BPTT gradients ``({"W0": …, …}, dV)`` of a stack over one
    validated sequence. Layer l backpropagates through its downstream block alone — exact,
    since no state below l depends on the layers at or above it."""
    from .estimators.bptt import backprop_chunk

    stack, dt = model.cell, model.dtype
    T, B = ys.shape[:2]
    ws = stack.workspace(B, dt)
    views = stack.views()
    rows = [np.zeros((T, B, v.n_terms, v.a), dt) for v in views]
    D = [np.zeros((T, B, v.n_terms, v.S, v.P), dt) for v in views]
    H = [np.zeros((T, B, v.S, v.S), dt) for v in views]
    deltas = np.zeros((T, B, stack.S), dt)
    states = np.zeros((T + 1, B, stack.S), dt)
    dV = np.zeros_like(V)
    out, g_out = np.zeros((B, model.n_out), dt), np.zeros((B, model.n_out), dt)
    loss = 0.0
    for t in range(T):
        s_prev = states[t]
        s_prev[resets[t]] = 0.0
        rows_t = [r[t] for r in rows]
        stack.forward(Ws, xs[t], s_prev, states[t + 1], ws, rows=rows_t)
        stack.jacobians(Ws, ws, rows_t, [d[t] for d in D], [h[t] for h in H])
        loss += model.readout.step(V, states[t + 1], stack.n, ys[t], out, g_out, dV, deltas[t])
    grads = {}
    k = T if truncation is None else truncation
    for l, v in enumerate(views):
        dW = grads[f"W{l}"] = np.zeros_like(Ws[l])
        dl = np.ascontiguousarray(deltas[:, :, :v.S])
        g, carry = np.zeros((B, v.S), dt), np.zeros((B, v.S), dt)
        for t0 in range(0, T, k):
            t1 = min(t0 + k, T)
            backprop_chunk(rows[l][t0:t1], D[l][t0:t1], H[l][t0:t1], dl[t0:t1], resets[t0:t1], dW, g, carry)
    return loss, grads, dV


def run_stack_estimators(model, Ws, V, xs, ys, resets, run, on_step=None):
    """:func:`oknumba.functional.run_estimator` for a stack: ``run`` is a :class:`StackRun`;
    returns ``(loss, {"W0": …, …}, dV)``."""
    stack, dt = model.cell, model.dtype
    T, B = ys.shape[:2]
    s_prev, s = model.zero_state(B), model.zero_state(B)
    delta = np.zeros((B, stack.S), dt)
    grads = {f"W{l}": np.zeros_like(W) for l, W in enumerate(Ws)}
    dV = np.zeros_like(V)
    out, g = np.zeros((B, model.n_out), dt), np.zeros((B, model.n_out), dt)
    loss = 0.0
    for t in range(T):
        if resets[t].any():
            s_prev[resets[t]] = 0.0
            run.reset(resets[t])
        run.forward(Ws, xs[t], s_prev, s, t)
        loss += model.readout.step(V, s, stack.n, ys[t], out, g, dV, delta)
        run.backward(Ws, delta, grads)
        if on_step is not None:
            on_step(t, run, delta)
        s_prev, s = s, s_prev
    return loss, grads, dV
