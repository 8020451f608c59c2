"""One run on a Dask worker: :func:`run_one` trains a segment in a temporary folder and returns
the run folder's files as bytes; :func:`write_files` / :func:`read_files` move them to and from
folders; :func:`next_stop` says where a segment stops."""
import os
import socket
import tempfile
import time
import traceback

from .. import runner
from .._io import atomic_write
from ..run_folder import (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, PARAMS_FILE, RUN_FILES, SUMMARY_FILE,
                          RunError, RunFolder)
from ..training import Progress

#: the order in which the client writes a returned run folder: summary.json (the mark of a finished run) last
WRITE_ORDER = (CONFIG_FILE, METRICS_FILE, PARAMS_FILE, CHECKPOINT_FILE, SUMMARY_FILE)


class _WorkerProgress(Progress):
    """Records the start step and the first step's time (kernel compilation)."""

    def __init__(self):
        self.start_step = 0
        self.first_step_seconds = None

    def start(self, step, total, info):
        self.start_step = step

    def first_step(self, seconds):
        self.first_step_seconds = seconds


def write_files(folder, files, remove_others=True):
    """Write the run files ``files`` (name → bytes) into ``folder`` atomically, in
    :data:`WRITE_ORDER`; ``remove_others``: remove the run files it does not hold (before
    ``summary.json`` is written)."""
    os.makedirs(folder, exist_ok=True)
    for name in WRITE_ORDER:
        if name == SUMMARY_FILE and remove_others:
            for other in RUN_FILES:
                if other not in files:
                    try:
                        os.remove(os.path.join(folder, other))
                    except FileNotFoundError:
                        pass
        if name in files:
            data = files[name]
            atomic_write(os.path.join(folder, name), lambda f, d=data: f.write(d), binary=True,
                         durable=name == CHECKPOINT_FILE)


def read_files(folder, names=RUN_FILES):
    """The run files of ``folder`` (name → bytes) among ``names``."""
    out = {}
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as f:
                out[name] = f.read()
        except FileNotFoundError:
            pass
    return out


def run_one(config, files=None, stop_at=None):
    """Train the run of ``config`` on this machine; a pure function of its arguments.

    ``files``: the run folder's files (name → bytes) to continue from (its checkpoint), None for
    a fresh start; ``stop_at``: stop after this step (writing the checkpoint), None: run to
    ``config["steps"]``. Trains in a temporary folder and returns a dict: ``status``
    (``complete``, ``interrupted`` (stopped at ``stop_at``), ``diverged`` or ``failed``),
    ``error`` (message, or traceback for a bug), ``files`` (the folder's files as bytes),
    ``summary``, ``start_step``, ``steps``, ``seconds``, ``first_step_seconds``, ``host``, ``pid``.
    """
    t0 = time.perf_counter()
    progress = _WorkerProgress()
    res = {"status": "failed", "error": None, "files": {}, "summary": None,
           "host": socket.gethostname(), "pid": os.getpid()}
    with tempfile.TemporaryDirectory(prefix="oknumba-sweep-") as tmp:
        out = os.path.join(tmp, "run")
        try:
            if files:
                write_files(out, {k: v for k, v in files.items() if k in RUN_FILES}, remove_others=False)
            if files:
                summary = runner.resume(out, progress=progress, stop_after=stop_at,
                                        **{k: config.get(k) for k in runner.RESUMABLE_OVERRIDES})
            else:
                summary = runner.train(config, out, progress=progress, stop_after=stop_at)
            res["status"] = summary.get("status", "complete")
        except runner.Interrupted:
            res["status"] = "interrupted"
        except RunError as e:
            res["error"] = str(e)
            s = RunFolder(out).read_summary()
            res["status"] = "diverged" if s and s.get("status") == "diverged" else "failed"
        except Exception:
            res["error"] = traceback.format_exc()
        res["files"] = read_files(out)
        summary = RunFolder(out).read_summary()
    res.update(summary=summary, start_step=progress.start_step,
               steps=(summary or {}).get("steps", progress.start_step),
               seconds=time.perf_counter() - t0, first_step_seconds=progress.first_step_seconds)
    return res


def next_stop(step, cfg):
    """Where the segment starting at ``step`` stops: the next multiple of ``checkpoint_every``
    before the end, else None (run to the end)."""
    every = cfg.get("checkpoint_every") or 0
    if every <= 0:
        return None
    nxt = (step // every + 1) * every
    return nxt if nxt < cfg["steps"] else None
