"""The speed targets as tracked numbers: a whole ``OnlineLearner.step`` divided by the bare
products (``numpy.matmul`` of the same shapes, same process, dtype and threads) at the
paper's settings and at batch 1, and the small-model latency — what ``oknumba profile``
reports. Each is tracked for float32 and float64 and for 1 and 2 threads (the threads of the
step and of the bare product alike)."""

#: (cell, method, hidden, batch) of the paper's copy-task and PTB settings
PAPER_SETTINGS = {"copy": ("rhn", "ok:16", 128, 16), "ptb": ("rhn", "ok:8", 256, 32)}
#: one stream, as an embedding user runs it (targets: ok:4 and kf ≤ 1.5 × bare products)
BATCH1_SETTINGS = {f"{cell}-{method}-n{n}": (cell, method, n, 1)
                   for cell in ("vanilla", "rhn") for method in ("ok:4", "kf") for n in (128, 256)}
DTYPES = ["float32", "float64"]
THREAD_COUNTS = [1, 2]


def _profile(cell, method, hidden, batch, dtype, threads, samples=3):
    from oknumba.profile import profile

    out = profile(cell=cell, methods=(method,), hidden=(hidden,), batch=batch, threads=threads,
                  dtype=dtype, samples=samples, sample_seconds=0.3, max_step_seconds=10.0)
    return out["results"][0]


class _TrackRatio:
    """Step time ÷ bare product time for each of ``SETTINGS``."""

    SETTINGS = {}
    param_names = ["setting", "dtype", "threads"]
    unit = "ratio"

    def track_step_over_bare_product(self, setting, dtype, threads):
        return _profile(*self.SETTINGS[setting], dtype, threads)["ratio"]


class TrackPaperRatio(_TrackRatio):
    """At the paper's settings (target ≤ 1.3)."""

    SETTINGS = PAPER_SETTINGS
    params = [list(PAPER_SETTINGS), DTYPES, THREAD_COUNTS]
    timeout = 600


class TrackBatchOneRatio(_TrackRatio):
    """On one stream (target ≤ 1.5 for ok:4 and kf)."""

    SETTINGS = BATCH1_SETTINGS
    params = [list(BATCH1_SETTINGS), DTYPES, THREAD_COUNTS]
    timeout = 300


class TrackSmallModelLatency:
    """µs per whole step of a vanilla n = 32 model on one stream (targets: ok:4 ≤ 25 µs,
    uoro ≤ 10 µs)."""

    params = [["ok:4", "uoro"], DTYPES, THREAD_COUNTS]
    param_names = ["method", "dtype", "threads"]
    unit = "µs"
    timeout = 300

    def track_us_per_step(self, method, dtype, threads):
        return _profile("vanilla", method, 32, 1, dtype, threads, samples=5)["us_per_step"]
