"""Size of the estimator state (what a learner keeps between steps), in bytes.

``peakmem_`` is not used: asv measures the whole process's RSS (≈ 180 MB with Numba
loaded), which would hide these sizes."""
from ._common import BATCH, N_IN, N_OUT, check_supported, learner_args
from .bench_step import DTYPES, HIDDEN, METHODS


class TrackStateBytes:
    """Bytes of the estimator's arrays (``estimator.*``; ``window.*`` for TBPTT) in
    ``OnlineLearner.state_dict()``, B = 4 streams."""

    params = [METHODS, HIDDEN, DTYPES]
    param_names = ["method", "hidden", "dtype"]
    unit = "bytes"

    def setup(self, method, hidden, dtype):
        check_supported(method, hidden)
        import oknumba

        name, kwargs = learner_args(method)
        model = oknumba.RNN("rhn", N_IN, hidden, N_OUT, seed=0, dtype=dtype)
        self.learner = oknumba.OnlineLearner(model, name, batch=BATCH, seed=0, **kwargs)

    def track_state_bytes(self, method, hidden, dtype):
        arrays, _ = self.learner.state_dict()
        return int(sum(v.nbytes for k, v in arrays.items() if k.startswith(("estimator.", "window."))))
