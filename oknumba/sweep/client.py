"""The client side of a sweep: the runs' states (:class:`RunState`, :class:`Sweep`,
:func:`folder_state`), the Dask cluster, the loop submitting segments and storing their results
(:func:`run_sweep`) and the progress lines (:class:`SweepDisplay`)."""
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from .. import runner
from ..run_folder import (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, RUN_FILES, SUMMARY_FILE, RunError, RunFolder,
                          write_json)
from ..tasks import TASKS
from ..training import identity_keys
from .errors import DaskMissing, SweepError
from .worker import next_stop, read_files, run_one, write_files

SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = "oknumba-sweep"
SWEEP_VERSION = 1
#: files the client sends to continue a run (params.npz is not needed)
RESUME_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, SUMMARY_FILE)
#: arguments of at least this many bytes are scattered to the workers instead of riding in the task
SCATTER_BYTES = 1 << 20


class RunState:
    """The client's view of one run of the sweep."""

    def __init__(self, name, cfg, folder):
        self.name, self.cfg, self.folder = name, cfg, folder
        self.status = "pending"     # pending, running, done, skipped, failed, diverged
        self.step = 0
        self.error = None
        self.summary = None
        self.host = None
        self.segments = 0

    def record(self):
        return {"status": self.status, "step": self.step, "steps": self.cfg["steps"], "error": self.error,
                "host": self.host, "summary": self.summary, "config": self.cfg}


def folder_state(folder, cfg):
    """What the sweep does with the run folder ``folder`` for ``cfg``: ``("fresh", None)``,
    ``("resume", step)``, ``("done", summary)``, ``("diverged", message)`` or
    ``("conflict", message)``."""
    rf = RunFolder(folder)
    if not rf.holds_run():
        return "fresh", None
    try:
        doc = runner.load_run_config(folder)
    except RunError as e:
        return "conflict", f"{e}; remove {folder} to run it afresh"
    keys = list(identity_keys(TASKS[cfg["task"]])) + list(TASKS[cfg["task"]].path_keys)
    defaults = runner.DEFAULTS[cfg["task"]]
    stored = {k: doc.get(k, defaults.get(k)) for k in keys}     # a setting newer than the run: its default
    diff = [k for k in keys if not runner._same_setting(cfg.get(k), stored[k])]
    if diff:
        text = ", ".join(f"{k}={stored[k]!r} (the sweep has {cfg.get(k)!r})" for k in diff)
        return "conflict", f"{folder} holds a run with other settings: {text}; remove it or use another --out"
    summary = rf.read_summary() or {}
    status = summary.get("status")
    if status == "diverged":
        return "diverged", (f"diverged at step {summary.get('diverged_at_step')} in an earlier sweep; it would"
                            f" diverge again: remove {folder} (and change the settings) to try again")
    has_ckpt = os.path.exists(rf.checkpoint)
    if status == "complete" and summary.get("steps", 0) >= cfg["steps"]:
        return "done", summary
    if has_ckpt:
        step = _checkpoint_step(rf.checkpoint)
        if step is not None and step <= cfg["steps"]:
            return "resume", step
        return "conflict", f"{folder} holds a checkpoint beyond the sweep's {cfg['steps']} steps or an unreadable one"
    return "fresh", None


def _checkpoint_step(path):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            doc = json.loads(z["__meta__"].tobytes().decode())
        return int(doc["extra"]["step"])
    except Exception:
        return None


class SweepDisplay:
    """Plain progress lines on ``stream``: one per started, resumed, finished and failed run,
    and a status line (done / running / failed / waiting, ETA) after each of them."""

    def __init__(self, stream=None, quiet=False, status_every=10.0):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.status_every = status_every
        self._last_status = 0.0

    def line(self, text, always=False):
        if always or not self.quiet:
            print(text, file=self.stream, flush=True)

    def status(self, sweep, force=False):
        now = time.monotonic()
        if self.quiet or (not force and now - self._last_status < self.status_every):
            return
        self._last_status = now
        from ..progress import hms

        c = sweep.counts()
        eta = sweep.eta()
        self.line(f"[sweep] {c['done'] + c['skipped']}/{c['total']} done, {c['running']} running,"
                  f" {c['failed']} failed, {c['pending']} waiting; ETA {hms(eta)}")


class Sweep:
    """The runs of one sweep in ``out_dir`` and their states (:class:`RunState`)."""

    def __init__(self, runs, out_dir):
        self.out_dir = out_dir
        self.runs = [RunState(n, c, os.path.join(out_dir, n)) for n, c in runs]
        self.workers = 1
        self.t_start = time.monotonic()
        self.seconds = 0.0       # worker seconds of finished segments
        self.seg_steps = 0       # steps of finished segments
        self.in_flight = 0

    def counts(self):
        c = {k: 0 for k in ("done", "skipped", "failed", "running", "pending")}
        for r in self.runs:
            c["failed" if r.status == "diverged" else r.status] += 1
        running = min(self.in_flight, self.workers)
        c["pending"] += c["running"] - running
        c["running"] = running
        c["total"] = len(self.runs)
        return c

    def eta(self):
        """Seconds left: the steps left times the mean worker time per step so far, over the workers."""
        left = sum(r.cfg["steps"] - r.step for r in self.runs if r.status in ("pending", "running"))
        if not self.seg_steps:
            return None
        active = max(1, min(self.workers, sum(r.status in ("pending", "running") for r in self.runs)))
        return left * self.seconds / self.seg_steps / active

    def write_record(self):
        doc = {"format": SWEEP_FORMAT, "version": SWEEP_VERSION, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "runs": {r.name: r.record() for r in self.runs}}
        write_json(os.path.join(self.out_dir, SWEEP_FILE), doc)


class SweepInterrupted(Exception):
    """Ctrl-C on the client; ``sweep`` holds the states reached."""

    def __init__(self, sweep):
        super().__init__("interrupted")
        self.sweep = sweep


def _import_dask():
    try:
        import distributed
    except ImportError:
        raise DaskMissing() from None
    return distributed


@contextmanager
def _workers_ignore_sigint():
    """Start worker processes with SIGINT ignored (inherited across exec): a Ctrl-C reaches the
    whole terminal process group, and the client, not each worker, should handle it (it then
    closes the cluster)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def _client(workers, scheduler, n_todo):
    import logging

    distributed = _import_dask()
    cluster = None
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as e:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    else:
        n = max(1, min(workers or os.cpu_count() or 1, n_todo))
        with _workers_ignore_sigint():
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def _short(error):
    """The message of an error: its last line for a traceback."""
    lines = [ln for ln in str(error).strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def run_sweep(runs, out_dir, workers=None, scheduler=None, client=None, display=None):
    """Run the grid ``runs`` (``(name, config)`` pairs, e.g. from :func:`expand_grid`) into
    ``out_dir``: skip finished runs, continue interrupted ones, report failures.

    ``client``: an existing ``distributed.Client``; else one on ``scheduler`` (an address), else
    a ``LocalCluster`` of ``workers`` processes (default: the CPU count, at most one per run to
    do) with one thread each. Returns the :class:`Sweep`; raises :class:`SweepInterrupted` on
    Ctrl-C (the folders keep the finished segments) and :class:`SweepError`.
    """
    display = display or SweepDisplay(quiet=True)
    os.makedirs(out_dir, exist_ok=True)
    sweep = Sweep(runs, out_dir)
    todo = []
    n_skip = n_fail = 0
    for r in sweep.runs:
        state, detail = folder_state(r.folder, r.cfg)
        if state == "done":
            r.status, r.summary, r.step = "skipped", detail, detail.get("steps", r.cfg["steps"])
            n_skip += 1
        elif state in ("diverged", "conflict"):
            r.status, r.error = ("diverged" if state == "diverged" else "failed"), detail
            n_fail += 1
        else:
            r.step = detail or 0
            todo.append(r)
    sweep.write_record()
    display.line(f"sweep of {len(sweep.runs)} runs in {out_dir}: {len(todo)} to run"
                 f" ({sum(r.step > 0 for r in todo)} continue from a checkpoint), {n_skip} finished earlier"
                 + (f", {n_fail} refused" if n_fail else ""))
    for r in sweep.runs:
        if r.status in ("failed", "diverged"):
            display.line(f"FAILED {r.name}: {r.error}", always=True)
    if not todo:
        return sweep
    if client is not None:
        return _drive(sweep, client, todo, display)
    with _client(workers, scheduler, len(todo)) as c:
        return _drive(sweep, c, todo, display)


def _drive(sweep, client, todo, display):
    from distributed import as_completed

    try:
        sweep.workers = max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:
        sweep.workers = 1
    display.line(f"{sweep.workers} workers ({client.scheduler.address})")
    pending = {}
    ac = as_completed()
    tag = f"{os.getpid()}-{int(time.time() * 1000)}"

    def submit(r):
        files = read_files(r.folder, RESUME_FILES) if r.step > 0 else None
        if files and sum(len(v) for v in files.values()) >= SCATTER_BYTES:
            files = client.scatter([files], hash=False)[0]
        stop = next_stop(r.step, r.cfg)
        fut = client.submit(run_one, r.cfg, files, stop, key=f"oknumba-{r.name}-{r.step}-{tag}", pure=False,
                            priority=1 if r.segments or r.step else 0, retries=0)
        r.segments += 1
        pending[fut.key] = r
        sweep.in_flight += 1
        ac.add(fut)

    for r in todo:
        if r.step:
            display.line(f"resume {r.name} from step {r.step}")
        submit(r)
        r.status = "running"
    try:
        for fut in ac:
            r = pending.pop(fut.key)
            sweep.in_flight -= 1
            try:
                res = fut.result()
            except Exception as e:        # the worker died (KilledWorker), or the task could not run
                text = f"{type(e).__name__}: {e}"
                if type(e).__name__ == "KilledWorker":
                    text = (f"the worker running it died (KilledWorker); its folder keeps the checkpoint of step"
                            f" {r.step}: re-run the sweep to continue")
                _fail(sweep, r, text, display)
                continue
            finally:
                fut.release()
            _take(sweep, r, res, display, submit)
            sweep.write_record()
            display.status(sweep, force=r.status != "running")
    except KeyboardInterrupt:
        for key in list(pending):
            pending[key].status = "pending"
        sweep.write_record()
        raise SweepInterrupted(sweep) from None
    return sweep


def _fail(sweep, r, text, display):
    r.status, r.error = "failed", text
    sweep.write_record()
    display.line(f"FAILED {r.name}: {_short(text)}", always=True)
    display.status(sweep, force=True)


def _take(sweep, r, res, display, submit):
    """Store a finished segment's result and submit the next segment."""
    r.host = f"{res.get('host')}:{res.get('pid')}"
    status = res.get("status")
    steps = res.get("steps") or 0
    if steps > res.get("start_step", 0):     # the ETA's rate leaves out kernel compilation
        first = res.get("first_step_seconds") or 0.0
        sweep.seconds += (res.get("seconds") or 0.0) - (first if first >= 1.0 else 0.0)
        sweep.seg_steps += steps - res.get("start_step", 0)
    if status in ("complete", "interrupted", "diverged") and res.get("files"):
        write_files(r.folder, {k: v for k, v in res["files"].items() if k in RUN_FILES})
    r.summary = res.get("summary")
    if status == "complete":
        r.status, r.step, r.error = "done", steps, None
        task_cls = TASKS[r.cfg["task"]]
        try:
            text = task_cls.result_line(r.summary)
        except Exception:
            text = f"{steps} steps"
        display.line(f"done   {r.name}: {text}")
    elif status == "interrupted" and steps > r.step:
        r.step = steps
        submit(r)
    elif status == "diverged":
        r.status, r.step, r.error = "diverged", steps, res.get("error")
        display.line(f"FAILED {r.name}: {_short(r.error)}", always=True)
    else:
        err = res.get("error") or f"the segment from step {r.step} made no progress (status {status!r})"
        _fail(sweep, r, err, display)

