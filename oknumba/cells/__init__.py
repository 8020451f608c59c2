"""Recurrent cells with hand-derived Jacobians. See :mod:`oknumba.cells.base`."""
from .base import Cell
from .gru import GRU
from .lstm import LSTM
from .rhn import RHN
from .vanilla import Vanilla

CELLS = {c.name: c for c in (Vanilla, LSTM, GRU, RHN)}


def make_cell(name, n_in, n_hidden):
    """Build a cell by name: one of ``"vanilla"``, ``"lstm"``, ``"gru"``, ``"rhn"``."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {name!r}")
    return CELLS[name](n_in, n_hidden)


__all__ = ["Cell", "Vanilla", "LSTM", "GRU", "RHN", "CELLS", "make_cell"]
