"""Per-step cost of ``OnlineLearner.step`` (the whole step a user pays) and of the bare
stacked product that dominates the product methods."""
import numpy as np

from ._common import BATCH, N_IN, N_OUT, POOL, Pinned, check_supported, learner_args, one_hot_pool

METHODS = ["ok:8", "kf", "kf-avg:8", "uoro", "rtrl", "tbptt:10"]
HIDDEN = [32, 64, 128, 256]
DTYPES = ["float32", "float64"]


class TimeStep(Pinned):
    """One ``OnlineLearner.step`` of an RHN on B = 4 one-hot streams. TBPTT's backward pass
    runs every 10th call, so its time is the amortised per-step cost."""

    params = [METHODS, HIDDEN, DTYPES]
    param_names = ["method", "hidden", "dtype"]
    timeout = 180

    def setup(self, method, hidden, dtype):
        check_supported(method, hidden)
        import oknumba

        self.pin()
        name, kwargs = learner_args(method)
        model = oknumba.RNN("rhn", N_IN, hidden, N_OUT, seed=0, dtype=dtype)
        self.learner = oknumba.OnlineLearner(model, name, batch=BATCH, seed=0, **kwargs)
        self.xs, self.ys = one_hot_pool(BATCH, dtype)
        self.i = 0
        for _ in range(self.learner.update_every + 1):  # compile every path (never timed)
            self.time_step(method, hidden, dtype)

    def time_step(self, method, hidden, dtype):
        j = self.i % POOL
        self.learner.step(self.xs[j], self.ys[j])
        self.i += 1


class TimeBareProduct(Pinned):
    """``numpy.matmul`` of stacked (B,S,S) @ (B,S,cols) with the columns of each method's
    dominant product: ok:8 → 8·P, kf → P, rtrl → a·P (RHN: S = n, P = 2n, a = n + 5)."""

    params = [["ok:8", "kf", "rtrl"], HIDDEN, DTYPES]
    param_names = ["product", "hidden", "dtype"]

    def setup(self, product, hidden, dtype):
        check_supported(product, hidden)
        self.pin()
        S, a, P = hidden, N_IN + hidden + 1, 2 * hidden
        cols = {"ok:8": 8 * P, "kf": P, "rtrl": a * P}[product]
        rng = np.random.default_rng(0)
        self.H = rng.standard_normal((BATCH, S, S)).astype(dtype)
        self.X = rng.standard_normal((BATCH, S, cols)).astype(dtype)
        self.Y = np.empty_like(self.X)
        self.time_bare_product(product, hidden, dtype)

    def time_bare_product(self, product, hidden, dtype):
        np.matmul(self.H, self.X, out=self.Y)
