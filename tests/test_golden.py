"""Refactors change no numbers: every cell × method, 300 seeded float64 online steps with
resets and missing targets, against the losses and parameters recorded before the
registry/task-protocol refactor (``tests/golden_runs.py``) — to 1e-9 relative."""
import pathlib

import numpy as np
import pytest

from conftest import rel_err
from golden_runs import CELLS, METHODS, run

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden_online.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("method, rank, truncation", METHODS)
def test_online_run_unchanged(golden, cell, method, rank, truncation):
    losses, W, V = run(cell, method, rank, truncation)
    key = f"{cell}-{method}"
    for name, got in (("loss", losses), ("W", W), ("V", V)):
        err = rel_err(got, golden[f"{key}-{name}"])
        assert err <= 1e-9, f"{key} {name}: relative difference {err:.2e} from the recorded run"
