"""Compile-time timer of :mod:`oknumba.profile`: the first steps of a fresh subprocess."""
import json
import os
import subprocess
import sys
import time

import numpy as np

from ..methods import parse_method_spec


_COMPILE_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import oknumba
from oknumba._threads import pinned_threads
t1 = time.perf_counter()
cfg = json.loads(sys.argv[1])
model = oknumba.RNN(cfg["cell"], 4, cfg["n"], 4, dtype=cfg["dtype"])
learner = oknumba.OnlineLearner(model, cfg["name"], batch=cfg["batch"], **cfg["kwargs"])
x = np.eye(4, dtype=cfg["dtype"])[np.arange(cfg["batch"]) % 4]
y = np.arange(cfg["batch"]) % 4
with pinned_threads(cfg["threads"]):
    t2 = time.perf_counter()
    learner.step(x, y)
    t3 = time.perf_counter()
    learner.step(x, y)
    t4 = time.perf_counter()
print("RESULT" + json.dumps({"import_s": t1 - t0, "build_s": t2 - t1,
                             "first_step_s": t3 - t2, "second_step_s": t4 - t3}))
"""


def compile_time(cell="rhn", method="ok:16", hidden=32, batch=16, dtype="float64", threads=None,
                 cache=True, timeout=600):
    """First-step time of a fresh ``python -c`` process (import, build, first and second
    :meth:`~oknumba.OnlineLearner.step`). ``cache=False`` sets ``OKNUMBA_CACHE=0``, so every
    kernel really compiles; with the cache on, a warm on-disk cache is only loaded.

    Returns a dict with ``import_s``, ``build_s``, ``first_step_s``, ``second_step_s``,
    ``wall_s`` (whole subprocess) and ``cache``.
    """
    label, name, kwargs = parse_method_spec(method)
    cfg = dict(cell=cell, n=int(hidden), batch=int(batch), dtype=np.dtype(dtype).name,
               name=name, kwargs=kwargs, threads=threads)
    env = dict(os.environ)
    if not cache:
        env["OKNUMBA_CACHE"] = "0"
    # the directory holding the oknumba package (this file is oknumba/profile/compile_timer.py)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT, json.dumps(cfg)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"compile-time subprocess failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    out = json.loads(lines[-1][len("RESULT"):])
    out.update(wall_s=wall, cache=bool(cache),
               config=f"{cell} n={hidden} {label} batch={batch} {cfg['dtype']}")
    return out
