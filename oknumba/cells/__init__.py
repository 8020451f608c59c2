"""Recurrent cells with hand-derived Jacobians (see :mod:`oknumba.cells.base`), one registry.

Every cell registers once (:func:`register_cell`); the model (``RNN(name, …)``), every
estimator, the command line's ``--cell`` choices, ``oknumba profile`` and the tests read the
registry, so a new cell — a :class:`Cell` subclass with its kernels — is one class plus one
``register_cell`` call.
"""
import numbers

from .base import Cell, CellKernels
from .gru import GRU
from .lstm import LSTM
from .rhn import RHN
from .vanilla import Vanilla

#: cell name -> Cell subclass, in registration order
CELLS = {}


def register_cell(cls):
    """Add a :class:`Cell` subclass under its ``name`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Cell)):
        raise TypeError(f"register_cell takes a Cell subclass, got {cls!r}")
    if not isinstance(cls.name, str) or not cls.name:
        raise ValueError(f"{cls.__name__} must set a non-empty string `name`")
    if not isinstance(cls.kernels, CellKernels):
        raise TypeError(f"{cls.__name__} must set `kernels = CellKernels(forward, fill_D, "
                        "fill_H, jvp)` (see oknumba.cells.base.CellKernels)")
    if cls.name in CELLS and CELLS[cls.name] is not cls:
        raise ValueError(f"cell {cls.name!r} is already registered ({CELLS[cls.name].__name__})")
    CELLS[cls.name] = cls
    return cls


for _cls in (Vanilla, LSTM, GRU, RHN):
    register_cell(_cls)


def make_cell(name, n_in, n_hidden, depth=1):
    """Build a registered cell by name (``"vanilla"``, ``"lstm"``, ``"gru"``, ``"rhn"``, …);
    ``depth`` > 1 for a cell with deep transitions (``"rhn"``: Zilly et al. 2017)."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {name!r}")
    cls = CELLS[name]
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
        raise TypeError(f"depth must be an integer >= 1, got {depth!r}")
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    if depth == 1:
        return cls(n_in, n_hidden)
    if cls.max_depth == 1:
        deep = [n for n, c in CELLS.items() if c.max_depth > 1]
        raise ValueError(f"cell {name!r} has no depth option (depth={depth}); cells with deep transitions:"
                         f" {deep}")
    if depth > cls.max_depth:
        raise ValueError(f"cell {name!r} takes depth <= {cls.max_depth}, got {depth}")
    return cls(n_in, n_hidden, depth=depth)


__all__ = ["Cell", "CellKernels", "Vanilla", "LSTM", "GRU", "RHN", "CELLS", "make_cell", "register_cell"]
