"""Training runs behind ``oknumba train``: configurations and the two entry points
:func:`train` and :func:`resume`.

No argument parsing and no terminal output here: :mod:`oknumba.cli` builds a config dict,
calls :func:`train` or :func:`resume`, and shows progress through a :class:`Progress` object.
A config is the common settings (:data:`COMMON_DEFAULTS`) plus the task's
(:mod:`oknumba.tasks`, one registry: ``DEFAULTS[task]`` for every registered task). The loop
itself is task-agnostic (:mod:`oknumba.training`); the files of a run folder are described
in :mod:`oknumba.run_folder`.
"""
import math
import os
import time
from collections.abc import Mapping

from .cells import CELLS
from .methods import METHODS
from .optim import OPTIMIZERS
from .run_folder import (CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, PARAMS_FILE, SUMMARY_FILE,
                         RunError, RunFolder, read_json, read_metrics)
from .tasks import TASKS
from .training import RUN_FORMAT, RUN_VERSION, STOP_ENV, Interrupted, Progress, TrainingRun

#: Settings shared by every task. ``threads`` is meant for speed, but parallel kernels may sum in
#: another order: a resumed run is bit-identical only with the same value.
COMMON_DEFAULTS = dict(
    cell="rhn", depth=1, layers=1, method="ok", optimizer="adam", clip=1.0, truncation=None, dtype="float64",
    seed=0, threads=1, log_every=1000, checkpoint_every=10000, device="cpu",
)


class _Defaults(Mapping):
    """``DEFAULTS[task]``: the common defaults updated by the registered task's."""

    def __getitem__(self, task):
        cls = TASKS[task]
        return dict(COMMON_DEFAULTS, task=task, **cls.defaults)

    def __iter__(self):
        return iter(TASKS)

    def __len__(self):
        return len(TASKS)


DEFAULTS = _Defaults()
COPY_DEFAULTS = DEFAULTS["copy"]
CHARLM_DEFAULTS = DEFAULTS["charlm"]
#: Settings a resumed run may change (``steps`` extends a run; ``threads`` may change the last bits).
RESUMABLE_OVERRIDES = ("steps", "threads", "log_every", "checkpoint_every", "device")


# ------------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------------
def _task_class(task):
    if task not in TASKS:
        raise RunError(f"task must be one of {list(TASKS)}, got {task!r}")
    return TASKS[task]


def make_config(task, **settings):
    """The full config of a new run: the task's defaults updated by ``settings`` (None values
    mean "use the default"), checked. Raises :class:`RunError` on a bad setting."""
    cls = _task_class(task)
    cfg = DEFAULTS[task]
    unknown = sorted(set(settings) - set(cfg))
    if unknown:
        raise RunError(f"unknown settings for task {task!r}: {unknown}")
    cfg.update({k: v for k, v in settings.items() if v is not None})
    if cfg["method"] not in METHODS:
        raise RunError(f"method must be one of {list(METHODS)}, got {cfg['method']!r}")
    if METHODS[cfg["method"]].param != "rank":
        cfg["rank"] = None
    if cfg["method"] == "tbptt" and cfg["truncation"] is None:
        raise RunError("method tbptt needs a truncation (e.g. --truncation 20)")
    for key in cls.path_keys:
        if cfg.get(key):
            cfg[key] = os.path.abspath(os.fspath(cfg[key]))
    _check_config(cfg)
    return cfg


def _check_config(cfg):
    def positive(key, allow_none=False, minimum=1):
        v = cfg.get(key)
        if v is None and allow_none:
            return
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise RunError(f"{key} must be an integer >= {minimum}, got {v!r}")

    def per_layer(key):
        """A setting given once or per layer (a list, bottom layer first)."""
        v = cfg.get(key)
        return list(v) if isinstance(v, (list, tuple)) else [v]

    for c in per_layer("cell"):
        if c not in CELLS:
            raise RunError(f"cell must be one of {sorted(CELLS)} (or one per layer), got {cfg['cell']!r}")
    if cfg["method"] not in METHODS:
        raise RunError(f"method must be one of {list(METHODS)}, got {cfg['method']!r}")
    if cfg["optimizer"] not in OPTIMIZERS:
        raise RunError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {cfg['optimizer']!r}")
    if cfg["dtype"] not in ("float32", "float64"):
        raise RunError(f"dtype must be float32 or float64, got {cfg['dtype']!r}")
    for key in ("batch", "steps", "log_every", "layers"):
        positive(key)
    for key in ("hidden", "depth"):
        for v in per_layer(key):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise RunError(f"{key} must be an integer >= 1 (or one per layer), got {cfg[key]!r}")
    lengths = {len(v) for v in (cfg["cell"], cfg["hidden"], cfg["depth"]) if isinstance(v, (list, tuple))}
    if any(n != cfg["layers"] for n in lengths) and not (cfg["layers"] == 1 and len(lengths) == 1):
        raise RunError(f"per-layer settings (cell {cfg['cell']!r}, hidden {cfg['hidden']!r}, depth"
                       f" {cfg['depth']!r}) must have one entry for each of the {cfg['layers']} layers")
    if lengths and cfg["layers"] == 1:
        cfg["layers"] = lengths.pop()
    positive("threads", allow_none=True)
    if cfg.get("device", "cpu") not in ("cpu", "gpu"):
        raise RunError(f"device must be cpu or gpu, got {cfg['device']!r}")
    positive("checkpoint_every", minimum=0)
    positive("seed", minimum=0)
    if METHODS[cfg["method"]].param == "rank":
        positive("rank")
    if not (isinstance(cfg["lr"], (int, float)) and math.isfinite(cfg["lr"]) and cfg["lr"] > 0):
        raise RunError(f"lr must be a positive number, got {cfg['lr']!r}")
    if cfg["clip"] is not None and not (isinstance(cfg["clip"], (int, float)) and cfg["clip"] > 0):
        raise RunError(f"clip must be a positive number (or none), got {cfg['clip']!r}")
    try:
        _task_class(cfg["task"]).check_config(cfg)
    except (ValueError, TypeError) as e:
        raise RunError(str(e)) from None


def default_out_dir(cfg, root="runs"):
    """``runs/<task>-<method>[<rank>]-<YYYYmmdd-HHMMSS>`` (a numeric suffix if it exists)."""
    m = cfg["method"] + ("" if cfg.get("rank") is None else str(cfg["rank"]))
    base = os.path.join(root, f"{cfg['task']}-{m}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = f"{base}-{i}"
    return path


# ------------------------------------------------------------------------------------------------
# public entry points
# ------------------------------------------------------------------------------------------------
def train(cfg, out_dir, progress=None, overwrite=False, stop_after=None):
    """Start a new run with config ``cfg`` (from :func:`make_config`) in ``out_dir``.

    ``overwrite``: remove a run already in ``out_dir`` first (its files only); ``stop_after``:
    stop with a checkpoint right after that step, raising :class:`Interrupted` (a segment).
    Returns the summary dict. Raises :class:`RunError` (bad settings, folder already holds
    a run) or :class:`Interrupted` (after writing the checkpoint).
    """
    _check_config(cfg)
    folder = RunFolder(out_dir)
    if folder.holds_run() and not overwrite:
        summary = folder.read_summary() or {}
        if summary.get("status") == "diverged":
            raise RunError(f"{out_dir} holds a run that diverged at step {summary.get('diverged_at_step')};"
                           " start afresh there with --overwrite, or pick another --out")
        raise RunError(f"{out_dir} already holds a run: continue it with --resume {out_dir}, start"
                       " afresh there with --overwrite, or pick another --out")
    run = TrainingRun(_task_class(cfg["task"]), cfg, out_dir, progress, stop_after=stop_after)
    if overwrite:
        folder.clear()
    folder.remove_stale_temporaries()
    run.folder.create(run.full_config())
    return run.loop()


def load_run_config(out_dir):
    """The training settings stored in ``out_dir/config.json``."""
    doc = read_json(os.path.join(out_dir, CONFIG_FILE), "run config")
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT or doc.get("task") not in TASKS:
        raise RunError(f"{os.path.join(out_dir, CONFIG_FILE)} is not an oknumba run config"
                       + ("" if not isinstance(doc, dict) or doc.get("task") in TASKS or doc.get("task") is None
                          else f" of a known task (it names {doc.get('task')!r}; known: {list(TASKS)})"))
    if doc.get("version") != RUN_VERSION:
        raise RunError(f"{out_dir} was written by run format version {doc.get('version')}, this is {RUN_VERSION}")
    return doc


class ResumeConflict(RunError):
    """Settings given with a resume that differ from the stored run's: ``conflicts`` is a list
    of ``(key, given, stored)``."""

    def __init__(self, out_dir, conflicts):
        self.out_dir, self.conflicts = out_dir, conflicts
        text = ", ".join(f"{k}={g!r} (the run has {s!r})" for k, g, s in conflicts)
        super().__init__(f"cannot change {text} when resuming {out_dir}: its config.json fixes them"
                         f" (only {list(RESUMABLE_OVERRIDES)} may change)")


def _same_setting(given, stored):
    """Whether a setting given with ``--resume`` equals the stored one (paths: the same file)."""
    if given == stored:
        return True
    if isinstance(given, str) and isinstance(stored, str):
        try:
            return os.path.samefile(given, stored)
        except OSError:
            return os.path.abspath(given) == os.path.abspath(stored)
    if isinstance(given, float) and isinstance(stored, (int, float)) and not isinstance(stored, bool):
        return math.isclose(given, stored, rel_tol=1e-12, abs_tol=0.0)
    return False


def resume(out_dir, progress=None, stop_after=None, **overrides):
    """Continue the run in ``out_dir`` from its checkpoint up to its configured steps.

    ``overrides`` may change only :data:`RESUMABLE_OVERRIDES` (e.g. ``steps`` to extend a run);
    other settings may be given when they equal the stored ones (the original command plus
    ``--resume`` works), a differing one raises :class:`ResumeConflict`.
    Returns the summary dict; raises :class:`RunError` or :class:`Interrupted`.
    """
    doc = load_run_config(out_dir)
    summary = RunFolder(out_dir).read_summary() or {}
    if summary.get("status") == "diverged":
        raise RunError(f"{out_dir} holds a run that diverged at step {summary.get('diverged_at_step')}: with"
                       " the same settings it would diverge again; start afresh there with --overwrite"
                       " (and e.g. a lower --lr), or pick another --out")
    conflicts = [(k, v, doc.get(k)) for k, v in overrides.items()
                 if v is not None and k not in RESUMABLE_OVERRIDES and not _same_setting(v, doc.get(k))]
    if conflicts:
        raise ResumeConflict(out_dir, conflicts)
    overrides = {k: v for k, v in overrides.items() if k in RESUMABLE_OVERRIDES}
    cfg = {k: doc.get(k, v) for k, v in DEFAULTS[doc["task"]].items()}
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    try:
        _check_config(cfg)
    except RunError as e:
        raise RunError(f"{out_dir}/config.json: {e}") from None
    run = TrainingRun(_task_class(cfg["task"]), cfg, out_dir, progress, stop_after=stop_after)
    if run.learner.config() != doc.get("learner"):
        raise RunError(f"{out_dir}/config.json is inconsistent: the rebuilt learner differs from the stored one")
    try:
        run.task.check_resume(doc)
    except ValueError as e:
        raise RunError(str(e).replace("config.json", f"{out_dir}/config.json")) from None
    run.restore()
    if run.learner.steps > cfg["steps"]:
        raise RunError(f"the checkpoint is at step {run.learner.steps}, beyond the requested {cfg['steps']} steps")
    if any(overrides.get(k) is not None for k in RESUMABLE_OVERRIDES):
        doc.update({k: cfg[k] for k in RESUMABLE_OVERRIDES})
        run.folder.write_config(doc)
    return run.loop()


__all__ = ["COMMON_DEFAULTS", "DEFAULTS", "RESUMABLE_OVERRIDES", "RunError", "ResumeConflict", "Interrupted",
           "Progress",
           "make_config", "default_out_dir", "train", "resume", "load_run_config", "read_metrics",
           "STOP_ENV", "CONFIG_FILE", "METRICS_FILE", "SUMMARY_FILE", "PARAMS_FILE", "CHECKPOINT_FILE"]
