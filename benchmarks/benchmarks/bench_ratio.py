"""The speed targets as tracked numbers: a whole ``OnlineLearner.step`` divided by the bare
products (``numpy.matmul`` of the same shapes, same process, dtype and threads) at the
paper's settings, and the small-model latency — what ``oknumba profile`` reports."""
from ._common import THREADS

#: (cell, method, hidden, batch) of the paper's copy-task and PTB settings
PAPER_SETTINGS = {"copy": ("rhn", "ok:16", 128, 16), "ptb": ("rhn", "ok:8", 256, 32)}


def _profile(cell, method, hidden, batch, dtype, samples=3):
    from oknumba.profile import profile

    out = profile(cell=cell, methods=(method,), hidden=(hidden,), batch=batch, threads=THREADS,
                  dtype=dtype, samples=samples, sample_seconds=0.3, max_step_seconds=10.0)
    return out["results"][0]


class TrackPaperRatio:
    """Step time ÷ bare product time (target ≤ 1.5, aim 1.3)."""

    params = [list(PAPER_SETTINGS), ["float32", "float64"]]
    param_names = ["setting", "dtype"]
    unit = "ratio"
    timeout = 600

    def track_step_over_bare_product(self, setting, dtype):
        return _profile(*PAPER_SETTINGS[setting], dtype)["ratio"]


class TrackSmallModelLatency:
    """µs per whole step of a vanilla n = 32 model on one stream (targets: ok:4 ≤ 25 µs,
    uoro ≤ 10 µs)."""

    params = [["ok:4", "uoro"], ["float32", "float64"]]
    param_names = ["method", "dtype"]
    unit = "µs"
    timeout = 300

    def track_us_per_step(self, method, dtype):
        return _profile("vanilla", method, 32, 1, dtype, samples=5)["us_per_step"]
