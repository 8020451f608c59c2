"""Character-level language modelling on real text (the OK paper's character-level PTB task).

Pipeline::

    symbols = read_symbols(path)                 # str of characters, or int64 ids for .npy
    corpus  = load_corpus(train, valid)          # vocabulary from train, ids for both splits
    streams = corpus.train_streams(batch=32)     # B streams, evenly spaced, reset every 100
    x, y, reset = streams.next()                 # one character per stream per step
    for xs, ys in corpus.eval_chunks(1000): ...  # evaluation, state carried through the text
    bits_per_char(total_nats, count)

Training follows Benzing et al. 2019 (arXiv 1902.03993) and the code released with it:
``B`` stream pointers start evenly spaced through the training ids (stream ``b`` at
``b·N // B``), each advances one character per step and wraps around; at step ``k`` the
input is ``ids[p_b]`` and the target ``ids[(p_b + 1) mod N]``; state and influence are reset
for all streams at the first step and every ``reset_every = 100`` steps.
Evaluation runs one stream over the whole evaluation text with no resets: input ``ids[t]``,
target ``ids[t + 1]``, ``t = 0..N−2``, and reports ``bits/char = Σ nats / (N − 1) / ln 2``.

Corpus files (formats ``ptb-char``, ``npy``, ``text``, optionally gzipped) and the
vocabulary are read by :mod:`oknumba.tasks.text`; its public names are re-exported here.
This module holds :func:`load_corpus` and :class:`Corpus` (both splits encoded with one
vocabulary), the training streams (:class:`CharLMStreams`) and evaluation
(:func:`eval_chunks`, :func:`bits_per_char`). The data sets themselves are not part of
the package (PTB is LDC-licensed); see ``scripts/download_ptb.py``. Only NumPy and the
standard library are used here.
"""
import math
import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from .._validate import check_positive_int
from .text import _UNKNOWN_MODES, FORMATS, UNK, Vocabulary, _check_fmt, detect_format, read_symbols

__all__ = ["FORMATS", "UNK", "one_hot", "detect_format", "read_symbols", "Vocabulary", "Corpus",
           "load_corpus", "CharLMStreams", "eval_chunks", "bits_per_char"]

_STATE_VERSION = 1


def one_hot(ids, n_symbols, dtype=np.float64):
    """One-hot encode integer ids: ``out[..., k] = 1`` where ``ids[...] == k``.

    Ids equal to ``-1`` ("no symbol", e.g. padding) give an all-zero row.
    """
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (n_symbols,), dtype=dtype)
    valid = ids >= 0
    np.put_along_axis(out, np.where(valid, ids, 0)[..., None], valid[..., None].astype(dtype), axis=-1)
    return out


# --------------------------------------------------------------------------------------------
# corpus
# --------------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """A training split and an optional evaluation split encoded with one vocabulary.

    Attributes
    ----------
    vocab : Vocabulary
        Built from the training split; has an ``<unk>`` id only when the evaluation split
        held symbols unseen in training and ``unknown="map"`` was used.
    train_ids, valid_ids : ndarray of int64 (``valid_ids`` None without an evaluation split)
    n_unknown : int
        Number of evaluation symbols mapped to ``<unk>``.
    train_path, valid_path : str or None
    """

    vocab: Vocabulary
    train_ids: np.ndarray
    valid_ids: np.ndarray = None
    n_unknown: int = 0
    train_path: str = None
    valid_path: str = None
    formats: tuple = field(default=())

    def train_streams(self, batch, reset_every=100, seed=None):
        """:class:`CharLMStreams` over ``train_ids`` with one-hot width ``vocab.size``."""
        return CharLMStreams(self.train_ids, batch, reset_every=reset_every, seed=seed, n_symbols=self.vocab.size)

    def eval_chunks(self, chunk_len=1000, streams=1, ids=None):
        """:func:`eval_chunks` over ``valid_ids`` (or ``ids``) with one-hot width ``vocab.size``."""
        if ids is None:
            if self.valid_ids is None:
                raise ValueError("this corpus has no evaluation split; pass valid= to load_corpus or ids= here")
            ids = self.valid_ids
        return eval_chunks(ids, chunk_len=chunk_len, n_symbols=self.vocab.size, streams=streams)

    def summary(self):
        """JSON-serialisable description for ``config.json`` (vocabulary included)."""
        return {"train_path": self.train_path, "valid_path": self.valid_path, "formats": list(self.formats),
                "n_train": int(self.train_ids.size),
                "n_valid": None if self.valid_ids is None else int(self.valid_ids.size),
                "n_unknown": int(self.n_unknown), "vocab": self.vocab.to_dict()}


def load_corpus(train, valid=None, fmt="auto", unknown="map"):
    """Read a training split (and optionally an evaluation split) and encode both.

    The vocabulary is built from the training split only (:meth:`Vocabulary.from_symbols`:
    sorted distinct characters, or ids ``0..max`` for ``.npy``). Symbols of ``valid`` outside
    it are handled by ``unknown``:

    * ``"map"`` (default): an ``<unk>`` id is reserved at the end of the vocabulary (only
      if some symbol is unknown) and they are mapped there; ``Corpus.n_unknown`` counts them.
    * ``"error"``: raise ValueError naming the first unknown symbol and its position.

    Parameters
    ----------
    train, valid : str or os.PathLike
        Corpus files, see :func:`read_symbols`.
    fmt : {"auto", "ptb-char", "npy", "text"}
        Format of both files; ``"auto"`` decides for each file from its name.
    unknown : {"map", "error"}

    Returns
    -------
    Corpus
    """
    _check_fmt(fmt)
    if unknown not in _UNKNOWN_MODES:
        raise ValueError(f"unknown must be 'map' or 'error', got {unknown!r}")
    train_fmt = detect_format(train) if fmt == "auto" else fmt
    train_syms = read_symbols(train, train_fmt)
    vocab = Vocabulary.from_symbols(train_syms)
    train_ids = vocab.encode(train_syms, name=f"train split {str(train)!r}")
    formats = (train_fmt,)
    valid_ids, n_unknown = None, 0
    if valid is not None:
        valid_fmt = detect_format(valid) if fmt == "auto" else fmt
        valid_syms = read_symbols(valid, valid_fmt)
        if isinstance(valid_syms, str) != isinstance(train_syms, str):
            raise ValueError(f"train ({train_fmt}) and valid ({valid_fmt}) must both be text or both be .npy id"
                             " arrays; pass matching files or an explicit fmt")
        name = f"valid split {str(valid)!r}"
        n_unknown = int(vocab.unknown_positions(valid_syms).size)
        if n_unknown and unknown == "error":
            vocab.encode(valid_syms, unknown="error", name=name)  # raises with the first unknown symbol
        if n_unknown:
            vocab = vocab.with_unk()
        valid_ids = vocab.encode(valid_syms, unknown="map", name=name)
        formats = (train_fmt, valid_fmt)
    return Corpus(vocab=vocab, train_ids=train_ids, valid_ids=valid_ids, n_unknown=n_unknown,
                  train_path=os.fspath(train), valid_path=None if valid is None else os.fspath(valid),
                  formats=formats)


# --------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------
def _check_ids(ids, name="ids", minimum=2):
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of symbol ids (encode the text with a Vocabulary"
                        f" first), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < minimum:
        raise ValueError(f"{name} must hold at least {minimum} symbols (an input and its next-symbol target),"
                         f" got {arr.size}")
    if arr.min() < 0:
        raise ValueError(f"{name} must hold ids >= 0, found {arr.min()}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _check_n_symbols(n_symbols, ids, name="n_symbols"):
    top = int(ids.max()) + 1
    if n_symbols is None:
        return top
    n = check_positive_int(n_symbols, name)
    if n < top:
        raise ValueError(f"{name} = {n} is too small for ids up to {top - 1}; pass the vocabulary size"
                         " (Vocabulary.size)")
    return n


class CharLMStreams:
    """``batch`` training streams over one id sequence, advancing one character per step.

    Stream ``b`` starts at pointer ``p_b = (offset + b·N // B) mod N`` (evenly spaced;
    ``offset = 0`` unless ``seed`` is given). At step ``k`` (counting from 0)::

        x[b] = one_hot(ids[p_b]),   y[b] = ids[(p_b + 1) mod N],
        reset[b] = (k mod reset_every == 0),   then p_b ← (p_b + 1) mod N.

    So every stream is reset at the first step and every ``reset_every`` steps after it (the
    paper resets state and influence every 100 characters during training). Pointers wrap
    around, so the last character of the text predicts the first one.

    Parameters
    ----------
    ids : array_like of int, shape (N,)
        Encoded training text, ``N >= 2`` and ``N >= batch``.
    batch : int
        Number of streams ``B``.
    reset_every : int or None, default 100
        Reset period ``L`` in steps; None resets only at the first step.
    seed : int or None, default None
        If given, all pointers are shifted by one common offset drawn uniformly from
        ``0..N-1`` with ``numpy.random.default_rng(seed)`` (spacing unchanged).
    n_symbols : int, optional
        One-hot width; pass ``Vocabulary.size`` (default ``max(ids) + 1``, which misses an
        ``<unk>`` id reserved by the vocabulary).
    """

    def __init__(self, ids, batch, reset_every=100, seed=None, n_symbols=None):
        self.ids = _check_ids(ids)
        self.batch = check_positive_int(batch, "batch")
        n = self.ids.size
        if self.batch > n:
            raise ValueError(f"batch = {self.batch} exceeds the {n} symbols of ids; use fewer streams")
        if reset_every is not None:
            reset_every = check_positive_int(reset_every, "reset_every")
        self.reset_every = reset_every
        self.n_symbols = _check_n_symbols(n_symbols, self.ids)
        if seed is None:
            offset = 0
        else:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"seed must be an integer or None, got {seed!r}")
            offset = int(np.random.default_rng(seed).integers(0, n))
        self.offset = offset
        self.positions = (offset + np.arange(self.batch, dtype=np.int64) * n // self.batch) % n
        self.step = 0

    @property
    def n_ids(self):
        return self.ids.size

    def next(self):
        """Advance every stream by one character.

        Returns
        -------
        x : ndarray of float64, shape (B, V)
            One-hot current character of each stream (``V = n_symbols``).
        y : ndarray of int64, shape (B,)
            Next character of each stream (the target).
        reset : ndarray of bool, shape (B,)
            All True at the first step and every ``reset_every`` steps, else all False.
        """
        p = self.positions
        n = self.ids.size
        x = np.zeros((self.batch, self.n_symbols), dtype=np.float64)
        x[np.arange(self.batch), self.ids[p]] = 1.0
        nxt = p + 1
        nxt[nxt == n] = 0
        y = self.ids[nxt]
        if self.step == 0 or (self.reset_every is not None and self.step % self.reset_every == 0):
            reset = np.ones(self.batch, dtype=np.bool_)
        else:
            reset = np.zeros(self.batch, dtype=np.bool_)
        self.positions = nxt
        self.step += 1
        return x, y, reset

    def state_dict(self):
        """JSON-serialisable state: pointers, step counter and the settings they depend on."""
        return {"version": _STATE_VERSION, "positions": [int(p) for p in self.positions], "step": int(self.step),
                "batch": self.batch, "n_ids": int(self.ids.size), "reset_every": self.reset_every,
                "offset": self.offset}

    def load_state_dict(self, d):
        """Restore a state from :meth:`state_dict` of streams over the same ids and batch."""
        if not isinstance(d, dict) or "positions" not in d or "step" not in d:
            raise ValueError("d must be a dict from CharLMStreams.state_dict()")
        if d.get("version", _STATE_VERSION) != _STATE_VERSION:
            raise ValueError(f"d has state version {d['version']}, this code reads version {_STATE_VERSION}")
        if d.get("batch", self.batch) != self.batch or len(d["positions"]) != self.batch:
            raise ValueError(f"the state has {len(d['positions'])} streams but these streams have batch="
                             f"{self.batch}; build them with the saved batch")
        if d.get("n_ids", self.ids.size) != self.ids.size:
            raise ValueError(f"the state was saved over {d['n_ids']} ids but these streams hold {self.ids.size};"
                             " load the same training text")
        if d.get("reset_every", self.reset_every) != self.reset_every:
            raise ValueError(f"the state was saved with reset_every={d['reset_every']} but these streams use"
                             f" {self.reset_every}")
        pos = np.asarray(d["positions"], dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.ids.size):
            raise ValueError(f"d['positions'] must lie in [0, {self.ids.size - 1}]")
        step = int(d["step"])
        if step < 0:
            raise ValueError(f"d['step'] must be >= 0, got {step}")
        self.positions = pos
        self.step = step
        self.offset = int(d.get("offset", self.offset))

    def __repr__(self):
        return (f"CharLMStreams(n_ids={self.ids.size}, batch={self.batch}, reset_every={self.reset_every},"
                f" n_symbols={self.n_symbols}, step={self.step})")


def eval_chunks(ids, chunk_len=1000, n_symbols=None, streams=1):
    """Evaluation inputs and targets over a whole text, chunk by chunk.

    With ``streams=1`` (the paper's protocol) this covers the ``N − 1`` predictions
    ``ids[t] → ids[t + 1]``, ``t = 0..N−2``, in order, as one stream: reset the state once
    before the first chunk and carry it across chunks (never reset in between). The chunks
    concatenated along time are exactly ``xs[t, 0] = one_hot(ids[t])``, ``ys[t, 0] = ids[t+1]``.

    With ``streams = S > 1`` the ``N − 1`` predictions are split into ``S`` contiguous
    segments (segment ``s`` covers predictions ``s·(N−1)//S`` up to ``(s+1)·(N−1)//S``),
    evaluated side by side as a batch, each starting from a reset state. This is faster but
    each segment loses the context before it, so bits/char are slightly higher than with
    ``streams=1``. Segments shorter than the longest are padded at the end with all-zero
    inputs and target ``-1`` ("no target": exclude from the loss and the count).

    Parameters
    ----------
    ids : array_like of int, shape (N,)
        Encoded evaluation text, ``N >= 2``.
    chunk_len : int, default 1000
        Time steps per chunk (the last chunk may be shorter).
    n_symbols : int, optional
        One-hot width; pass ``Vocabulary.size`` (default ``max(ids) + 1``).
    streams : int, default 1
        Number of segments ``S`` evaluated side by side.

    Yields
    ------
    xs : ndarray of float64, shape (T, S, V)
    ys : ndarray of int64, shape (T, S)

    Notes
    -----
    The number of real predictions is ``N − 1`` (count ``ys >= 0``); pass the summed
    cross-entropy in nats and that count to :func:`bits_per_char`.
    """
    ids = _check_ids(ids)
    chunk_len = check_positive_int(chunk_len, "chunk_len")
    streams = check_positive_int(streams, "streams")
    v = _check_n_symbols(n_symbols, ids)
    n_pred = ids.size - 1
    if streams > n_pred:
        raise ValueError(f"streams = {streams} exceeds the {n_pred} predictions in ids; use fewer streams")
    return _eval_chunks(ids, chunk_len, v, streams, n_pred)


def _eval_chunks(ids, chunk_len, v, streams, n_pred):
    starts = np.arange(streams + 1, dtype=np.int64) * n_pred // streams
    lengths = np.diff(starts)
    total = int(lengths.max())
    for t0 in range(0, total, chunk_len):
        t = np.arange(t0, min(t0 + chunk_len, total), dtype=np.int64)
        idx = starts[None, :-1] + t[:, None]  # (T, S) prediction index
        live = t[:, None] < lengths[None, :]
        idx_safe = np.where(live, idx, 0)
        xs = one_hot(np.where(live, ids[idx_safe], -1), v)
        ys = np.where(live, ids[idx_safe + 1], -1).astype(np.int64)
        yield xs, ys


def bits_per_char(total_nats, count):
    """Bits per character from a summed cross-entropy: ``total_nats / count / ln 2``.

    Parameters
    ----------
    total_nats : float
        Sum of ``−ln p(target)`` over the evaluated predictions.
    count : int
        Number of predictions (``N − 1`` for a text of ``N`` symbols evaluated as one stream).
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral):
        raise TypeError(f"count must be an integer (the number of predictions), got {count!r}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}; evaluate at least one prediction")
    if isinstance(total_nats, bool) or not isinstance(total_nats, numbers.Real) or not math.isfinite(total_nats):
        raise ValueError(f"total_nats must be a finite number, got {total_nats!r}")
    if total_nats < 0:
        raise ValueError(f"total_nats must be >= 0 (a sum of cross-entropies), got {total_nats}")
    return float(total_nats) / int(count) / math.log(2.0)
