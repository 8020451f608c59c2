"""The fixed online runs whose losses and parameters ``tests/data/golden_online.npz`` records.

Recorded with the package before the registry/task-protocol refactor (``python
tests/golden_runs.py tests/data/golden_online.npz``); ``tests/test_golden.py`` recomputes them
and requires agreement to 1e-9 relative, so a refactor cannot change the numbers unnoticed.
"""
import sys

import numpy as np

CELLS = ("vanilla", "lstm", "gru", "rhn")
METHODS = (("ok", 3, None), ("ok-truncated", 3, None), ("kf", None, None), ("kf-avg", 2, None),
           ("uoro", None, None), ("rtrl", None, None), ("tbptt", None, 4))
STEPS = 300


def run(cell, method, rank, truncation, steps=STEPS):
    """Losses (steps,) and final ``W``, ``V`` of one seeded float64 online run with resets."""
    from oknumba import RNN, OnlineLearner

    model = RNN(cell, 3, 6, 3, seed=2, init="normal", init_scale=0.5)
    learner = OnlineLearner(model, method, rank=rank, truncation=truncation, batch=3, seed=5,
                            lr=1e-2, threads=1)
    rng = np.random.default_rng(0)
    losses = np.empty(steps)
    with learner.pinned():
        for t in range(steps):
            x = rng.normal(size=(3, 3))
            y = rng.integers(0, 3, size=3)
            y[rng.random(3) < 0.1] = -1
            losses[t] = learner.step(x, y, rng.random(3) < 0.05)
    return losses, model.params["W"].copy(), model.params["V"].copy()


def record(path):
    out = {}
    for cell in CELLS:
        for method, rank, truncation in METHODS:
            key = f"{cell}-{method}"
            out[key + "-loss"], out[key + "-W"], out[key + "-V"] = run(cell, method, rank, truncation)
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    record(sys.argv[1])
