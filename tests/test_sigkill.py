"""Hard faults: ``oknumba train copy`` killed with SIGKILL, again and again, then resumed.

Real subprocesses throughout. A SIGKILL gives the run no chance to clean up (no signal
handler, no ``finally``), so this checks the on-disk protocol itself: every file is replaced
atomically (:func:`oknumba._io.atomic_write`), the checkpoint is fsync'ed before its rename,
a resumed run drops the metrics records written after its checkpoint.

Two kinds of kill:

* **at an exact point** (deterministic): the child runs the real CLI through a small fault
  injector (written to a temporary file below) that, at one chosen point — right after
  learner step N, halfway through a ``metrics.jsonl`` line, during the k-th write of a given
  file (part of its bytes in the temporary file), just before its ``fsync``, just before or
  just after its ``os.replace`` — announces the point in a marker file and sleeps. The test
  inspects the folder at that moment and sends the SIGKILL from outside.
* **at a pseudo-random moment**: the plain CLI, killed when its checkpoint's temporary file
  appears, right after ``checkpoint.npz`` changes, once its metrics pass a drawn step, or
  after a drawn delay (which may land at start-up or after the run has finished — handled).

All choices come from a fixed-seed ``random.Random``; nothing asserts on timing. After every
kill the checkpoint on disk must be either absent (then ``--resume`` must be refused with a
clear message and the run is started again) or loadable and at a checkpoint step, never
older than the one before the kill. At the end the final ``params.npz``, the untimed metrics
records and the summary must equal those of an uninterrupted run of the same command.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import oknumba
from oknumba import cli, runner
from oknumba.checkpoint import load_checkpoint
from oknumba.run_folder import read_metrics
from oknumba.tasks import TASKS
from oknumba.training import STOP_ENV, TrainingRun, identity_keys

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

T, EVERY, LOG = 3000, 150, 50          # steps, checkpoint interval, log interval
COMMAND = ["train", "copy", "--cell", "rhn", "--hidden", "8", "--batch", "2", "--method", "ok", "--rank", "2",
           "--steps", str(T), "--log-every", str(LOG), "--checkpoint-every", str(EVERY), "--seed", "5",
           "--threads", "1"]
TIMING_KEYS = ("wall_seconds", "steps_per_s", "eval_seconds")
RUN_FILES = {"config.json", "metrics.jsonl", "summary.json", "params.npz", "checkpoint.npz"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(oknumba.__file__)))
DEADLINE_S = 120       # only a hang guard: a healthy child reaches its point within a few seconds

# The fault injector: the real CLI with one pause point (SK_FAULT, JSON) announced in SK_MARKER.
INJECTOR = r'''
import io, json, os, sys, time

from oknumba import _io, checkpoint, cli, run_folder, training

FAULT = json.loads(os.environ["SK_FAULT"])
MARKER = os.environ["SK_MARKER"]
state = {"saving": None, "armed": None, "counts": {}}


def reached(where, **info):
    """Announce the point (atomically) and wait for the SIGKILL."""
    doc = dict(FAULT, where=where, pid=os.getpid(), saving_step=state["saving"], **info)
    with open(MARKER + ".part", "w") as f:
        json.dump(doc, f)
    os.replace(MARKER + ".part", MARKER)
    time.sleep(300)      # the test kills it long before; never outlive a test that died itself
    os._exit(99)


orig_save = training.TrainingRun.save
def save(self):
    state["saving"] = self.learner.steps
    return orig_save(self)
training.TrainingRun.save = save

orig_bookkeeping = training.TrainingRun.bookkeeping
def bookkeeping(self):
    if FAULT["kind"] == "step" and self.learner.steps == FAULT["step"]:
        reached("step", step=self.learner.steps)
    return orig_bookkeeping(self)
training.TrainingRun.bookkeeping = bookkeeping

orig_append = run_folder.RunFolder.append_metrics
def append_metrics(self, record):
    if FAULT["kind"] == "metrics-line" and record["step"] == FAULT["step"]:
        line = json.dumps(record) + "\n"
        with open(self.path(run_folder.METRICS_FILE), "a") as f:
            f.write(line[: len(line) // 2])
            f.flush()
        reached("metrics-line")
    return orig_append(self, record)
run_folder.RunFolder.append_metrics = append_metrics


class OsShim:
    """``os`` as seen by oknumba._io, with pause points around fsync and rename."""
    def __getattr__(self, name):
        return getattr(os, name)

    def fsync(self, fd):
        if state["armed"] == "fsync":
            reached("fsync")
        return os.fsync(fd)

    def replace(self, src, dst):
        if state["armed"] == "replace":
            reached("replace", tmp=src)
        os.replace(src, dst)
        if state["armed"] == "replaced":
            reached("replaced")
_io.os = OsShim()

orig_atomic_write = _io.atomic_write
def atomic_write(path, write, binary=False, durable=False):
    name = os.path.basename(os.fspath(path))
    n = state["counts"][name] = state["counts"].get(name, 0) + 1
    armed = FAULT["kind"] == "file" and FAULT["file"] == name and FAULT["occurrence"] == n
    state["armed"] = FAULT["at"] if armed else None
    fill = write
    if armed and FAULT["at"] == "write":
        def fill(f):
            buf = io.BytesIO() if binary else io.StringIO()
            write(buf)
            data = buf.getvalue()
            cut = max(1, min(len(data) - 1, int(len(data) * FAULT["fraction"])))
            f.write(data[:cut])
            f.flush()
            reached("write", cut=cut, size=len(data))
    try:
        return orig_atomic_write(path, fill, binary, durable)
    finally:
        state["armed"] = None
checkpoint.atomic_write = run_folder.atomic_write = atomic_write

sys.exit(cli.main(sys.argv[1:]))
'''


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
class Harness:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.injector = str(tmp_path / "fault_cli.py")
        with open(self.injector, "w") as f:
            f.write(INJECTOR)
        self.n = 0
        self.procs = []
        self.started, self.seconds = {}, []       # child wall times (for the report line)
        self.killed_pids = {}          # run folder -> pids killed while working in it
        self.kills = []                # (folder name, where it was killed)

    def env(self):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        for k in (STOP_ENV, "SK_FAULT", "SK_MARKER"):
            env.pop(k, None)
        return env

    def start(self, argv, fault=None):
        """Start the CLI (through the injector if ``fault``); returns (proc, log path, marker)."""
        self.n += 1
        log = str(self.tmp / f"child{self.n:02d}.log")
        env, marker = self.env(), None
        if fault is None:
            cmd = [sys.executable, "-m", "oknumba"] + argv
        else:
            marker = str(self.tmp / f"marker{self.n:02d}.json")
            env.update(SK_FAULT=json.dumps(fault), SK_MARKER=marker)
            cmd = [sys.executable, self.injector] + argv
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=str(self.tmp))
        self.procs.append(proc)
        self.started[proc.pid] = time.monotonic()
        return proc, log, marker

    def ended(self, proc):
        self.seconds.append(time.monotonic() - self.started.pop(proc.pid))

    def close(self):
        """Kill whatever a failing test left running."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def run(self, argv):
        proc, log, _ = self.start(argv)
        try:
            proc.wait(timeout=DEADLINE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.ended(proc)
        return proc.returncode, _read(log)

    def kill(self, proc, out, what, may_have_ended=False):
        """SIGKILL ``proc`` (``may_have_ended``: it may have exited on its own just before)."""
        proc.kill()
        proc.wait()
        self.ended(proc)
        if may_have_ended and proc.returncode == 0:
            return
        assert proc.returncode == -signal.SIGKILL, proc.returncode
        self.killed_pids.setdefault(out, set()).add(proc.pid)
        self.kills.append((os.path.basename(out), what))

    def until_marker(self, proc, log, marker, fault):
        deadline = time.monotonic() + DEADLINE_S
        while not os.path.exists(marker):
            if proc.poll() is not None:
                pytest.fail(f"fault {fault} was not reached (exit {proc.returncode}):\n{_read(log)}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"fault {fault} not reached within {DEADLINE_S} s:\n{_read(log)}")
            time.sleep(0.005)
        with open(marker) as f:
            return json.load(f)


def _read(path):
    with open(path) as f:
        return f.read()


def _ckpt(out):
    return os.path.join(out, "checkpoint.npz")


def _tmp_of(out, name, pid):
    return os.path.join(out, f"{name}.tmp-{pid}")


def checkpoint_step(out):
    """None if the folder has no checkpoint; else the step of its checkpoint, which must load
    into a learner built from the folder's config.json exactly as ``--resume`` builds it."""
    if not os.path.exists(_ckpt(out)):
        return None
    doc = runner.load_run_config(out)
    cfg = {k: doc.get(k, v) for k, v in runner.DEFAULTS["copy"].items()}
    run = TrainingRun(TASKS["copy"], cfg, out, None)
    assert run.learner.config() == doc["learner"]
    extra = load_checkpoint(_ckpt(out), run.learner)          # raises if damaged
    step = run.learner.steps
    assert extra["step"] == step and extra["task"] == "copy"
    assert extra["config"] == {k: cfg[k] for k in identity_keys(TASKS["copy"])}
    assert step % EVERY == 0 or step == T, step
    assert all(np.all(np.isfinite(p)) for p in run.model.params.values())
    return step


def next_save(s, k):
    """The step of the k-th checkpoint a process resumed at step ``s`` writes."""
    return min((s // EVERY + k) * EVERY, T)


def saved_before(s, n):
    """The checkpoint on disk when a process resumed at ``s`` is stopped before the
    bookkeeping of step ``n`` (records and checkpoints of steps < n are written)."""
    return max(s, min(((n - 1) // EVERY) * EVERY, T)) if n > s else s


def assert_started_at(log_text, step):
    """The resumed child's 'starting at step X' line (if it got that far) names ``step``."""
    for line in log_text.splitlines():
        if ": starting at step " in line:
            assert f": starting at step {step} of {T}" in line, (line, step)


def refused_resume(capsys, out, needle):
    """``oknumba train copy --resume out`` is refused (exit 2) with a message holding ``needle``
    (in this process: the refusal comes before the run touches any file)."""
    capsys.readouterr()
    rc = cli.main(["train", "copy", "--resume", out, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err, err


def _params(out):
    with np.load(os.path.join(out, "params.npz")) as z:
        return {k: z[k] for k in z.files}


def _untimed(recs):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in recs]


def _summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return {k: v for k, v in json.load(f).items() if k != "wall_seconds"}


def assert_same_as_reference(h, out, ref):
    pa, pr = _params(out), _params(ref)
    assert set(pa) == set(pr) and all(np.array_equal(pa[k], pr[k]) for k in pr), out
    with open(os.path.join(out, "metrics.jsonl")) as f:
        lines = [line for line in f if line.strip()]
    recs = [json.loads(line) for line in lines]          # every line whole: no leftover fragment
    assert _untimed(recs) == _untimed(read_metrics(os.path.join(ref, "metrics.jsonl")))
    assert [r["step"] for r in recs] == list(range(LOG, T + 1, LOG))
    s = _summary(out)
    assert s == _summary(ref) and s["status"] == "complete" and s["steps"] == T
    assert checkpoint_step(out) == T
    # the temporary files of killed writers were removed when the run resumed
    assert sorted(os.listdir(out)) == sorted(RUN_FILES), os.listdir(out)


# ------------------------------------------------------------------------------------------------
# the test
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_sigkill_at_many_points_then_resume_is_bit_identical(tmp_path, h, capsys):
    rng = random.Random(20240615)
    ref = str(tmp_path / "ref")
    ref_proc, ref_log, _ = h.start(COMMAND + ["--out", ref])
    # let the reference compile (and cache) the kernels alone if Numba's cache is cold, then
    # run alongside it
    ref_metrics, deadline = os.path.join(ref, "metrics.jsonl"), time.monotonic() + DEADLINE_S
    while ref_proc.poll() is None and time.monotonic() < deadline:
        if os.path.exists(ref_metrics) and read_metrics(ref_metrics):
            break
        time.sleep(0.02)
    out = str(tmp_path / "run")
    fresh = COMMAND + ["--out", out]
    resume = ["train", "copy", "--resume", out]

    def paused(argv, fault, s_before):
        """Start the child and wait until it sits at the fault point; returns (marker, proc)."""
        proc, log, marker = h.start(argv, fault)
        doc = h.until_marker(proc, log, marker, fault)
        if argv is resume:
            assert_started_at(_read(log), s_before)
        return doc, proc

    # -- 1. killed before the first checkpoint exists: --resume is refused ----------------------
    n = rng.randrange(1, EVERY)
    doc, proc = paused(fresh, {"kind": "step", "step": n}, 0)
    assert not os.path.exists(_ckpt(out))
    h.kill(proc, out, f"after step {n}")
    assert checkpoint_step(out) is None
    refused_resume(capsys, out, "no checkpoint")
    shutil.rmtree(out)

    fault = {"kind": "file", "file": "checkpoint.npz", "occurrence": 1, "at": "write",
             "fraction": rng.uniform(0.05, 0.95)}
    doc, proc = paused(fresh, fault, 0)
    assert doc["saving_step"] == EVERY and not os.path.exists(_ckpt(out))
    tmp = _tmp_of(out, "checkpoint.npz", doc["pid"])
    assert os.path.getsize(tmp) == doc["cut"] < doc["size"]
    h.kill(proc, out, "writing the first checkpoint")
    assert checkpoint_step(out) is None and os.path.exists(tmp)
    refused_resume(capsys, out, "no checkpoint")
    shutil.rmtree(out)

    doc, proc = paused(fresh, {"kind": "file", "file": "config.json", "occurrence": 1, "at": "replace"}, 0)
    h.kill(proc, out, "renaming config.json")
    assert not os.path.exists(os.path.join(out, "config.json"))
    refused_resume(capsys, out, "config.json not found")
    shutil.rmtree(out)

    # -- 2. exact points in a run that resumes again and again --------------------------------
    k = rng.randint(2, 3)
    fault = {"kind": "file", "file": "checkpoint.npz", "occurrence": k, "at": "fsync"}
    doc, proc = paused(fresh, fault, 0)
    assert doc["saving_step"] == k * EVERY
    assert os.path.exists(_tmp_of(out, "checkpoint.npz", doc["pid"]))
    assert checkpoint_step(out) == (k - 1) * EVERY
    h.kill(proc, out, f"before fsync of checkpoint {k}")
    s = checkpoint_step(out)
    assert s == (k - 1) * EVERY

    plan = [
        ({"kind": "file", "file": "checkpoint.npz", "at": "replace"}, "before the rename"),
        ({"kind": "file", "file": "checkpoint.npz", "at": "replaced"}, "right after the rename"),
        ({"kind": "file", "file": "checkpoint.npz", "at": "write"}, "mid-write"),
        ({"kind": "metrics-line"}, "half a metrics line"),
        ({"kind": "step", "at_resume": True}, "right after loading the checkpoint"),
        ({"kind": "file", "file": "metrics.jsonl", "occurrence": 1, "at": "write"}, "rewriting metrics.jsonl"),
        ({"kind": "step"}, "between steps"),
    ]
    for fault, what in plan:
        fault = dict(fault)
        expect = s                               # checkpoint step once killed
        if fault["kind"] == "file" and fault["file"] == "checkpoint.npz":
            fault["occurrence"] = k = rng.randint(1, 2)
            target = next_save(s, k)
            expect = target if fault["at"] == "replaced" else (next_save(s, k - 1) if k > 1 else s)
        if fault.get("at") == "write":
            fault["fraction"] = rng.uniform(0.02, 0.98)
        if fault["kind"] == "metrics-line":
            fault["step"] = rng.randrange(s // LOG + 1, s // LOG + 7) * LOG
            expect = saved_before(s, fault["step"])
        if fault["kind"] == "step":
            fault["step"] = s if fault.pop("at_resume", False) else rng.randrange(s + 1, s + 2 * EVERY)
            expect = saved_before(s, fault["step"])
        doc, proc = paused(resume, fault, s)
        if fault["kind"] == "file" and fault["file"] == "checkpoint.npz":
            assert doc["saving_step"] == target
            on_disk = checkpoint_step(out)
            assert on_disk == expect
            tmp = _tmp_of(out, "checkpoint.npz", doc["pid"])
            assert os.path.exists(tmp) == (fault["at"] != "replaced")
        if fault.get("at") == "write":
            assert os.path.getsize(_tmp_of(out, fault["file"], doc["pid"])) == doc["cut"] < doc["size"]
        if fault["kind"] == "step" and fault["step"] == s:
            # the metrics file was rewritten to the checkpoint's records, whole lines only
            with open(os.path.join(out, "metrics.jsonl")) as f:
                steps = [json.loads(line)["step"] for line in f if line.strip()]
            assert steps == list(range(LOG, s + 1, LOG))
        h.kill(proc, out, what)
        new = checkpoint_step(out)
        assert new == expect, (what, fault, new, expect)
        s = new
    assert s < T - 3 * EVERY

    # -- 3. a copy of the folder will continue under kills at pseudo-random moments (5.) -------
    other = str(tmp_path / "run2")
    shutil.copytree(out, other)
    h.killed_pids[other] = set(h.killed_pids[out])
    s_other = s

    # -- 4. the end of the run: killed while writing params.npz, then renaming summary.json ----
    fault = {"kind": "file", "file": "params.npz", "occurrence": 1, "at": "write", "fraction": rng.uniform(0.05, 0.95)}
    doc, proc = paused(resume, fault, s)
    assert checkpoint_step(out) == T                     # the final checkpoint comes first
    h.kill(proc, out, "writing params.npz")
    doc, proc = paused(resume, {"kind": "file", "file": "summary.json", "occurrence": 1, "at": "replace"}, T)
    h.kill(proc, out, "renaming summary.json")
    assert checkpoint_step(out) == T
    rc, text = h.run(resume)
    assert rc == 0 and "level reached" in text and "Traceback" not in text, text
    assert_started_at(text, T)

    # -- 5. the copy: SIGKILLs from outside at moments that depend on the child's progress -----
    resume2 = ["train", "copy", "--resume", other]
    finished = False
    external = ["tmp-file", "checkpoint-changed", "metrics-step", "delay"]
    mid_write = 0
    for how in external:
        proc, log, _ = h.start(resume2)
        ck = _ckpt(other)
        deadline = time.monotonic() + DEADLINE_S
        if how == "tmp-file":
            tmp = _tmp_of(other, "checkpoint.npz", proc.pid)
            while not os.path.exists(tmp) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0002)                        # the window is short
        elif how == "checkpoint-changed":
            st = os.stat(ck)
            before = (st.st_ino, st.st_mtime_ns, st.st_size)
            while proc.poll() is None and time.monotonic() < deadline:
                st = os.stat(ck)
                if (st.st_ino, st.st_mtime_ns, st.st_size) != before:
                    break
                time.sleep(0.0005)
            time.sleep(rng.uniform(0.0, 0.003))
        elif how == "metrics-step":
            target = s_other + rng.randrange(1, 8) * LOG
            metrics = os.path.join(other, "metrics.jsonl")
            while proc.poll() is None and time.monotonic() < deadline:
                recs = read_metrics(metrics)
                if recs and recs[-1]["step"] >= target:
                    break
                time.sleep(0.001)
        else:
            time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            tmp = _tmp_of(other, "checkpoint.npz", proc.pid)
            h.kill(proc, other, how, may_have_ended=True)
            mid_write += os.path.exists(tmp)
        else:
            h.ended(proc)
        text = _read(log)
        assert proc.returncode in (0, -signal.SIGKILL), text
        assert_started_at(text, s_other)
        assert "Traceback" not in text, text
        if proc.returncode == 0:                          # the kill came after the run had ended
            finished = True
            break
        new = checkpoint_step(other)
        assert new is not None and new >= s_other, (how, new, s_other)
        s_other = new
    if not finished:
        rc, text = h.run(resume2)
        assert rc == 0 and "Traceback" not in text, text
        assert_started_at(text, s_other)

    # -- 6. both interrupted runs end exactly where the uninterrupted one does ----------------
    try:
        ref_proc.wait(timeout=DEADLINE_S)
    finally:
        if ref_proc.poll() is None:
            ref_proc.kill()
    assert ref_proc.returncode == 0, _read(ref_log)
    h.ended(ref_proc)
    assert_same_as_reference(h, out, ref)
    assert_same_as_reference(h, other, ref)
    print(f"\n{len(h.seconds)} child processes (longest {max(h.seconds):.1f} s, all {sum(h.seconds):.1f} s);"
          f" {len(h.kills)} SIGKILLs ({mid_write} of the pseudo-random ones during a checkpoint write):",
          "; ".join(f"{d}: {w}" for d, w in h.kills))
