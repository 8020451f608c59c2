"""First-call cost in a fresh process: import, build, and the first ``OnlineLearner.step``
(RHN n = 32, ok:8, B = 4, float64). ``cached`` loads kernels from the on-disk cache (warmed
in setup); ``uncached`` sets ``OKNUMBA_CACHE=0`` so every kernel compiles."""
import os
import subprocess
import sys

from ._common import THREADS

SCRIPT = r"""
import time
import numpy as np
import oknumba
from oknumba._threads import pinned_threads
model = oknumba.RNN("rhn", 4, 32, 4, dtype="float64")
learner = oknumba.OnlineLearner(model, "ok", rank=8, batch=4)
x = np.eye(4)[np.arange(4) % 4]; y = np.arange(4) % 4
with pinned_threads(__THREADS__):
    t0 = time.perf_counter()
    learner.step(x, y)
    print("FIRST_STEP", time.perf_counter() - t0)
""".replace("__THREADS__", str(THREADS))


def _first_step_seconds(cache):
    env = dict(os.environ)
    if not cache:
        env["OKNUMBA_CACHE"] = "0"
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         check=True, timeout=600).stdout
    return float([ln for ln in out.splitlines() if ln.startswith("FIRST_STEP")][-1].split()[1])


class TrackCompile:
    params = [["cached", "uncached"]]
    param_names = ["cache"]
    unit = "seconds"
    timeout = 600

    def setup(self, cache):
        if cache == "cached":
            _first_step_seconds(True)  # make sure the on-disk cache is warm

    def track_compile_seconds(self, cache):
        return _first_step_seconds(cache == "cached")
