"""Character-level language modelling on real text (spec section 6, "Character-level PTB").

Pipeline::

    symbols = read_symbols(path)                 # str of characters, or int64 ids for .npy
    corpus  = load_corpus(train, valid)          # vocabulary from train, ids for both splits
    streams = corpus.train_streams(batch=32)     # B streams, evenly spaced, reset every 100
    x, y, reset = streams.next()                 # one character per stream per step
    for xs, ys in corpus.eval_chunks(1000): ...  # evaluation, state carried through the text
    bits_per_char(total_nats, count)

Training follows the paper: ``B`` stream pointers start evenly spaced through the training
ids (stream ``b`` at ``b·N // B``), each advances one character per step and wraps around;
at step ``k`` the input is ``ids[p_b]`` and the target ``ids[(p_b + 1) mod N]``; state and
influence are reset for all streams at the first step and every ``reset_every = 100`` steps.
Evaluation runs one stream over the whole evaluation text with no resets: input ``ids[t]``,
target ``ids[t + 1]``, ``t = 0..N−2``, and reports ``bits/char = Σ nats / (N − 1) / ln 2``.

Supported files (each optionally gzip-compressed, ``.gz``):

* ``ptb-char``: Mikolov's ``ptb.char.*.txt``. Every symbol, the newline included, is
  followed by exactly one space and ``_`` marks word boundaries, so the symbols are
  ``text[0::2]`` once ``text[1::2]`` is checked to be all spaces.
* ``npy``: a 1-D array of non-negative integer ids (as released with the paper's code).
* ``text``: any UTF-8 text; every character (newlines included, no newline translation) is
  a symbol.

The data sets themselves are not part of the package (PTB is LDC-licensed); see
``scripts/download_ptb.py``. Only NumPy and the standard library are used here.
"""
import gzip
import io
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validate import check_positive_int

__all__ = ["FORMATS", "UNK", "one_hot", "detect_format", "read_symbols", "Vocabulary", "Corpus",
           "load_corpus", "CharLMStreams", "eval_chunks", "bits_per_char"]

#: Accepted values of ``fmt``.
FORMATS = ("auto", "ptb-char", "npy", "text")
#: How the unknown symbol of a character vocabulary is written by :meth:`Vocabulary.decode`.
UNK = "<unk>"
_UNKNOWN_MODES = ("map", "error")
_GZIP_MAGIC = b"\x1f\x8b"
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
# reading files
# --------------------------------------------------------------------------------------------
def detect_format(path):
    """Format that ``fmt="auto"`` picks for ``path``, from its file name.

    ``"ptb-char"`` when the name contains ``ptb.char.``, ``"npy"`` when it ends in ``.npy``
    (or ``.npy.gz``), otherwise ``"text"``.
    """
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[:-3]
    if "ptb.char." in name:
        return "ptb-char"
    if name.endswith(".npy"):
        return "npy"
    return "text"


def _check_fmt(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(map(repr, FORMATS))}, got {fmt!r}")


def _read_bytes(path):
    """Raw bytes of ``path``, gunzipped when the name ends in ``.gz`` or the gzip magic is present."""
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"corpus file not found: {str(p)!r} (check the path, or fetch PTB with"
                                " scripts/download_ptb.py)")
    if p.is_dir():
        raise IsADirectoryError(f"corpus path {str(p)!r} is a directory; pass the file itself")
    data = p.read_bytes()
    if p.name.endswith(".gz") or data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{str(p)!r} is not a valid gzip file ({exc}); decompress it or fix the name") from None
    return data


def _decode_utf8(data, path):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 1]
        msg = (f"{str(path)!r} is not valid UTF-8 (byte {bad!r} at offset {exc.start}); convert it to UTF-8,"
               " or pass an .npy file of integer ids")
    raise ValueError(msg)


def read_symbols(path, fmt="auto"):
    """Read a corpus file into its sequence of symbols.

    Parameters
    ----------
    path : str or os.PathLike
        The file; ``.gz`` files (or files starting with the gzip magic bytes) are gunzipped.
    fmt : {"auto", "ptb-char", "npy", "text"}, default "auto"
        ``"auto"`` decides from the file name, see :func:`detect_format`.

    Returns
    -------
    str or ndarray of int64
        For ``ptb-char`` and ``text``: a string whose characters are the symbols.
        For ``npy``: the 1-D int64 array of ids.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is empty, not valid UTF-8, not a well-formed ptb-char file (some symbol is not
        followed by exactly one space), or an ``.npy`` file that does not hold a 1-D array of
        non-negative integers.
    """
    _check_fmt(fmt)
    if fmt == "auto":
        fmt = detect_format(path)
    data = _read_bytes(path)
    if len(data) == 0:
        raise ValueError(f"corpus file {str(path)!r} is empty")
    if fmt == "npy":
        return _parse_npy(data, path)
    text = _decode_utf8(data, path)
    if fmt == "text":
        return text
    return _parse_ptb_char(text, path)


def _parse_ptb_char(text, path):
    seps = text[1::2]
    if seps.count(" ") != len(seps) or len(text) % 2:
        # find the first offending offset for the message
        bad = next((2 * i + 1 for i, c in enumerate(seps) if c != " "), None)
        if bad is None:
            msg = f"the last symbol {text[-1]!r} at offset {len(text) - 1} is not followed by a space"
        else:
            msg = f"offset {bad} holds {text[bad]!r} where a space must follow the symbol {text[bad - 1]!r}"
        raise ValueError(f"{str(path)!r} is not a ptb-char file: every symbol must be followed by exactly one"
                         f" space, but {msg}; pass fmt='text' to read it as plain text")
    return text[0::2]


def _parse_npy(data, path):
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{str(path)!r} holds a {type(arr).__name__}, expected a single .npy array of ids")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{str(path)!r} must hold integer symbol ids, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{str(path)!r} must hold a 1-D array of ids, got shape {arr.shape}; flatten it first")
    if arr.size == 0:
        raise ValueError(f"corpus file {str(path)!r} holds an empty array")
    if arr.min() < 0:
        raise ValueError(f"{str(path)!r} holds negative ids (min {arr.min()}); ids must be >= 0")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------
def _as_codepoints(text):
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)


class Vocabulary:
    """Map between symbols and integer ids ``0..size-1``.

    Two kinds:

    * ``"char"``: ``symbols`` is a tuple of distinct one-character strings; id ``k`` is
      ``symbols[k]``. Built from training text the symbols are sorted by code point, so the
      vocabulary is deterministic.
    * ``"int"``: for corpora stored as integer ids (``.npy``); the symbols are the ids
      ``0..n_ids-1`` themselves and encoding is the identity.

    With ``unk=True`` the vocabulary reserves one more id, ``unk_id = len(symbols)`` (the
    last id), for symbols outside the vocabulary; :meth:`encode` with ``unknown="map"`` maps
    them there. ``size = len(symbols) + unk``.

    Parameters
    ----------
    symbols : str, sequence of str, or int
        The characters (kind ``"char"``), or the number of integer ids (kind ``"int"``).
    unk : bool, default False
        Reserve the id ``len(symbols)`` for unknown symbols.

    Examples
    --------
    >>> v = Vocabulary.from_symbols("hello")
    >>> v.symbols, v.size
    (('e', 'h', 'l', 'o'), 4)
    >>> v.encode("hole").tolist()
    [1, 3, 2, 0]
    >>> v.decode([1, 0, 2, 2, 3])
    'hello'
    """

    def __init__(self, symbols, *, unk=False):
        if not isinstance(unk, (bool, np.bool_)):
            raise TypeError(f"unk must be True or False, got {unk!r}")
        self.unk = bool(unk)
        if isinstance(symbols, numbers.Integral) and not isinstance(symbols, bool):
            self.kind = "int"
            self.n_ids = check_positive_int(symbols, "symbols (number of integer ids)")
            self.symbols = range(self.n_ids)
        else:
            if isinstance(symbols, str):
                symbols = tuple(symbols)
            try:
                symbols = tuple(symbols)
            except TypeError:
                raise TypeError("symbols must be a string, a sequence of one-character strings, or the number of"
                                f" integer ids; got {type(symbols).__name__}") from None
            for i, s in enumerate(symbols):
                if not isinstance(s, str) or len(s) != 1:
                    raise TypeError(f"symbols[{i}] = {s!r} is not a one-character string")
            if not symbols:
                raise ValueError("symbols must not be empty")
            if len(set(symbols)) != len(symbols):
                dup = next(s for i, s in enumerate(symbols) if s in symbols[:i])
                raise ValueError(f"symbols must be distinct, {dup!r} appears more than once")
            self.kind = "char"
            self.n_ids = len(symbols)
            self.symbols = symbols
            cps = _as_codepoints("".join(symbols))
            self._order = np.argsort(cps, kind="stable")
            self._sorted_cps = cps[self._order]

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_symbols(cls, seq, unk=False):
        """Vocabulary of a training sequence.

        A string gives a ``"char"`` vocabulary of its distinct characters sorted by code point;
        an integer array gives an ``"int"`` vocabulary of the ids ``0..max(seq)``.
        """
        if isinstance(seq, str):
            if not seq:
                raise ValueError("seq is empty; the training split must hold at least one symbol")
            return cls("".join(sorted(set(seq))), unk=unk)
        arr = np.asarray(seq)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"seq must be a string or an integer id array, got dtype {arr.dtype}")
        if arr.size == 0:
            raise ValueError("seq is empty; the training split must hold at least one symbol")
        if arr.min() < 0:
            raise ValueError(f"seq holds negative ids (min {arr.min()}); ids must be >= 0")
        return cls(int(arr.max()) + 1, unk=unk)

    def with_unk(self):
        """The same vocabulary with the ``<unk>`` id reserved (``self`` if it already has one)."""
        if self.unk:
            return self
        return Vocabulary(self.n_ids if self.kind == "int" else self.symbols, unk=True)

    # -- properties -------------------------------------------------------------------------
    @property
    def size(self):
        """Number of ids, ``len(symbols) + unk`` (the one-hot width and the number of classes)."""
        return self.n_ids + int(self.unk)

    @property
    def unk_id(self):
        """The id of unknown symbols (``len(symbols)``), or None without ``unk``."""
        return self.n_ids if self.unk else None

    def __len__(self):
        return self.size

    def __eq__(self, other):
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self.kind, tuple(self.symbols), self.unk) == (other.kind, tuple(other.symbols), other.unk)

    def __hash__(self):
        return hash((self.kind, tuple(self.symbols), self.unk))

    def __repr__(self):
        if self.kind == "int":
            return f"Vocabulary({self.n_ids}, unk={self.unk})"
        return f"Vocabulary({''.join(self.symbols)!r}, unk={self.unk})"

    # -- encoding ---------------------------------------------------------------------------
    def _lookup(self, seq):
        """(ids, known) for a sequence; unknown entries get id -1."""
        if self.kind == "char":
            if isinstance(seq, str):
                cps = _as_codepoints(seq)
            else:
                items = list(seq)
                for i, s in enumerate(items):
                    if not isinstance(s, str) or len(s) != 1:
                        raise TypeError(f"this is a character vocabulary: symbols must be one-character"
                                        f" strings, but element {i} is {s!r}")
                cps = _as_codepoints("".join(items))
            pos = np.searchsorted(self._sorted_cps, cps)
            pos = np.minimum(pos, self._sorted_cps.size - 1)
            known = self._sorted_cps[pos] == cps
            ids = np.where(known, self._order[pos], -1)
        else:
            if isinstance(seq, str):
                raise TypeError("this is an integer-id vocabulary (from an .npy corpus): pass integer ids, not a"
                                " string")
            arr = np.asarray(seq)
            if arr.size == 0:
                arr = arr.astype(np.int64)
            if arr.dtype.kind not in "iu":
                raise TypeError(f"this is an integer-id vocabulary: pass integer ids, got dtype {arr.dtype}")
            arr = arr.reshape(-1).astype(np.int64)
            known = (arr >= 0) & (arr < self.n_ids)
            ids = np.where(known, arr, -1)
        return ids.astype(np.int64), known

    def unknown_positions(self, seq):
        """Positions in ``seq`` of the symbols that are not in the vocabulary (int64 array)."""
        return np.flatnonzero(~self._lookup(seq)[1])

    def encode(self, seq, unknown="error", name="seq"):
        """Encode symbols to an int64 id array.

        Parameters
        ----------
        seq : str, sequence of str, or array of int
            Characters for a ``"char"`` vocabulary, ids for an ``"int"`` vocabulary.
        unknown : {"error", "map"}, default "error"
            ``"error"`` raises ValueError naming the first unknown symbol and its position;
            ``"map"`` maps unknown symbols to :attr:`unk_id` (needs ``unk=True``).
        name : str
            What to call ``seq`` in error messages (e.g. the split's name).
        """
        if unknown not in _UNKNOWN_MODES:
            raise ValueError(f"unknown must be 'map' or 'error', got {unknown!r}")
        if self.kind == "char" and not isinstance(seq, str):
            seq = list(seq)
        ids, known = self._lookup(seq)
        if not known.all():
            bad = np.flatnonzero(~known)
            first = int(bad[0])
            sym = seq[first] if self.kind == "char" else int(np.asarray(seq).reshape(-1)[first])
            if unknown == "error" or not self.unk:
                hint = ("pass unknown='map' to map them to <unk>" if unknown == "error" else
                        "this vocabulary has no <unk> id; build it with unk=True (or use Vocabulary.with_unk())")
                raise ValueError(f"{name}: symbol {sym!r} at position {first} is not in the vocabulary"
                                 f" ({bad.size} unknown symbols in total); {hint}")
            ids[bad] = self.n_ids
        return ids

    def decode(self, ids):
        """Inverse of :meth:`encode`.

        Returns a string for a ``"char"`` vocabulary (the unknown id is written as ``"<unk>"``)
        and an int64 array for an ``"int"`` vocabulary (the unknown id is written as -1).
        """
        arr = np.asarray(ids)
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        arr = arr.reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.size):
            raise ValueError(f"ids must lie in [0, {self.size - 1}], found values in [{arr.min()}, {arr.max()}]")
        if self.kind == "int":
            out = arr.astype(np.int64)
            if self.unk:
                out = np.where(out == self.n_ids, -1, out)
            return out
        table = list(self.symbols) + ([UNK] if self.unk else [])
        return "".join([table[i] for i in arr.tolist()])

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self):
        """JSON-serialisable description: ``{"kind", "symbols" | "n_ids", "unk", "size"}``."""
        d = {"kind": self.kind, "unk": self.unk, "size": self.size}
        if self.kind == "char":
            d["symbols"] = list(self.symbols)
        else:
            d["n_ids"] = self.n_ids
        return d

    @classmethod
    def from_dict(cls, d):
        """Rebuild a vocabulary from :meth:`to_dict` output."""
        if not isinstance(d, dict) or "kind" not in d:
            raise ValueError("d must be a dict from Vocabulary.to_dict() (with a 'kind' key)")
        if d["kind"] == "char":
            v = cls(d["symbols"], unk=bool(d.get("unk", False)))
        elif d["kind"] == "int":
            v = cls(int(d["n_ids"]), unk=bool(d.get("unk", False)))
        else:
            raise ValueError(f"d['kind'] must be 'char' or 'int', got {d['kind']!r}")
        if "size" in d and d["size"] != v.size:
            raise ValueError(f"d['size'] = {d['size']} does not match the {v.size} ids its symbols describe")
        return v


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
