"""OK: the Optimal Kronecker-Sum approximation of RTRL (methods ``"ok"``, ``"ok-truncated"``).

Per stream the influence is ``G̃ = Σ_{i=1}^r u_i ⊗ A_i``. The small factors are stored as
``us`` (B, r, a); the large ones **implicitly**, as ``A_i = Σ_j X[j, i] W_j`` — k = r + K
rows ``W_j`` (S×P, stored transposed: the attribute ``term_rows``, not the model's parameter
``W``) and the coefficients ``X`` (B, k, r) of the last reduction. Keeping the recombination deferred lets one pass over the rows do everything that
touches the large side, chunk by chunk (a chunk is c rows of every ``W_jᵀ`` (P, S), sized to
stay in the core's L2 cache):

1. ``A_iᵀ = Σ_j X[j, i] W_jᵀ`` for the chunk (the previous step's recombination);
2. ``W_iᵀ ← A_iᵀ Hᵀ`` for i < r — **one** GEMM (r·c, S)(S, S) per chunk, the dominant
   O(r S² P) cost; the K new terms ``ĥ_k ⊗ D_k`` of ``F_t`` (K = the cell's n_terms: 1; 2 for the GRU; d for a depth-d RHN) fill
   rows r..k−1 (``u`` side: ``[u; ĥ_1 … ĥ_K]``);
3. the Gram matrix ``W Wᵀ`` (k × k) accumulates the chunk's contribution, and for the
   gradient ``v_j = W_jᵀ δ`` its rows.

Then :func:`~oknumba.estimators.reduce.reduce_coefficients` replaces the k terms by r —
unbiased and variance-minimal (rotation construction for k = r + 1, inclusion-probability
sampling otherwise) — writing the new ``us`` and ``X``; ``"ok-truncated"`` keeps the top r
singular components instead (lower error, but **biased**). The gradient of the updated
estimate is ``dW += Σ_i u_i ⊗ (Σ_j X[j, i] v_j)``.

Memory traffic per step is one read and one write of the k·S·P rows (the reference order —
product, Gram pass, recombination pass — makes five). Cost per stream and step:
2 r S² P (products) + k² S P (Gram, lower half) + 2 r k S P (recombination)
+ O(k a² + k³) (small QR and eigen-decomposition); memory O(k S P). Random signs come from
each stream's own splitmix64 state. ``At`` (B, r, P, S), ``A_iᵀ`` explicitly, is available
as a (computed) property.

KF-RTRL and its r-average (:mod:`oknumba.estimators.kf`) share this storage and pass: their
mixing rule is another choice of ``X`` (:func:`~oknumba.estimators.kf_kernels.kf_coefficients`),
needing only the diagonal of the Gram matrix.
"""
import numba
import numpy as np
from numba import prange

from .._jit import kernel
from .._rng import rademacher, uniform
from .._transpose import scaled_transpose
from .._threads import blas_single_threaded, numba_threads
from .._tuning import tuned_choice
from .base import StochasticEstimator
from .kf_kernels import kf_coefficients, row_norms_accumulate
from .reduce import (GRAM_BLOCKS, MODE_OPTIMAL, MODE_TRUNCATED, _check_rank, combine_rows,
                     gram_lower_accumulate, mirror_lower, reduce_coefficients)

#: target bytes of one chunk of the k rows (k·c·S entries): with the r·c·S recombined block
#: and H it stays within a 1 MiB L2 cache
CHUNK_BYTES = 1 << 18


def chunk_rows(k, S, P, itemsize):
    """Rows c of each ``W_jᵀ`` (P, S) per chunk: the most that keep k·c·S entries within
    :data:`CHUNK_BYTES` (at least 1, at most P)."""
    return max(1, min(P, CHUNK_BYTES // (k * S * itemsize)))


@kernel
def chunk_view(W_b, k, S, p0, p1):
    """Rows p0..p1 of every ``W_jᵀ`` in the chunk-major storage: a contiguous (k, (p1−p0)·S)
    block."""
    return W_b[k * S * p0:k * S * p1].reshape(k, (p1 - p0) * S)


@kernel
def transpose_columns(Dk, p0, p1, row):
    """``row`` ((p1−p0)·S) ← columns p0..p1 of ``Dk`` (S, P), transposed: a new term's factor
    ``D_kᵀ`` in the chunk layout."""
    S = Dk.shape[0]
    scaled_transpose(Dk, 0, p0, row[:0], False, False, row.reshape(p1 - p0, S))


@kernel(fastmath=True)
def project_rows(M, d, v_b, p0, cc):
    """``v_b[i, p0 + j] = ⟨M[i·cc + j], d⟩`` for the chunk's rows ``M`` (k·cc, S): the
    gradient projections ``W_jᵀ δ``, four rows per pass over ``d``."""
    m_rows, S = M.shape
    z = M.dtype.type(0.0)
    m4 = m_rows - m_rows % 4
    out = np.empty(4, M.dtype)
    for m in range(0, m_rows, 4):
        if m < m4:
            r0, r1, r2, r3 = M[m], M[m + 1], M[m + 2], M[m + 3]
            a0 = a1 = a2 = a3 = z
            for p in range(S):
                dp = d[p]
                a0 += r0[p] * dp
                a1 += r1[p] * dp
                a2 += r2[p] * dp
                a3 += r3[p] * dp
            out[0], out[1], out[2], out[3] = a0, a1, a2, a3
        else:
            for q in range(m_rows - m):
                a0 = z
                for p in range(S):
                    a0 += M[m + q, p] * d[p]
                out[q] = a0
        for q in range(min(4, m_rows - m)):
            v_b[(m + q) // cc, p0 + (m + q) % cc] = out[q]


def kron_work_size(batch, k, r, a, P, S, chunk):
    """Length of the flat scratch of :func:`kron_step` (see :func:`kron_work`)."""
    return batch * (k * a + k * k + r * chunk * S + k * P + r * P)


@kernel
def kron_work(work, B, k, r, a, P, S, chunk):
    """The named views of the flat per-stream scratch ``work`` of :func:`kron_step`:
    ``us_work`` (B, k, a), the k small factors ``[us; rows]`` before the reduction; ``gram``
    (B, k, k), the Gram matrix of the stored rows; ``Atc`` (B, r·chunk·S), one chunk of the
    combined ``A_iᵀ``; ``v`` (B, k, P), the row projections ``W_jᵀ δ_b``; ``proj`` (B, r, P),
    ``Xᵀ v[b]``. (One array, not five: each array argument costs a kernel call time.)"""
    o1 = B * k * a
    o2 = o1 + B * k * k
    o3 = o2 + B * r * chunk * S
    o4 = o3 + B * k * P
    o5 = o4 + B * r * P
    return (work[:o1].reshape(B, k, a), work[o1:o2].reshape(B, k, k),
            work[o2:o3].reshape(B, r * chunk * S), work[o3:o4].reshape(B, k, P),
            work[o4:o5].reshape(B, r, P))


KIND_OK = 0   # OK reduction (mode selects optimal / truncated)
KIND_KF = 1   # KF-RTRL mixing of every copy (kf, kf-avg)


@kernel
def kron_stream_update(b, kind, mode, chunk, gram_block, H, Wr, X, us, rng_state, rows, D, work,
                       delta, with_gradient):
    """Advance stream b by one step (module docstring): the chunked pass over its rows, then
    the OK reduction or the KF mixing with random draws from ``rng_state[b]``; with
    ``with_gradient`` also ``v[b, j] = W_jᵀ δ_b`` of the new rows (``work``: see
    :func:`kron_work`; ``gram_block``: the Gram pass's register block, :func:`gram_block`)."""
    k, r = X.shape[1:]
    K = rows.shape[1]
    S = H.shape[1]
    P = D.shape[3]
    us_work, gram, Atc, v, _ = kron_work(work, Wr.shape[0], k, r, rows.shape[2], P, S, chunk)
    Xb, gram_b = X[b], gram[b]
    Hb_T = H[b].T
    gram_b[:, :] = 0.0
    for p0 in range(0, P, chunk):
        p1 = min(P, p0 + chunk)
        cc = p1 - p0
        blk = chunk_view(Wr[b], k, S, p0, p1)
        At_c = Atc[b, :r * cc * S].reshape(r, cc * S)
        combine_rows(Xb, blk, At_c)
        np.dot(At_c.reshape(r * cc, S), Hb_T, blk[:r].reshape(r * cc, S))
        for kk in range(K):
            transpose_columns(D[b, kk], p0, p1, blk[r + kk])
        if kind == KIND_OK:
            gram_lower_accumulate(blk, gram_b, gram_block)
        else:
            row_norms_accumulate(blk, gram_b)
        if with_gradient:
            project_rows(blk.reshape(k * cc, S), delta[b], v[b], p0, cc)
    us_work[b, :r] = us[b]
    us_work[b, r:] = rows[b]
    if kind == KIND_OK:
        mirror_lower(gram_b)
        signs = np.empty(k, us.dtype)
        for i in range(k):
            signs[i] = rademacher(rng_state, b)
        offset = uniform(rng_state, b)
        reduce_coefficients(us_work[b], gram_b, r, signs, offset, mode, us[b], Xb)
    else:
        # only sign products matter: the first sign of each copy stays +1
        signs2 = np.ones((r, K + 1), us.dtype)
        for i in range(r):
            for kk in range(1, K + 1):
                signs2[i, kk] = rademacher(rng_state, b)
        kf_coefficients(us_work[b], gram_b, r, signs2, us[b], Xb)


@kernel(fastmath=True)
def add_factor_gradient(us_b, proj_b, scale, dW):
    """``dW += scale · Σ_i outer(us_b[i], proj_b[i])`` for ``us_b`` (r, a), ``proj_b`` (r, P)."""
    r, a = us_b.shape
    P = proj_b.shape[1]
    for q in range(a):          # each row of dW once, its r updates while it is in L1
        dq = dW[q]
        for i in range(r):
            c = scale * us_b[i, q]
            if c != 0.0:
                pr = proj_b[i]
                for j in range(P):
                    dq[j] += c * pr[j]


@kernel
def add_projected_gradient(X_b, v_b, us_b, proj_b, scale, dW):
    """``dW += scale · δᵀ G̃_b`` from the row projections ``v_b[j] = W_jᵀ δ`` (identity
    ``δᵀ(u ⊗ A) = u ⊗ (δᵀA)`` with ``A_i = Σ_j X[j, i] W_j``); ``proj_b`` (r, P) is work."""
    combine_rows(X_b, v_b, proj_b)
    add_factor_gradient(us_b, proj_b, scale, dW)


@kernel
def add_stored_gradient(Wr, X, us, delta, scale, dW, v, proj, chunk):
    """``dW += scale · Σ_b δ_bᵀ G̃_b`` for the current estimate (no update): the projections
    ``W_jᵀ δ_b`` chunk by chunk, then :func:`add_projected_gradient`."""
    B, k, P = v.shape
    S = delta.shape[1]
    for b in range(B):
        for p0 in range(0, P, chunk):
            p1 = min(P, p0 + chunk)
            blk = chunk_view(Wr[b], k, S, p0, p1)
            project_rows(blk.reshape(k * (p1 - p0), S), delta[b], v[b], p0, p1 - p0)
        add_projected_gradient(X[b], v[b], us[b], proj[b], scale, dW)


@kernel
def kron_step(kind, mode, chunk, gram_block, H, Wr, X, us, rng_state, rows, D, work, delta, scale,
              dW, with_gradient):
    """All streams in turn: :func:`kron_stream_update`, then (optionally) the gradient
    ``dW += scale · δ_bᵀ G̃_b`` of the updated estimate (through ``proj[b] = Xᵀ v[b]``)."""
    B, k, r = X.shape
    _, _, _, v, proj = kron_work(work, B, k, r, us.shape[2], D.shape[3], H.shape[1], chunk)
    for b in range(B):
        kron_stream_update(b, kind, mode, chunk, gram_block, H, Wr, X, us, rng_state, rows, D, work,
                           delta, with_gradient)
        if with_gradient:
            add_projected_gradient(X[b], v[b], us[b], proj[b], scale, dW)


@kernel
def kron_fused_step(cell_id, W, s_prev, s, rows, aux, D, H, delta, dW, args):
    """:meth:`KroneckerSumEstimator.step` inside the fused learner step (:mod:`oknumba.fused`):
    :func:`kron_step` with the gradient."""
    kind, mode, chunk, gram_block, Wr, X, us, rng_state, work, scale = args
    kron_step(kind, mode, chunk, gram_block, H, Wr, X, us, rng_state, rows, D, work, delta, scale,
              dW, True)


@kernel(parallel=True)
def kron_step_parallel(kind, mode, chunk, gram_block, H, Wr, X, us, rng_state, rows, D, work,
                       delta, scale, dW, with_gradient):
    """:func:`kron_step` with streams spread over Numba threads (each stream's BLAS calls run
    on its own thread: use with one BLAS thread). Every stream has its own work buffers and
    ``proj[b]``; the gradients are summed after the parallel loop, so no two threads write
    to ``dW``."""
    B, k, r = X.shape
    _, _, _, v, proj = kron_work(work, B, k, r, us.shape[2], D.shape[3], H.shape[1], chunk)
    for b in prange(B):
        kron_stream_update(b, kind, mode, chunk, gram_block, H, Wr, X, us, rng_state, rows, D, work,
                           delta, with_gradient)
        if with_gradient:
            combine_rows(X[b], v[b], proj[b])
    if with_gradient:
        for b in range(Wr.shape[0]):
            add_factor_gradient(us[b], proj[b], scale, dW)


@kernel
def ok_factors(Wr, X, chunk, P, At):
    """``At[b, i] = A_iᵀ = Σ_j X[b, j, i] W_jᵀ`` (B, r, P, S) from the chunked rows."""
    B, r, _, S = At.shape
    k = X.shape[1]
    for b in range(B):
        for p0 in range(0, P, chunk):
            p1 = min(P, p0 + chunk)
            out = np.empty((r, (p1 - p0) * S), At.dtype)
            combine_rows(X[b], chunk_view(Wr[b], k, S, p0, p1), out)
            for i in range(r):
                At[b, i, p0:p1, :] = out[i].reshape(p1 - p0, S)


@kernel
def convert_rows(Wr, chunk, Wt, into_chunks):
    """Copy between the chunk-major storage ``Wr`` (B, k·P·S) of the stored rows and whole
    rows ``Wt`` (B, k, P, S) (each ``W_jᵀ`` in one piece): ``Wt → Wr`` if ``into_chunks`` else
    ``Wr → Wt``.
    A pure permutation of the entries."""
    B, k, P, S = Wt.shape
    for b in range(B):
        for p0 in range(0, P, chunk):
            p1 = min(P, p0 + chunk)
            blk = chunk_view(Wr[b], k, S, p0, p1)
            for j in range(k):
                part = blk[j].reshape(p1 - p0, S)
                if into_chunks:
                    part[:, :] = Wt[b, j, p0:p1, :]
                else:
                    Wt[b, j, p0:p1, :] = part


def gram_block(k, L, dtype):
    """The register block (a value of :data:`~oknumba.estimators.reduce.GRAM_BLOCKS`) of the
    Gram pass over k rows of length L: the fastest of those that give the 4 × 4 block's bits
    on this machine, measured on first use and remembered for this machine and this version of
    the kernels (:func:`oknumba._tuning.tuned_choice`)."""
    dtype = np.dtype(dtype)

    def make_call(block):
        A = np.random.default_rng(0).standard_normal((k, L)).astype(dtype)
        G = np.zeros((k, k), dtype)

        def call():
            G[:] = 0.0
            gram_lower_accumulate(A, G, block)

        return call, G

    return tuned_choice("gram_block", f"{k}x{L}:{dtype.name}", list(GRAM_BLOCKS.values()), make_call)


def use_parallel_streams(batch, work_size, threads=None):
    """Spread streams over threads when there are several of both and each stream's work is
    large enough to amortise the thread hand-off (S·P ≥ 4096); ``threads`` None means Numba's
    current setting."""
    if threads is None:
        threads = numba.get_num_threads()
    return batch >= 2 and threads >= 2 and work_size >= 4096


class KroneckerSumEstimator(StochasticEstimator):
    """Shared by estimators whose estimate is ``G̃ = gradient_scale · Σ_i u_i ⊗ A_i`` per
    stream, kept as ``us`` (B, r, a) and ``A_i = Σ_j X[j, i] W_j`` over k = r + K stored rows
    (module docstring). Subclasses choose the rule (``_kind``, ``_mode``)."""

    takes_rank = True
    fused_step_kernel = staticmethod(kron_fused_step)
    #: G̃ = gradient_scale · Σ_i u_i ⊗ A_i (1/r for the r-KF-RTRL average)
    gradient_scale = 1.0
    _kind = KIND_OK
    _mode = MODE_OPTIMAL

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, seed)
        if rank is None:
            raise ValueError(f"method {self.method!r} needs rank=r (an integer >= 1)")
        self.rank = _check_rank(rank)
        r, S, P = self.rank, cell.S, cell.P
        k = self.n_work = r + cell.n_terms            # k = r + K terms before each reduction
        self.chunk = chunk_rows(k, S, P, self.dtype.itemsize)
        self._gram_block = gram_block(k, self.chunk * S, self.dtype) if self._kind == KIND_OK else 0
        self.us = np.zeros((batch, r, cell.a), self.dtype)
        self.term_rows = np.zeros((batch, k * P * S), self.dtype)
        self.X = np.zeros((batch, k, r), self.dtype)
        self._identity_coefficients(slice(None))
        work_shape = (batch, k, r, cell.a, P, S, self.chunk)
        self._work = np.zeros(kron_work_size(*work_shape), self.dtype)
        self._v, self._proj = kron_work(self._work, *work_shape)[3:]
        self._no_grad = (np.zeros((batch, S), self.dtype), np.zeros((1, 1), self.dtype))

    @property
    def At(self):
        """The explicit large factors ``A_iᵀ`` (B, r, P, S) — computed, read-only."""
        At = np.empty((self.batch, self.rank, self.cell.P, self.cell.S), self.dtype)
        ok_factors(self.term_rows, self.X, self.chunk, self.cell.P, At)
        At.flags.writeable = False
        return At

    def reset(self, mask):
        self.us[mask] = 0.0
        self.term_rows[mask] = 0.0
        self._identity_coefficients(mask)

    def _identity_coefficients(self, mask):
        """``X = [I_r; 0]`` for the selected streams: ``A_i = W_i`` (the rows as stored)."""
        X = self.X[mask]
        X[:] = 0.0
        X[:, np.arange(self.rank), np.arange(self.rank)] = 1.0
        self.X[mask] = X

    def update(self, W, s_prev, s, rows, aux, D, H):
        self._step(H, rows, D, *self._no_grad, False)

    def step(self, W, s_prev, s, rows, aux, D, H, delta, dW):
        self._step(H, rows, D, delta, dW, True)

    def _parallel(self):
        return use_parallel_streams(self.batch, self.cell.S * self.cell.P, self.threads)

    def _step(self, H, rows, D, delta, dW, with_gradient):
        args = (self._kind, self._mode, self.chunk, self._gram_block, H, self.term_rows, self.X, self.us,
                self.rng_state, rows, D, self._work, delta, self.dtype.type(self.gradient_scale),
                dW, with_gradient)
        try:
            if self._parallel():
                with blas_single_threaded(), numba_threads(self.threads):
                    kron_step_parallel(*args)
            else:
                kron_step(*args)
        except np.linalg.LinAlgError:
            raise self.overflow_error() from None

    def fused_step_args(self):
        # the streams-over-threads kernel stays a call of its own (and with threads=None the
        # choice between the two can change from step to step)
        if self._parallel() or (self.threads is None and self.batch > 1):
            return None
        return (self._kind, self._mode, self.chunk, self._gram_block, self.term_rows, self.X, self.us,
                self.rng_state, self._work, self.dtype.type(self.gradient_scale))

    def add_gradient(self, delta, dW):
        add_stored_gradient(self.term_rows, self.X, self.us, delta,
                            self.dtype.type(self.gradient_scale), dW, self._v, self._proj, self.chunk)

    def dense(self):
        return self.gradient_scale * np.einsum("bia,bijs->bsaj", self.us, self.At)

    def load_factors(self, us, At):
        """Set the estimate to ``Σ_i us[:, i] ⊗ At[:, i]ᵀ`` (used by the GPU backend)."""
        B, r, P, S = self.batch, self.rank, self.cell.P, self.cell.S
        Wt = np.zeros((B, self.n_work, P, S), self.dtype)
        Wt[:, :r] = At
        convert_rows(self.term_rows, self.chunk, Wt, True)
        self._identity_coefficients(slice(None))
        self.us[...] = us

    def state_dict(self):
        """``us``, ``X``, ``rng_state`` and the stored rows under ``"W"`` (B, k, P, S; the
        attribute ``term_rows`` in chunk-major order) in chunk-independent
        order: loading continues bit-identically."""
        Wt = np.empty((self.batch, self.n_work, self.cell.P, self.cell.S), self.dtype)
        convert_rows(self.term_rows, self.chunk, Wt, False)
        return {"us": self.us.copy(), "X": self.X.copy(), "W": Wt,
                "rng_state": self.rng_state.copy()}

    def load_state_dict(self, state):
        """Inverse of :meth:`state_dict`; also takes the explicit ``{"us", "At",
        "rng_state"}`` of earlier versions."""
        B, r, k, P, S = self.batch, self.rank, self.n_work, self.cell.P, self.cell.S
        legacy = "W" not in state and "At" in state
        want = {"us": (B, r, self.cell.a), "rng_state": self.rng_state.shape}
        want.update({"At": (B, r, P, S)} if legacy else {"W": (B, k, P, S), "X": (B, k, r)})
        for key, shape in want.items():
            if key not in state or np.shape(state[key]) != shape:
                raise ValueError(f"estimator state mismatch for {key!r}: expected shape {shape},"
                                 f" got {getattr(state.get(key), 'shape', None)}")
        if legacy:
            self.load_factors(state["us"], state["At"])
        else:
            self.us[...] = state["us"]
            self.X[...] = state["X"]
            convert_rows(self.term_rows, self.chunk, np.ascontiguousarray(state["W"], self.dtype),
                         True)
        self.rng_state[...] = state["rng_state"]


class OK(KroneckerSumEstimator):
    """r-OK (method ``"ok"``): theorem-optimal unbiased rank-r Kronecker-sum estimate."""

    method = "ok"


class OKTruncated(OK):
    """Deterministic top-r truncated SVD (method ``"ok-truncated"``). **Biased**: lower
    per-step error than OK but its expectation is not the exact gradient."""

    method = "ok-truncated"
    stochastic = False
    _mode = MODE_TRUNCATED

    def __init__(self, cell, batch, dtype, rank, seed=None):
        super().__init__(cell, batch, dtype, rank, seed=0)
