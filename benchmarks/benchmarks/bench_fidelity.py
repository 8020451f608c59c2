"""Gradient fidelity against exact RTRL (``oknumba.measure_noise``) on a small RHN.

Deterministic (fixed seeds), so a change in these numbers means the estimator changed."""
import numpy as np

from ._common import THREADS

METHODS = ["ok:8", "kf", "uoro"]
HIDDEN, BATCH, T, SEEDS, BURN_IN = 16, 2, 40, 4, 10


class TrackFidelity:
    """Relative influence error ``E‖G̃−G‖²/‖G‖²`` and the gradient cosine, averaged over
    steps ≥ 10 of a 40-step one-hot sequence, 4 estimator seeds, RHN n = 16, B = 2."""

    params = [METHODS]
    param_names = ["method"]
    timeout = 300

    def setup_cache(self):
        import oknumba
        from oknumba._threads import pinned_threads

        model = oknumba.RNN("rhn", 4, HIDDEN, 4, seed=0, init="normal", init_scale=0.3)
        rng = np.random.default_rng(0)
        xs = np.eye(4)[rng.integers(0, 4, size=(T, BATCH))]
        ys = rng.integers(0, 4, size=(T, BATCH))
        with pinned_threads(THREADS):
            res = oknumba.measure_noise(model, xs, METHODS, seeds=SEEDS, ys=ys, burn_in=BURN_IN)
        return {label: dict(r["summary"]) for label, r in res.items()}

    def track_influence_error(self, cache, method):
        return cache[method]["influence"]

    track_influence_error.unit = "relative squared error"

    def track_gradient_cosine(self, cache, method):
        return cache[method]["cosine"]

    track_gradient_cosine.unit = "cosine"
