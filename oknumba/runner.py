"""Training runs: task ↔ learner ↔ metrics ↔ checkpoints (the loop behind ``oknumba train``).

No argument parsing and no terminal output here: :mod:`oknumba.cli` builds a config dict,
calls :func:`train` or :func:`resume`, and shows progress through a :class:`Progress` object.

A run lives in one output folder:

``config.json``
    Every setting (see :data:`COPY_DEFAULTS` / :data:`CHARLM_DEFAULTS`), the model sizes and,
    for the char-LM task, the corpus summary with its vocabulary.
``metrics.jsonl``
    One JSON record per log interval (and at every evaluation and the last step):
    ``step``, ``wall_seconds``, ``steps_per_s``, ``loss_bits`` (mean per-step cross-entropy
    over the interval, bits) and ``level``/``avg`` (copy) or ``train_bpc``/``valid_bpc``
    (char-LM; ``valid_bpc`` is null where no evaluation ran).
``summary.json``
    ``task``, ``method``, ``cell``, ``hidden``, ``rank``, ``batch``, ``seed``, ``steps``,
    ``wall_seconds``, ``final_loss_bits`` and ``level`` (copy) or ``valid_bpc`` (char-LM),
    plus ``status`` (``"complete"`` or ``"interrupted"``).
``params.npz``
    One array per key of ``model.params`` (``W``, ``V``).
``checkpoint.npz``
    Written atomically every ``checkpoint_every`` steps, at the end of the run (when
    ``checkpoint_every > 0``) and **always** on SIGINT/SIGTERM. It holds the learner (via
    :func:`oknumba.checkpoint.save_checkpoint`) plus the task or stream state, the metric
    accumulators and the wall time so far, so a resumed run continues bit-identically:
    its final ``params.npz`` equals that of an uninterrupted run with the same config.

Interruption: the first SIGINT/SIGTERM asks the loop to stop after the current step (or
evaluation chunk); the loop writes the checkpoint, ``summary.json`` (status
``"interrupted"``) and ``params.npz``, then raises :class:`Interrupted`. A second signal
aborts at once (``KeyboardInterrupt``) without a new checkpoint. For tests, the environment
variable ``OKNUMBA_STOP_AFTER_STEP=N`` acts like a SIGINT arriving right after step N.
"""
import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager

import numpy as np

from .cells import CELLS
from .checkpoint import load_checkpoint, save_checkpoint
from .methods import METHODS
from .learner import OnlineLearner
from .model import RNN

LN2 = math.log(2.0)
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PARAMS_FILE = "params.npz"
CHECKPOINT_FILE = "checkpoint.npz"
STOP_ENV = "OKNUMBA_STOP_AFTER_STEP"
RUN_FORMAT = "oknumba-run"
RUN_VERSION = 1
TASKS = ("copy", "charlm")

#: Settings shared by both tasks. ``threads`` is meant for speed, but parallel kernels may sum in
#: another order: a resumed run is bit-identical only with the same value.
COMMON_DEFAULTS = dict(
    cell="rhn", method="ok", optimizer="adam", clip=1.0, truncation=None, dtype="float64", seed=0,
    threads=1, log_every=1000, checkpoint_every=10000, device="cpu",
)
#: Defaults of ``oknumba train copy``: a small RHN that visibly learns in about a minute on
#: two cores (measured level 12–13 after 50k steps at ≈ 1.2 ms/step). lr 3e-3 instead of the
#: paper's 10^-3.5, which reaches only level 4 in 30k steps at this size.
COPY_DEFAULTS = dict(COMMON_DEFAULTS, task="copy", hidden=32, rank=8, batch=8, lr=3e-3, steps=50000)
#: Defaults of ``oknumba train charlm``: the paper's setting scaled down (n 128 instead of 256).
CHARLM_DEFAULTS = dict(COMMON_DEFAULTS, task="charlm", hidden=128, rank=8, batch=32, lr=10 ** -3.5,
                       steps=100000, eval_every=10000, eval_chars=None, reset_every=100,
                       train=None, valid=None)
DEFAULTS = {"copy": COPY_DEFAULTS, "charlm": CHARLM_DEFAULTS}
#: Settings a resumed run may change (``steps`` extends a run; ``threads`` may change the last bits).
RESUMABLE_OVERRIDES = ("steps", "threads", "log_every", "checkpoint_every", "device")


class RunError(Exception):
    """A run cannot start or continue (bad settings, refused checkpoint, missing files)."""


class Interrupted(Exception):
    """Raised after a SIGINT/SIGTERM (or the test hook) once the checkpoint is written."""

    def __init__(self, out_dir, step, total, signame, task):
        self.out_dir, self.step, self.total, self.signame, self.task = out_dir, step, total, signame, task
        self.checkpoint = os.path.join(out_dir, CHECKPOINT_FILE)
        super().__init__(f"{signame}: stopped at step {step} of {total}; checkpoint saved to {self.checkpoint}")

    @property
    def exit_code(self):
        return 128 + (signal.SIGTERM if self.signame == "SIGTERM" else signal.SIGINT)


class Progress:
    """Receiver of progress events; the base class ignores them all.

    ``interval`` (seconds) is how often :meth:`update` is called at most; None: never.
    """

    interval = None

    def start(self, step, total, info):
        pass

    def update(self, step, total, steps_per_s, info):
        pass

    def record(self, rec, total):
        pass

    def message(self, text):
        pass

    def close(self):
        pass


class _StopNow(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------------
def make_config(task, **settings):
    """The full config of a new run: the task's defaults updated by ``settings`` (None values
    mean "use the default"), checked. Raises :class:`RunError` on a bad setting."""
    if task not in DEFAULTS:
        raise RunError(f"task must be one of {list(TASKS)}, got {task!r}")
    cfg = dict(DEFAULTS[task])
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
    for key in ("train", "valid"):
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

    if cfg["cell"] not in CELLS:
        raise RunError(f"cell must be one of {sorted(CELLS)}, got {cfg['cell']!r}")
    if cfg["dtype"] not in ("float32", "float64"):
        raise RunError(f"dtype must be float32 or float64, got {cfg['dtype']!r}")
    for key in ("hidden", "batch", "steps", "log_every"):
        positive(key)
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
    if cfg["task"] == "charlm":
        positive("eval_every")
        positive("reset_every")
        positive("eval_chars", allow_none=True)
        if not cfg.get("train"):
            raise RunError("the charlm task needs a training text (--train PATH)")
        if not cfg.get("valid"):
            raise RunError("the charlm task needs an evaluation text (--valid PATH)")


def default_out_dir(cfg, root="runs"):
    """``runs/<task>-<method>[<rank>]-<YYYYmmdd-HHMMSS>`` (a numeric suffix if it exists)."""
    m = cfg["method"] + ("" if cfg.get("rank") is None else str(cfg["rank"]))
    base = os.path.join(root, f"{cfg['task']}-{m}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = f"{base}-{i}"
    return path


def _write_json(path, doc):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path} not found: is this an oknumba run folder?") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{what} {path} is unreadable ({e})") from None


def read_metrics(path):
    """The records of a ``metrics.jsonl`` (a half-written last line is skipped)."""
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except ValueError:
                continue
    return recs


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------
class _Run:
    def __init__(self, cfg, out_dir, progress):
        self.cfg = cfg
        self.out = out_dir
        self.progress = progress or Progress()
        self.task = cfg["task"]
        self.total = cfg["steps"]
        self.corpus = None
        if self.task == "copy":
            from .tasks import CopyTask

            n_in = n_out = CopyTask.n_symbols
            self.source = CopyTask(cfg["batch"], seed=cfg["seed"])
        else:
            self.corpus = _load_corpus(cfg)
            n_in = n_out = self.corpus.vocab.size
            self.source = self.corpus.train_streams(cfg["batch"], reset_every=cfg["reset_every"])
            if cfg["eval_chars"] is None:
                self.eval_ids = self.corpus.valid_ids
            else:
                self.eval_ids = self.corpus.valid_ids[:cfg["eval_chars"] + 1]
            if self.eval_ids.size < 2:
                raise RunError("the evaluation text must hold at least 2 symbols")
        self.n_in, self.n_out = n_in, n_out
        try:
            self.model = RNN(cfg["cell"], n_in, cfg["hidden"], n_out, seed=cfg["seed"],
                             dtype=np.dtype(cfg["dtype"]))
            self.learner = OnlineLearner(self.model, cfg["method"], rank=cfg["rank"], batch=cfg["batch"],
                                         optimizer=cfg["optimizer"], lr=cfg["lr"], clip=cfg["clip"],
                                         truncation=cfg["truncation"], seed=cfg["seed"],
                                         threads=cfg["threads"], device=cfg.get("device", "cpu"))
        except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
            raise RunError(str(e)) from None
        # metric accumulators over the current log interval (saved in checkpoints)
        self.acc = {"loss_sum": 0.0, "loss_n": 0, "train_seconds": 0.0, "logged_through": 0,
                    "wall_before": 0.0, "last_loss_bits": None, "last_valid_bpc": None}
        self.stop_signal = None
        self.stop_after = _stop_after_env()
        self.saved_step = 0

    # -- files ------------------------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.out, name)

    def full_config(self):
        doc = {"format": RUN_FORMAT, "version": RUN_VERSION, **self.cfg,
               "n_in": self.n_in, "n_out": self.n_out, "learner": self.learner.config()}
        if self.corpus is not None:
            doc["corpus"] = self.corpus.summary()
            doc["vocab"] = self.corpus.vocab.to_dict()
        return doc

    def write_outputs(self, status):
        path = self.path(PARAMS_FILE)
        tmp = f"{path}.tmp-{os.getpid()}"
        self.learner.sync()
        with open(tmp, "wb") as f:
            np.savez(f, **self.model.params)
        os.replace(tmp, path)
        c = self.cfg
        s = {"task": self.task, "method": c["method"], "cell": c["cell"], "hidden": c["hidden"],
             "rank": c["rank"], "batch": c["batch"], "seed": c["seed"], "lr": c["lr"], "dtype": c["dtype"],
             "steps": self.learner.steps, "target_steps": self.total, "status": status,
             "wall_seconds": round(self.wall(), 3), "final_loss_bits": self.acc["last_loss_bits"]}
        if self.task == "copy":
            s["level"] = int(self.source.level)
            s["avg"] = float(self.source.avg)
        else:
            s["valid_bpc"] = self.acc["last_valid_bpc"]
            s["eval_chars"] = int(self.eval_ids.size - 1)
        _write_json(self.path(SUMMARY_FILE), s)
        return s

    def save(self):
        extra = {"format": RUN_FORMAT, "task": self.task, "step": self.learner.steps,
                 "source": self.source.state_dict(), "acc": dict(self.acc, wall_before=self.wall()),
                 "config": {k: self.cfg[k] for k in _identity_keys(self.cfg)}}
        save_checkpoint(self.path(CHECKPOINT_FILE), self.learner, extra=extra)
        self.saved_step = self.learner.steps

    def restore(self):
        path = self.path(CHECKPOINT_FILE)
        try:
            extra = load_checkpoint(path, self.learner)
        except FileNotFoundError:
            raise RunError(f"no checkpoint in {self.out} ({CHECKPOINT_FILE} is missing): the run was stopped"
                           " before any checkpoint was written; start it again") from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise RunError(f"refusing checkpoint {path}: {e}") from None
        try:
            if extra.get("format") != RUN_FORMAT or extra.get("task") != self.task:
                raise ValueError(f"it was written by a {extra.get('task')!r} run, this run is {self.task!r}")
            saved = extra["config"]
            diff = {k: (saved.get(k), self.cfg[k]) for k in _identity_keys(self.cfg) if saved.get(k) != self.cfg[k]}
            if diff:
                raise ValueError(f"differing settings (checkpoint, config.json): {diff}")
            if int(extra["step"]) != self.learner.steps:
                raise ValueError(f"step {extra['step']} disagrees with the learner's {self.learner.steps}")
            self.source.load_state_dict(extra["source"])
            acc = extra["acc"]
            missing = set(self.acc) - set(acc)
            if missing:
                raise ValueError(f"metric state lacks {sorted(missing)}")
            self.acc.update({k: acc[k] for k in self.acc})
            self.saved_step = self.learner.steps
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RunError(f"refusing checkpoint {path}: it does not match this run ({e})") from None
        # drop metric records written after the checkpoint
        mpath = self.path(METRICS_FILE)
        recs = read_metrics(mpath) if os.path.exists(mpath) else []
        keep = [r for r in recs if isinstance(r, dict) and r.get("step", 0) <= self.learner.steps]
        tmp = f"{mpath}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            for r in keep:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, mpath)

    # -- timing -----------------------------------------------------------------------------
    def wall(self):
        return self.acc["wall_before"] + (time.perf_counter() - self.t_start)

    # -- metrics ----------------------------------------------------------------------------
    def live_info(self):
        info = {}
        n = self.acc["loss_n"]
        if self.task == "copy":
            info["level"] = int(self.source.level)
            info["avg"] = float(self.source.avg)
        else:
            loss = self.acc["loss_sum"] / n if n else self.acc["last_loss_bits"]
            if loss is not None:
                info["train_bpc"] = loss
            if self.acc["last_valid_bpc"] is not None:
                info["valid_bpc"] = self.acc["last_valid_bpc"]
        return info

    def evaluate(self):
        from .functional import stream_loss
        from .tasks import bits_per_char

        self.learner.sync()
        state, total, count = None, 0.0, 0
        for xs, ys in self.corpus.eval_chunks(chunk_len=1000, streams=1, ids=self.eval_ids):
            nats, n, state = stream_loss(self.model, xs, ys, state=state)
            total += nats
            count += n
            if self.stop_signal is not None:
                raise _StopNow()
        return bits_per_char(total, count)

    def bookkeeping(self):
        """Log (and evaluate) if this step is due; checkpoint if due. Idempotent per step."""
        step, cfg = self.learner.steps, self.cfg
        if self.acc["logged_through"] < step:
            due_eval = self.task == "charlm" and (step % cfg["eval_every"] == 0 or step == self.total)
            if step % cfg["log_every"] == 0 or step == self.total or due_eval:
                rec = {"step": step}
                valid = None
                if due_eval:
                    self.progress.message(f"evaluating on {self.eval_ids.size - 1} characters at step {step}")
                    t0 = time.perf_counter()
                    valid = self.evaluate()
                    self.acc["last_valid_bpc"] = valid
                    rec["eval_seconds"] = round(time.perf_counter() - t0, 3)
                n = self.acc["loss_n"]
                loss = self.acc["loss_sum"] / n if n else None
                rate = n / self.acc["train_seconds"] if self.acc["train_seconds"] > 0 else None
                rec.update(wall_seconds=round(self.wall(), 3), steps_per_s=None if rate is None else round(rate, 2),
                           loss_bits=loss)
                if self.task == "copy":
                    rec.update(level=int(self.source.level), avg=float(self.source.avg))
                else:
                    rec.update(train_bpc=loss, valid_bpc=valid)
                with open(self.path(METRICS_FILE), "a") as f:
                    f.write(json.dumps(rec) + "\n")
                if loss is not None:
                    self.acc["last_loss_bits"] = loss
                self.acc.update(loss_sum=0.0, loss_n=0, train_seconds=0.0)
                self.progress.record(rec, self.total)
            self.acc["logged_through"] = step
        every = cfg["checkpoint_every"]
        if every and step > self.saved_step and (step % every == 0 or step == self.total):
            self.save()

    # -- the loop ---------------------------------------------------------------------------
    def loop(self):
        L, src, progress = self.learner, self.source, self.progress
        copy = self.task == "copy"
        acc = self.acc
        interval = progress.interval
        with L.pinned(), _signals(self):
            progress.start(L.steps, self.total, self.live_info())
            try:
                self.bookkeeping()  # a resumed run may owe the checkpoint step's record
                last_shown, shown_step = time.perf_counter(), L.steps
                while L.steps < self.total and self.stop_signal is None:
                    t0 = time.perf_counter()
                    x, y, reset = src.next()
                    loss = L.step(x, y, reset) / LN2
                    if copy:
                        src.report(loss)
                    t1 = time.perf_counter()
                    acc["train_seconds"] += t1 - t0
                    acc["loss_sum"] += loss
                    acc["loss_n"] += 1
                    self.bookkeeping()
                    if self.stop_after is not None and L.steps == self.stop_after:
                        self.stop_signal = "SIGINT"
                    if interval is not None and t1 - last_shown >= interval:
                        progress.update(L.steps, self.total, (L.steps - shown_step) / (t1 - last_shown),
                                        self.live_info())
                        last_shown, shown_step = t1, L.steps
            except _StopNow:
                pass
            except FloatingPointError as e:
                progress.close()
                raise RunError(f"training diverged: {e}") from None
            progress.close()
            if self.stop_signal is not None and L.steps < self.total:
                if L.steps > self.saved_step or L.steps == 0:
                    self.save()
                self.write_outputs("interrupted")
                raise Interrupted(self.out, L.steps, self.total, self.stop_signal, self.task)
        return self.write_outputs("complete")


def _identity_keys(cfg):
    """Settings that determine the numbers a run produces (must match on resume)."""
    keys = ["task", "cell", "hidden", "method", "rank", "batch", "optimizer", "lr", "clip", "truncation",
            "dtype", "seed"]
    if cfg["task"] == "charlm":
        keys += ["reset_every", "eval_every", "eval_chars"]
    return keys


def _stop_after_env():
    v = os.environ.get(STOP_ENV)
    if not v:
        return None
    try:
        return int(v)
    except ValueError:
        raise RunError(f"{STOP_ENV} must be an integer step, got {v!r}") from None


def _load_corpus(cfg):
    from .tasks import load_corpus

    try:
        return load_corpus(cfg["train"], cfg["valid"])
    except (OSError, ValueError, TypeError) as e:
        raise RunError(str(e)) from None


@contextmanager
def _signals(run):
    """First SIGINT/SIGTERM: stop after the current step; second: KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if run.stop_signal is not None:
            raise KeyboardInterrupt
        run.stop_signal = signal.Signals(signum).name
        run.progress.message(f"{run.stop_signal} received: writing a checkpoint after this step"
                             " (signal again to abort without one)")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ------------------------------------------------------------------------------------------------
# public entry points
# ------------------------------------------------------------------------------------------------
def train(cfg, out_dir, progress=None):
    """Start a new run with config ``cfg`` (from :func:`make_config`) in ``out_dir``.

    Returns the summary dict. Raises :class:`RunError` (bad settings, folder already holds
    a run) or :class:`Interrupted` (after writing the checkpoint).
    """
    _check_config(cfg)
    if os.path.exists(os.path.join(out_dir, CONFIG_FILE)):
        raise RunError(f"{out_dir} already holds a run; continue it with --resume {out_dir} or pick another --out")
    run = _Run(cfg, out_dir, progress)
    os.makedirs(out_dir, exist_ok=True)
    _write_json(run.path(CONFIG_FILE), run.full_config())
    open(run.path(METRICS_FILE), "w").close()
    run.t_start = time.perf_counter()
    return run.loop()


def load_run_config(out_dir):
    """The training settings stored in ``out_dir/config.json``."""
    doc = _read_json(os.path.join(out_dir, CONFIG_FILE), "run config")
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT or doc.get("task") not in DEFAULTS:
        raise RunError(f"{os.path.join(out_dir, CONFIG_FILE)} is not an oknumba run config")
    if doc.get("version") != RUN_VERSION:
        raise RunError(f"{out_dir} was written by run format version {doc.get('version')}, this is {RUN_VERSION}")
    return doc


def resume(out_dir, progress=None, **overrides):
    """Continue the run in ``out_dir`` from its checkpoint up to its configured steps.

    ``overrides`` may change only :data:`RESUMABLE_OVERRIDES` (e.g. ``steps`` to extend a run).
    Returns the summary dict; raises :class:`RunError` or :class:`Interrupted`.
    """
    doc = load_run_config(out_dir)
    bad = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE_OVERRIDES)
    if bad:
        raise RunError(f"cannot change {bad} when resuming: config.json of {out_dir} fixes them"
                       f" (only {list(RESUMABLE_OVERRIDES)} may be given with --resume)")
    cfg = {k: doc.get(k, v) for k, v in DEFAULTS[doc["task"]].items()}
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    try:
        _check_config(cfg)
    except RunError as e:
        raise RunError(f"{out_dir}/config.json: {e}") from None
    run = _Run(cfg, out_dir, progress)
    if run.learner.config() != doc.get("learner"):
        raise RunError(f"{out_dir}/config.json is inconsistent: the rebuilt learner differs from the stored one")
    if run.corpus is not None and run.corpus.vocab.to_dict() != doc.get("vocab"):
        raise RunError(f"the corpus at {cfg['train']} / {cfg['valid']} no longer gives the vocabulary stored in"
                       f" {out_dir}/config.json; the text files changed")
    run.restore()
    if run.learner.steps > cfg["steps"]:
        raise RunError(f"the checkpoint is at step {run.learner.steps}, beyond the requested {cfg['steps']} steps")
    if any(overrides.get(k) is not None for k in RESUMABLE_OVERRIDES):
        doc.update({k: cfg[k] for k in RESUMABLE_OVERRIDES})
        _write_json(run.path(CONFIG_FILE), doc)
    run.t_start = time.perf_counter()
    return run.loop()
