"""Reading text corpora for character-level language modelling: file formats and the vocabulary.

::

    symbols = read_symbols(path)                 # str of characters, or int64 ids for .npy
    vocab   = Vocabulary.from_symbols(symbols)   # sorted distinct characters, or ids 0..max
    ids     = vocab.encode(symbols)              # int64 ids; unknown symbols raise or map to <unk>

Supported files (each optionally gzip-compressed, ``.gz``):

* ``ptb-char``: Mikolov's ``ptb.char.*.txt``. Every symbol, the newline included, is
  followed by exactly one space and ``_`` marks word boundaries, so the symbols are
  ``text[0::2]`` once ``text[1::2]`` is checked to be all spaces.
* ``npy``: a 1-D array of non-negative integer ids (as released with the paper's code).
* ``text``: any UTF-8 text; every character (newlines included, no newline translation) is
  a symbol.

:func:`oknumba.tasks.charlm.load_corpus` puts these together (vocabulary from the training
split, ``<unk>`` for evaluation symbols unseen in training). The data sets themselves are not
part of the package (PTB is LDC-licensed); see ``scripts/download_ptb.py``. Only NumPy and the
standard library are used here.
"""
import gzip
import io
import numbers
import os
from pathlib import Path

import numpy as np

from .._validate import check_positive_int

__all__ = ["FORMATS", "UNK", "detect_format", "read_symbols", "Vocabulary"]

#: Accepted values of ``fmt``.
FORMATS = ("auto", "ptb-char", "npy", "text")
#: How the unknown symbol of a character vocabulary is written by :meth:`Vocabulary.decode`.
UNK = "<unk>"
_UNKNOWN_MODES = ("map", "error")
_GZIP_MAGIC = b"\x1f\x8b"


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
