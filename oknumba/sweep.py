"""Sweeps behind ``oknumba sweep``: a grid of independent training runs on Dask distributed.

**The grid** is task × methods × seeds × options. It comes from the command line
(``oknumba sweep copy --methods ok:8,kf,tbptt:20 --seeds 0-2 --hidden 32 --out DIR``), from a
TOML or JSON spec file, or from a built-in preset (:data:`PRESETS`). A spec is a table of
settings shared by every entry plus a list ``grid`` of entries (without ``grid`` the table is
one entry); every setting takes the names of ``oknumba train TASK`` (``hidden``, ``lr``,
``reset_every`` / ``reset-every``, …) and a list for a setting makes it vary::

    steps = 20000                    # shared by the entries whose task has the setting
    seeds = "0-2"
    [[grid]]
    task = "copy"
    methods = ["ok:8", "kf", "uoro", "tbptt:4"]
    hidden = [32, 64]                # a list: one run per value
    [[grid]]
    task = "charlm"
    methods = "ok:8,tbptt:25"
    train = "data/ptb.char.train.txt.gz"   # relative paths: relative to the spec file
    valid = "data/ptb.char.valid.txt"

Command-line options override the spec (and apply to the entries whose task has them); a bare
``ok`` / ``tbptt`` in ``methods`` takes ``rank`` / ``truncation`` from the settings.

**Run folders.** Each run lives in ``DIR/<name>`` with the files of ``oknumba train``
(:mod:`oknumba.run_folder`); the name is derived from the config alone:
``<task>-<method><rank or truncation>-seed<s>`` plus ``-<setting><value>`` for each other
setting that varies between the grid's runs of that task (``copy-ok8-seed0-hidden64``).
``DIR/sweep.json`` records every run's status, step and error.

**Where runs execute and how results travel.** :func:`run_one` is a pure function of its
arguments: it trains in a temporary folder local to the worker (seeded with the files the
client sent when the run continues from a checkpoint) and returns the run folder's files as
bytes through the future; the client writes them atomically into ``DIR/<name>/``
(``summary.json`` last: it marks a finished run). Workers need no file system shared with the
client; only data files (``--train/--valid``) must be readable at the same path on them.

**Segments, interruptions and resuming.** A run executes in segments of ``checkpoint_every``
steps (one task each): a segment stops right after a checkpoint step (the mechanism of
``OKNUMBA_STOP_AFTER_STEP``: the run writes its checkpoint and stops), returns the files, the
client stores them and submits the next segment with them. Resuming is bit-identical, so the
run's final ``params.npz`` and ``metrics.jsonl`` (timings aside) equal an uninterrupted
run's. A killed worker or a Ctrl-C on the client thus loses at most the segment in progress
(``--checkpoint-every 0``: one segment, nothing kept). Re-running the same sweep skips runs
whose ``summary.json`` says ``complete``, continues the others from their checkpoints, retries
failed ones and leaves diverged ones alone (they would diverge again). A failed run (its error
is reported, with the traceback in ``sweep.json`` for a bug) never stops the others.

Dask is the optional extra ``oknumba[sweep]``; this module imports it only when a sweep runs.
"""
import argparse
import itertools
import json
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager

from . import runner
from ._io import atomic_write
from .methods import METHODS, parse_method_spec
from .run_folder import (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, PARAMS_FILE, RUN_FILES, SUMMARY_FILE,
                         RunError, RunFolder, write_json)
from .tasks import TASKS
from .training import STOP_ENV, Progress, identity_keys

SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = "oknumba-sweep"
SWEEP_VERSION = 1
#: a folder holding ptb.char.train.txt[.gz] and ptb.char.valid.txt[.gz], for the presets' char-LM runs
PTB_ENV = "OKNUMBA_PTB_DIR"
DASK_MISSING = 'oknumba sweep needs Dask: pip install "oknumba[sweep]"'
#: the order in which the client writes a returned run folder: summary.json (the mark of a finished run) last
WRITE_ORDER = (CONFIG_FILE, METRICS_FILE, PARAMS_FILE, CHECKPOINT_FILE, SUMMARY_FILE)
#: files the client sends to continue a run (params.npz is not needed)
RESUME_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, SUMMARY_FILE)
#: grid keys besides the tasks' settings
GRID_KEYS = ("task", "methods", "seeds")
#: arguments of at least this many bytes are scattered to the workers instead of riding in the task
SCATTER_BYTES = 1 << 20

_PAPER = dict(cell="rhn", optimizer="adam", clip=1.0, dtype="float32", lr=10 ** -3.5)
#: built-in grids (``--preset``), in the spec format. ``paper-copy`` / ``paper-ptb``: the settings of
#: the authors' released runs; ``small``: the paper's comparisons at reduced size on two cores.
PRESETS = {
    "paper-copy": {
        "description": "the authors' copy-task runs: RHN n=128, 16-OK, B=16, float32, lr 10^-3.5, 2M steps",
        "grid": [dict(_PAPER, task="copy", hidden=128, methods=["ok:16"], batch=16, steps=2_000_000,
                      seeds="0-4")]},
    "paper-ptb": {
        "description": "the authors' PTB char-LM runs: RHN n=256, 8-OK, B=32, float32, lr 10^-3.5, 1M steps",
        "grid": [dict(_PAPER, task="charlm", hidden=256, methods=["ok:8"], batch=32, steps=1_000_000,
                      reset_every=100, eval_every=10000, seeds="0-4", _corpus="ptb")]},
    "small": {
        "description": "the paper's comparisons at reduced size (about 25 min on 2 idle cores): copy at n=32"
                       " and PTB char-LM at n=64, ok/kf/uoro/tbptt at two truncations, 3 seeds",
        "seeds": "0-2", "lr": 3e-3, "checkpoint_every": 10000,
        "grid": [dict(task="charlm", hidden=64, batch=16, steps=30000, eval_every=2000, eval_chars=20000,
                      log_every=1000, methods=["ok:8", "kf", "uoro", "tbptt:5", "tbptt:25"], _corpus="ptb"),
                 dict(task="copy", hidden=32, batch=8, steps=100000,
                      methods=["ok:8", "kf", "uoro", "tbptt:4", "tbptt:16"])]},
}


class SweepError(Exception):
    """A sweep cannot start: a bad grid, spec file, option, folder or cluster (one line)."""


class DaskMissing(SweepError):
    def __init__(self):
        super().__init__(DASK_MISSING)


# ------------------------------------------------------------------------------------------------
# the grid
# ------------------------------------------------------------------------------------------------
def parse_seeds(value):
    """``"0-2"`` → ``[0, 1, 2]``; ``"0,3,7-9"``; an int; a list of ints or such strings.
    Raises :class:`SweepError` (negative, reversed, repeated or malformed)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    seeds = []
    for item in items:
        if isinstance(item, bool):
            raise SweepError(f"bad seeds {value!r}: expected e.g. 0-2 or 0,3,5")
        if isinstance(item, int):
            parts = [item]
        elif isinstance(item, str):
            parts = []
            for tok in item.split(","):
                tok = tok.strip()
                m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", tok)
                if not m:
                    raise SweepError(f"bad seeds {value!r}: expected e.g. 0-2 or 0,3,5 (non-negative integers)")
                lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                if hi < lo:
                    raise SweepError(f"bad seeds {value!r}: the range {tok} is reversed")
                parts.extend(range(lo, hi + 1))
        else:
            raise SweepError(f"bad seeds {value!r}: expected e.g. 0-2 or 0,3,5")
        for s in parts:
            if s < 0:
                raise SweepError(f"bad seeds {value!r}: seeds are integers >= 0")
            if s in seeds:
                raise SweepError(f"bad seeds {value!r}: seed {s} is given twice")
            seeds.append(s)
    if not seeds:
        raise SweepError(f"bad seeds {value!r}: no seed given")
    return seeds


def load_spec(path):
    """The spec document in the TOML or JSON file ``path`` (:class:`SweepError` if unusable)."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SweepError(f"cannot read the spec file {path}: {e.strerror or e}") from None
    if ext == ".toml":
        try:
            import tomllib
        except ImportError:                      # Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise SweepError("TOML spec files need Python >= 3.11 (or pip install tomli);"
                                 " write the spec as JSON instead") from None
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SweepError(f"the spec file {path} is not valid TOML ({e})") from None
    elif ext == ".json":
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise SweepError(f"the spec file {path} is not valid JSON ({e})") from None
    else:
        raise SweepError(f"the spec file {path} must end in .toml or .json")
    if not isinstance(doc, dict):
        raise SweepError(f"the spec file {path} must hold a table (a JSON object) of settings")
    return doc


def _norm_keys(d, where):
    if not isinstance(d, dict):
        raise SweepError(f"{where} must be a table of settings, got {d!r}")
    return {str(k).replace("-", "_"): v for k, v in d.items()}


def _task_keys(task):
    return set(runner.DEFAULTS[task]) - {"task"}


def _ptb_paths(where):
    folder = os.environ.get(PTB_ENV)
    if folder:
        found = {}
        for split in ("train", "valid"):
            for name in (f"ptb.char.{split}.txt", f"ptb.char.{split}.txt.gz"):
                if os.path.isfile(os.path.join(folder, name)):
                    found[split] = os.path.join(folder, name)
                    break
        if len(found) == 2:
            return found
        raise SweepError(f"{PTB_ENV}={folder} does not hold ptb.char.train.txt[.gz] and ptb.char.valid.txt[.gz]")
    raise SweepError(f"{where}'s charlm runs need the PTB character files: give --train PATH --valid PATH,"
                     f" or set {PTB_ENV}=FOLDER holding ptb.char.train.txt[.gz] and ptb.char.valid.txt[.gz]"
                     " (or sweep only its copy runs: oknumba sweep copy ...)")


def _method_settings(spec, settings, task, where):
    """A method spec (``ok:8``, ``kf``, bare ``ok`` / ``tbptt`` taking ``rank`` / ``truncation``
    from the settings) → ``{"method", "rank", "truncation"}``."""
    from .learner import LEARNER_METHODS

    text = str(spec).strip()
    name, sep, _ = text.partition(":")
    name = name.strip().lower()
    info = METHODS.get(name)
    if info is not None and not sep and info.param in ("rank", "truncation"):
        value = settings.get(info.param)
        if value is None and info.param == "rank":
            value = runner.DEFAULTS[task]["rank"]
        if value is None:
            raise SweepError(f"{where}: method {name} needs its {info.param}: write e.g. {name}:20 in --methods")
        text = f"{name}:{value}"
    try:
        _, method, kwargs = parse_method_spec(text)
    except ValueError as e:
        raise SweepError(f"{where}: {e}") from None
    if method not in LEARNER_METHODS:
        raise SweepError(f"{where}: method {method!r} cannot train online; use one of {list(LEARNER_METHODS)}")
    return {"method": method, "rank": kwargs.get("rank"), "truncation": kwargs.get("truncation")}


def _methods_list(value, where):
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        items = [s.strip() for s in value if s.strip()]
    else:
        raise SweepError(f"{where}: methods must be a list or a comma-separated string like 'ok:8,kf', got {value!r}")
    if not items:
        raise SweepError(f"{where}: methods names no method")
    return items


def expand_grid(spec, overrides=None, task=None, base_dir=None, where="the grid"):
    """The runs of a grid: a list of ``(name, config)`` (configs from :func:`oknumba.runner.make_config`).

    ``spec``: the spec document (module docstring); ``overrides``: settings from the command
    line (above the spec's); ``task``: keep only that task's entries; ``base_dir``: relative
    data paths of the spec are taken relative to it. Raises :class:`SweepError`.
    """
    spec = _norm_keys(spec, where)
    overrides = _norm_keys(overrides or {}, "the options")
    entries = spec.pop("grid", None)
    spec.pop("description", None)
    spec.pop("out", None)
    if entries is None:
        entries = [{}]
    if not isinstance(entries, list) or not entries:
        raise SweepError(f"{where}: grid must be a non-empty list of tables")
    blocks = []
    for i, entry in enumerate(entries):
        w = f"{where}, grid entry {i + 1}" if len(entries) > 1 else where
        entry = _norm_keys(entry, w)
        t = entry.get("task", spec.get("task", task))
        if t is None:
            raise SweepError(f"{w} names no task: give the task (one of {list(TASKS)})")
        if t not in TASKS:
            raise SweepError(f"{w}: task must be one of {list(TASKS)}, got {t!r}")
        if task is not None and t != task:
            continue
        blocks.append((w, t, entry))
    if not blocks:
        raise SweepError(f"{where} has no {task} runs")
    all_known = set(GRID_KEYS).union(*(_task_keys(_norm_keys(e, where).get("task", spec.get("task", task)))
                                       for e in entries))
    unknown = sorted(set(spec) - all_known)
    if unknown:
        raise SweepError(f"{where}: unknown setting(s) {', '.join(unknown)} (no task of the grid takes them)")
    used = set()
    cfgs = []
    for w, t, entry in blocks:
        known = _task_keys(t) | set(GRID_KEYS)
        merged = {}
        for source, d in (("spec", spec), ("entry", entry), ("options", overrides)):
            for k, v in d.items():
                if k in known or (source == "entry" and k == "_corpus"):
                    merged[k] = v
                    used.add(k)
                elif source == "entry":
                    raise SweepError(f"{w}: unknown setting {k!r} for task {t} (known: {sorted(known)})")
        if base_dir is not None:
            for k in TASKS[t].path_keys:
                v = merged.get(k)
                if k not in overrides and v is not None:
                    merged[k] = ([os.path.join(base_dir, x) for x in v] if isinstance(v, list)
                                 else os.path.join(base_dir, v))
        if merged.pop("_corpus", None) == "ptb" and not (merged.get("train") and merged.get("valid")):
            merged.update(_ptb_paths(where))
        cfgs.extend(_expand_block(w, t, merged))
    unused = sorted(set(overrides) - used)
    if unused:
        tasks = sorted({t for _, t, _ in blocks})
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise SweepError(f"{flags} is not an option of the grid's task{'s' if len(tasks) > 1 else ''}"
                         f" ({', '.join(tasks)})")
    unique = []
    for c in cfgs:
        if c not in unique:
            unique.append(c)
    return list(zip(run_names(unique), unique))


def _expand_block(where, task, merged):
    methods = _methods_list(merged.pop("methods", None) or merged.get("method") or runner.DEFAULTS[task]["method"],
                            where)
    merged.pop("method", None)
    merged.pop("task", None)
    seeds = merged.pop("seeds", None)
    if seeds is None:
        seeds = merged.get("seed", runner.DEFAULTS[task]["seed"])
    merged.pop("seed", None)
    seeds = parse_seeds(seeds)
    keys = sorted(merged)
    values = [v if isinstance(v, list) else [v] for v in (merged[k] for k in keys)]
    for k, v in zip(keys, values):
        if not v:
            raise SweepError(f"{where}: {k} is an empty list")
    out = []
    for combo in itertools.product(*values):
        settings = dict(zip(keys, combo))
        for m in methods:
            ms = _method_settings(m, settings, task, where)
            for seed in seeds:
                s = dict(settings, seed=seed, **ms)
                no_clip = "clip" in s and (s["clip"] is None or str(s["clip"]).lower() in ("none", "off"))
                if no_clip:
                    s.pop("clip")
                try:
                    cfg = runner.make_config(task, **s)
                except RunError as e:
                    raise SweepError(f"{where}: {e}") from None
                if no_clip:
                    cfg["clip"] = None
                if METHODS[cfg["method"]].param != "truncation":
                    cfg["truncation"] = None
                out.append(cfg)
    return out


def _fmt_value(key, v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and key in {k for c in TASKS.values() for k in c.path_keys}:
        return os.path.basename(v).split(".")[0]
    return "none" if v is None else str(v)


def run_names(cfgs):
    """The folder name of each config (module docstring); :class:`SweepError` if two coincide."""
    skip = {"task", "method", "rank", "truncation", "seed"}
    varying = {}
    for task in {c["task"] for c in cfgs}:
        group = [c for c in cfgs if c["task"] == task]
        keys = [k for k in group[0] if k not in skip]
        varying[task] = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in group}) > 1]
    names = []
    for c in cfgs:
        param = c.get("rank") if METHODS[c["method"]].param == "rank" else c.get("truncation")
        name = f"{c['task']}-{c['method']}{'' if param is None else param}-seed{c['seed']}"
        name += "".join(f"-{k}{_fmt_value(k, c.get(k))}" for k in varying[c["task"]])
        names.append(re.sub(r"[^A-Za-z0-9._+=-]", "_", name))
    seen = {}
    for n, c in zip(names, cfgs):
        if n in seen:
            raise SweepError(f"two runs of the grid would share the folder name {n}: their settings differ"
                             " only in digits the name drops; make the values differ more")
        seen[n] = c
    return names


# ------------------------------------------------------------------------------------------------
# one run (on a worker)
# ------------------------------------------------------------------------------------------------
_ENV_LOCK = threading.Lock()


class _WorkerProgress(Progress):
    """Records the start step and the first step's time (kernel compilation)."""

    def __init__(self):
        self.start_step = 0
        self.first_step_seconds = None
        self.on_start = None

    def start(self, step, total, info):
        self.start_step = step
        if self.on_start is not None:
            self.on_start()

    def first_step(self, seconds):
        self.first_step_seconds = seconds


@contextmanager
def _stop_after(step, progress):
    """``OKNUMBA_STOP_AFTER_STEP=step`` while the run is built (it reads the variable then),
    restored when the loop starts; a lock keeps other tasks of the process from seeing it."""
    if step is None:
        yield
        return
    _ENV_LOCK.acquire()
    old = os.environ.get(STOP_ENV)
    os.environ[STOP_ENV] = str(step)
    released = False

    def release():
        nonlocal released
        if not released:
            released = True
            if old is None:
                os.environ.pop(STOP_ENV, None)
            else:
                os.environ[STOP_ENV] = old
            _ENV_LOCK.release()

    progress.on_start = release
    try:
        yield
    finally:
        release()


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
            with _stop_after(stop_at, progress):
                if files:
                    summary = runner.resume(out, progress=progress,
                                            **{k: config.get(k) for k in runner.RESUMABLE_OVERRIDES})
                else:
                    summary = runner.train(config, out, progress=progress)
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


# ------------------------------------------------------------------------------------------------
# the client
# ------------------------------------------------------------------------------------------------
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
    diff = [k for k in keys if not runner._same_setting(cfg.get(k), doc.get(k))]
    if diff:
        text = ", ".join(f"{k}={doc.get(k)!r} (the sweep has {cfg.get(k)!r})" for k in diff)
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
        from .progress import hms

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
    if steps > res.get("start_step", 0):
        sweep.seconds += res.get("seconds") or 0.0
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


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
_SWEEP_DESCRIPTION = """\
Run a grid of independent training runs (task x methods x seeds x options) on Dask distributed:
a LocalCluster of --workers processes with one thread each, or an existing cluster (--scheduler).
Each run writes an ordinary run folder DIR/<name> (the files of oknumba train), also when the
workers share no file system with this machine (results travel back through Dask). A run executes
in segments of --checkpoint-every steps; each finished segment's checkpoint is stored in its
folder, so re-running the same command skips finished runs, continues interrupted ones (a Ctrl-C
here, a killed worker) from their checkpoints and retries failed ones. Needs oknumba[sweep].

The grid: TASK with --methods, --seeds and any option of oknumba train TASK; or a spec file
(TOML/JSON: shared settings plus a list `grid` of entries, a list value varies a setting; see the
README) whose settings the options given here override; or --preset (paper-copy, paper-ptb: the
authors' released settings; small: the paper's comparisons at reduced size, about 25 min on 2
cores; its char-LM runs take --train/--valid or $OKNUMBA_PTB_DIR). TASK with a spec or preset keeps
only that task's runs.

Examples:
  oknumba sweep copy --methods ok:8,kf,tbptt:20 --seeds 0-2 --steps 20000 --out runs/sw
  oknumba sweep grid.toml --workers 2 --out runs/grid
  oknumba sweep --preset small --train ptb.char.train.txt.gz --valid ptb.char.valid.txt --out runs/small
  oknumba report runs/sw --out runs/sw-report
"""


def add_sweep_parser(sub):
    """``oknumba sweep``: every option of ``oknumba train TASK`` (the union over the tasks) plus
    the sweep's own."""
    from . import cli

    p = sub.add_parser("sweep", help="a grid of runs (methods x seeds x options) on Dask; resumable",
                       description=_SWEEP_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       conflict_handler="resolve")
    tasks = list(TASKS)
    cli._add_train_options(p, tasks[0])
    for t in tasks[1:]:
        cls = TASKS[t]
        if any(k not in runner.COMMON_DEFAULTS for k in cls.defaults):
            cls.add_arguments(p.add_argument_group(f"{t} task (ignored by the other tasks)"),
                              lambda k, t=t: cli._fmt_default(runner.DEFAULTS[t][k]))
    for action in p._actions:          # defaults that differ between tasks: name them all
        key = action.dest
        if action.help and key in runner.COMMON_DEFAULTS.keys() | {"hidden", "rank", "batch", "lr", "steps"}:
            vals = {t: runner.DEFAULTS[t].get(key) for t in tasks}
            if len({json.dumps(v) for v in vals.values()}) > 1:
                text = ", ".join(f"{t} {cli._fmt_default(v)}" for t, v in vals.items())
                action.help = re.sub(r"\(default: [^()]*(\([^()]*\)[^()]*)*\)$", f"(default: the task's: {text})",
                                     action.help)
    p.add_argument("target", nargs="?", metavar="TASK|SPEC",
                   help=f"a task ({', '.join(tasks)}) or a spec file (.toml/.json) (default: the preset's tasks)")
    g = p.add_argument_group("sweep")
    g.add_argument("--methods", metavar="LIST",
                   help="comma-separated method specs, e.g. ok:8,kf,uoro,tbptt:20; a bare ok / tbptt takes --rank /"
                        " --truncation (default: --method, else the task's)")
    g.add_argument("--seeds", metavar="RANGE", help="seeds, e.g. 0-2 or 0,3,5 (default: --seed, else 0)")
    g.add_argument("--preset", choices=list(PRESETS), help="a built-in grid (see above) (default: none)")
    g.add_argument("--out", metavar="DIR",
                   help="the sweep folder: one run folder per run and sweep.json (required unless the spec names one)")
    g.add_argument("--workers", type=cli._positive_int,
                   help="worker processes of the LocalCluster (default: the CPU count, at most one per run)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="use the Dask cluster at ADDRESS (tcp://host:8786) instead of a LocalCluster (default: none)")
    g.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each; run nothing")
    g.add_argument("--quiet", action="store_true", help="only failures and the final line (default: off)")
    p.add_argument("--resume", help=argparse.SUPPRESS)
    p.add_argument("--overwrite", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_sweep, task=None)
    return p


def _err(msg):
    print(f"oknumba: error: {msg}", file=sys.stderr)


def grid_from_args(args):
    """``(runs, out_dir)`` from the parsed ``oknumba sweep`` options (:class:`SweepError`)."""
    if args.resume:
        raise SweepError("--resume is not a sweep option: run the same sweep command again; it skips finished"
                         " runs and continues interrupted ones from their checkpoints")
    if args.overwrite:
        raise SweepError("--overwrite is not a sweep option: remove the run folders DIR/<name> to run them afresh")
    task, spec, base_dir, where = None, None, None, "the options"
    if args.target in TASKS:
        task = args.target
    elif args.target is not None:
        if not (args.target.lower().endswith((".toml", ".json")) or os.path.isfile(args.target)):
            raise SweepError(f"TASK|SPEC must be a task ({', '.join(TASKS)}) or a spec file (.toml/.json),"
                             f" got {args.target!r}")
        spec = load_spec(args.target)
        base_dir, where = os.path.dirname(os.path.abspath(args.target)), f"spec file {args.target}"
    if args.preset:
        if spec is not None:
            raise SweepError("give a spec file or --preset, not both")
        spec, where = json.loads(json.dumps(PRESETS[args.preset])), f"the {args.preset} preset"
    if spec is None:
        if task is None:
            raise SweepError(f"name a task ({', '.join(TASKS)}), a spec file or --preset")
        spec = {"task": task}
    keys = sorted({k for t in TASKS for k in runner.DEFAULTS[t]} - {"task"})
    given = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if args.methods is not None:
        if "method" in given:
            raise SweepError("give --methods or --method, not both")
        given["methods"] = args.methods
    elif "method" in given:
        given["methods"] = given.pop("method")
    if args.seeds is not None:
        if "seed" in given:
            raise SweepError("give --seeds or --seed, not both")
        given["seeds"] = args.seeds
    elif "seed" in given:
        given["seeds"] = given.pop("seed")
    runs = expand_grid(spec, given, task=task, base_dir=base_dir, where=where)
    out = args.out or spec.get("out")
    if not out:
        raise SweepError("give the sweep folder: --out DIR")
    if base_dir is not None and not args.out and not os.path.isabs(out):
        out = os.path.join(base_dir, out)
    return runs, out


def cmd_sweep(args):
    try:
        runs, out = grid_from_args(args)
        if args.dry_run:
            for name, cfg in runs:
                state, detail = folder_state(os.path.join(out, name), cfg)
                what = {"fresh": "start", "resume": f"continue from step {detail}", "done": "finished: skip",
                        "diverged": "diverged earlier: skip", "conflict": f"refused: {detail}"}[state]
                print(f"{name}: {cfg['steps']} steps; {what}")
            print(f"{len(runs)} runs in {out}")
            return 0
        _import_dask()
        display = SweepDisplay(quiet=args.quiet)
        sweep = run_sweep(runs, out, workers=args.workers, scheduler=args.scheduler, display=display)
    except SweepError as e:
        _err(str(e))
        return 2
    except SweepInterrupted as e:
        c = e.sweep.counts()
        print(f"\nsweep interrupted: {c['done']} runs finished now, {c['skipped']} earlier, {c['failed']} failed,"
              f" {c['pending'] + c['running']} unfinished; run the same command again to continue them from"
              " their last checkpoints", file=sys.stderr)
        return 130
    c = sweep.counts()
    failed = [r for r in sweep.runs if r.status in ("failed", "diverged")]
    print(f"sweep: {c['done'] + c['skipped']} of {c['total']} runs finished ({c['done']} now, {c['skipped']} earlier),"
          f" {len(failed)} failed; run folders and {SWEEP_FILE} in {out}")
    if failed:
        print("failed: " + ", ".join(r.name for r in failed) + f" (errors in {os.path.join(out, SWEEP_FILE)});"
              " re-run the same command to retry them", file=sys.stderr)
        return 1
    return 0


__all__ = ["PRESETS", "SweepError", "DaskMissing", "parse_seeds", "load_spec", "expand_grid", "run_names",
           "run_one", "next_stop", "folder_state", "run_sweep", "Sweep", "SweepDisplay", "SweepInterrupted",
           "add_sweep_parser", "cmd_sweep", "grid_from_args", "read_files", "write_files"]
