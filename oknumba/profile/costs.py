"""Sizes and cost models of :mod:`oknumba.profile`: read from the cell and method registries,
and the least-squares fit of cost against hidden size."""
import math

import numpy as np

from ..methods import method_info

N_IN = N_OUT = 4


# --------------------------------------------------------------------------------------
# sizes and cost models: read from the cell and method registries
def _sizes(cell, n):
    """(S, a, P) for a cell of n hidden units and N_IN inputs."""
    from ..cells import CELLS

    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    cls = CELLS[cell]
    return cls.state_factor * n, N_IN + n + 1, cls.n_blocks * n


def product_columns(name, kwargs, a, P):
    """Columns of the bare product's right factor ``(B, S, cols)``, or None (no product)."""
    return method_info(name).product_columns(kwargs, a, P)


def flops_per_step(name, kwargs, B, S, a, P):
    """Counted flops of one step over B streams (:mod:`oknumba.methods`)."""
    return method_info(name).flops(kwargs, B, S, a, P)


def estimate_bytes(name, kwargs, B, S, a, P, itemsize):
    """Rough peak bytes of the learner (or of the bare product, whichever is larger)."""
    return method_info(name).memory(kwargs, B, S, a, P, itemsize)


# --------------------------------------------------------------------------------------
# fitting
def fit_exponent(sizes, costs):
    """Least-squares fit of ``cost = c · n^e`` on log-log axes.

    Returns ``{"exponent": e, "prefactor": c, "sizes": [...]}`` using the pairs with finite,
    positive cost, or None when fewer than two distinct sizes remain.
    """
    pairs = [(float(n), float(c)) for n, c in zip(sizes, costs)
             if c is not None and math.isfinite(c) and c > 0 and n > 0]
    if len({n for n, _ in pairs}) < 2:
        return None
    x = np.log([n for n, _ in pairs])
    y = np.log([c for _, c in pairs])
    slope, intercept = np.polyfit(x, y, 1)
    return {"exponent": float(slope), "prefactor": float(math.exp(intercept)),
            "sizes": [int(n) if float(n).is_integer() else n for n, _ in pairs]}
