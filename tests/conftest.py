import json
import os
import tempfile

# One BLAS thread: numpy's and numba's (scipy's) OpenBLAS otherwise fight on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the kernels' measured per-machine choices (oknumba._tuning) go to a file of this run only
os.environ.setdefault("OKNUMBA_TUNING_CACHE", os.path.join(tempfile.mkdtemp(prefix="oknumba-tuning-"), "tuning.json"))

import numpy as np
import pytest

from oknumba.cells import CELLS  # noqa: E402  (after the thread settings above)

#: the registered cells: every cell-parametrised test covers each
CELL_NAMES = list(CELLS)


def random_sequence(model, T, B, seed=0, reset_prob=0.15, missing_prob=0.1):
    """Random dense inputs, targets with some −1 entries, and random resets."""
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, model.n_in))
    ys = rng.integers(0, model.n_out, size=(T, B))
    ys[rng.random((T, B)) < missing_prob] = -1
    resets = rng.random((T, B)) < reset_prob
    return xs, ys, resets


@pytest.fixture(params=CELL_NAMES)
def cell_name(request):
    return request.param


def rel_err(a, b):
    """max |a − b| / max |b| (the relative error quoted in the notes)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def read_json(path):
    """The JSON document in the file ``path``."""
    with open(path) as f:
        return json.load(f)


def run_params(run_dir):
    """The arrays of a run folder's ``params.npz`` (name → array)."""
    with np.load(os.path.join(run_dir, "params.npz")) as z:
        return {k: z[k] for k in z.files}


def same_params(a, b):
    """Whether the run folders ``a`` and ``b`` hold the same parameters (same names, equal arrays)."""
    pa, pb = run_params(a), run_params(b)
    return set(pa) == set(pb) and all(np.array_equal(pa[k], pb[k]) for k in pa)


def record_updates(learner):
    """A list that receives a copy of the gradients ``{key: array}`` at each of the learner's
    optimizer updates from now on."""
    opt, seen = learner.optimizer, []
    apply = opt.update

    def recording_update(params, grads, *args):
        seen.append({k: g.copy() for k, g in grads.items()})
        return apply(params, grads, *args)

    opt.update = recording_update
    return seen
