"""The task-agnostic training loop behind ``oknumba train`` (task ↔ learner ↔ metrics ↔
checkpoints), and its handling of SIGINT/SIGTERM.

:class:`TrainingRun` drives any registered task (:mod:`oknumba.tasks.base`): each step it asks
the task for a batch, runs :meth:`oknumba.OnlineLearner.step`, reports the loss (bits) back,
and at the log interval writes a ``metrics.jsonl`` record (with the task's fields and, when
due, its evaluation); every ``checkpoint_every`` steps and at the end it writes the checkpoint
— learner, task state, metric accumulators, wall time — so a resumed run continues
bit-identically (its final ``params.npz`` equals an uninterrupted run's). Files go through
:class:`oknumba.run_folder.RunFolder`.

Interruption: the first SIGINT/SIGTERM asks the loop to stop after the current step (or
evaluation chunk); the loop writes the checkpoint, ``summary.json`` (status
``"interrupted"``) and ``params.npz``, then raises :class:`Interrupted`. A second signal
aborts at once (``KeyboardInterrupt``) without a new checkpoint. For tests, the environment
variable ``OKNUMBA_STOP_AFTER_STEP=N`` acts like a SIGINT arriving right after step N.
"""
import math
import os
import signal
import threading
import time
from contextlib import contextmanager

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .learner import OnlineLearner
from .model import RNN
from .run_folder import CHECKPOINT_FILE, RunError, RunFolder

STOP_ENV = "OKNUMBA_STOP_AFTER_STEP"
RUN_FORMAT = "oknumba-run"
RUN_VERSION = 1
LN2 = math.log(2.0)
#: settings of every task that determine the numbers a run produces (must match on resume)
COMMON_IDENTITY_KEYS = ("task", "cell", "hidden", "depth", "layers", "method", "rank", "batch", "optimizer",
                        "lr", "clip", "truncation", "dtype", "seed")
#: the values of identity settings added after runs were written without them
_NEWER_IDENTITY_DEFAULTS = {"depth": 1, "layers": 1}


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

    def first_step(self, seconds):
        """After this process's first step (``seconds``: its time, kernel compilation
        included unless cached)."""

    def message(self, text):
        pass

    def close(self):
        pass


class _StopNow(Exception):
    pass


def identity_keys(task_cls):
    """Settings that must match between a checkpoint and the run resuming it."""
    return list(COMMON_IDENTITY_KEYS) + list(task_cls.identity_keys)


class TrainingRun:
    """One run of ``cfg`` (a checked config) of task class ``task_cls`` in ``out_dir``;
    ``stop_after``: stop with a checkpoint right after that step (as after a SIGINT; default:
    the test hook ``OKNUMBA_STOP_AFTER_STEP``, else None)."""

    def __init__(self, task_cls, cfg, out_dir, progress, stop_after=None):
        self.cfg = cfg
        self.folder = RunFolder(out_dir)
        self.out = self.folder.root
        self.progress = progress or Progress()
        self.task_cls = task_cls
        self.total = cfg["steps"]
        try:
            self.task = task_cls(cfg)
        except (OSError, ValueError, TypeError) as e:
            raise RunError(str(e)) from None
        self.n_in, self.n_out = self.task.n_in, self.task.n_out
        try:
            self.model = RNN(cfg["cell"], self.n_in, cfg["hidden"], self.n_out, seed=cfg["seed"],
                             dtype=np.dtype(cfg["dtype"]), depth=cfg.get("depth", 1),
                             layers=cfg.get("layers", 1))
            self.learner = OnlineLearner(self.model, cfg["method"], rank=cfg["rank"], batch=cfg["batch"],
                                         optimizer=cfg["optimizer"], lr=cfg["lr"], clip=cfg["clip"],
                                         truncation=cfg["truncation"], seed=cfg["seed"],
                                         threads=cfg["threads"], device=cfg.get("device", "cpu"))
        except (ValueError, TypeError, RuntimeError, NotImplementedError) as e:
            raise RunError(str(e)) from None
        # metric accumulators over the current log interval (saved in checkpoints)
        self.acc = {"loss_sum": 0.0, "loss_n": 0, "train_seconds": 0.0, "logged_through": 0,
                    "wall_before": 0.0, "last_loss_bits": None, "last_evaluation": None}
        self.stop_signal = None
        self.stop_after = _stop_after_env() if stop_after is None else int(stop_after)
        self.saved_step = 0

    # -- files ------------------------------------------------------------------------------
    def full_config(self):
        return {"format": RUN_FORMAT, "version": RUN_VERSION, **self.cfg, "n_in": self.n_in,
                "n_out": self.n_out, "learner": self.learner.config(), **self.task.config_extra()}

    def write_outputs(self, status):
        self.folder.write_params(self.model.params)     # the learner's host views: never stale
        c = self.cfg
        s = {"task": self.task_cls.name, "method": c["method"], "cell": c["cell"], "hidden": c["hidden"],
             "rank": c["rank"], "batch": c["batch"], "seed": c["seed"], "lr": c["lr"], "dtype": c["dtype"],
             "steps": self.learner.steps, "target_steps": self.total, "status": status,
             "wall_seconds": round(self.wall(), 3), "final_loss_bits": self.acc["last_loss_bits"]}
        s.update(self.task.summary(self.acc["last_evaluation"]))
        self.folder.write_summary(s)
        return s

    def write_diverged(self, error):
        """``summary.json`` of a run whose loss became NaN/inf (no params: they are not finite)."""
        c = self.cfg
        self.folder.write_summary({
            "task": self.task_cls.name, "method": c["method"], "cell": c["cell"], "hidden": c["hidden"],
            "rank": c["rank"], "batch": c["batch"], "seed": c["seed"], "lr": c["lr"], "dtype": c["dtype"],
            "steps": self.learner.steps, "target_steps": self.total, "status": "diverged",
            "diverged_at_step": self.learner.steps, "error": error, "wall_seconds": round(self.wall(), 3)})

    def save(self):
        extra = {"format": RUN_FORMAT, "task": self.task_cls.name, "step": self.learner.steps,
                 "source": self.task.state_dict(), "acc": dict(self.acc, wall_before=self.wall()),
                 "config": {k: self.cfg[k] for k in identity_keys(self.task_cls)}}
        save_checkpoint(self.folder.checkpoint, self.learner, extra=extra)
        self.saved_step = self.learner.steps

    def restore(self):
        self.folder.remove_stale_temporaries()
        path = self.folder.checkpoint
        try:
            extra = load_checkpoint(path, self.learner)
        except FileNotFoundError:
            raise RunError(f"no checkpoint in {self.out} ({CHECKPOINT_FILE} is missing): the run was stopped"
                           " before any checkpoint was written; start it afresh: the original command"
                           " with --overwrite") from None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise RunError(f"refusing checkpoint {path}: {e}") from None
        name = self.task_cls.name
        try:
            if extra.get("format") != RUN_FORMAT or extra.get("task") != name:
                raise ValueError(f"it was written by a {extra.get('task')!r} run, this run is {name!r}")
            saved = extra["config"]
            saved = {k: saved.get(k, _NEWER_IDENTITY_DEFAULTS.get(k)) for k in identity_keys(self.task_cls)}
            diff = {k: (saved[k], self.cfg.get(k, _NEWER_IDENTITY_DEFAULTS.get(k)))
                    for k in identity_keys(self.task_cls)
                    if saved[k] != self.cfg.get(k, _NEWER_IDENTITY_DEFAULTS.get(k))}
            if diff:
                raise ValueError(f"differing settings (checkpoint, config.json): {diff}")
            if int(extra["step"]) != self.learner.steps:
                raise ValueError(f"step {extra['step']} disagrees with the learner's {self.learner.steps}")
            self.task.load_state_dict(extra["source"])
            acc = dict(extra["acc"])
            if "last_evaluation" not in acc and "last_valid_bpc" in acc:   # before the protocol
                v = acc.pop("last_valid_bpc")
                acc["last_evaluation"] = None if v is None else {"valid_bpc": v}
            missing = set(self.acc) - set(acc)
            if missing:
                raise ValueError(f"metric state lacks {sorted(missing)}")
            self.acc.update({k: acc[k] for k in self.acc})
            self.saved_step = self.learner.steps
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RunError(f"refusing checkpoint {path}: it does not match this run ({e})") from None
        self.folder.keep_metrics_through(self.learner.steps)

    # -- timing and metrics -------------------------------------------------------------------
    def wall(self):
        return self.acc["wall_before"] + (time.perf_counter() - self.t_start)

    def _mean_loss(self):
        n = self.acc["loss_n"]
        return self.acc["loss_sum"] / n if n else self.acc["last_loss_bits"]

    def live_info(self):
        return self.task.live_info(self._mean_loss())

    def _evaluate(self):
        self.learner.sync()

        def should_stop():
            return self.stop_signal is not None

        result = self.task.evaluate(self.model, should_stop)
        if result is None or should_stop():
            raise _StopNow()
        return result

    def bookkeeping(self):
        """Log (and evaluate) if this step is due; checkpoint if due. Idempotent per step."""
        step, cfg = self.learner.steps, self.cfg
        if self.acc["logged_through"] < step:
            due_eval = self.task.evaluation_due(step, self.total)
            if step % cfg["log_every"] == 0 or step == self.total or due_eval:
                rec = {"step": step}
                evaluation = None
                if due_eval:
                    self.progress.message(self.task.evaluation_message(step))
                    t0 = time.perf_counter()
                    evaluation = self._evaluate()
                    self.acc["last_evaluation"] = evaluation
                    rec["eval_seconds"] = round(time.perf_counter() - t0, 3)
                n = self.acc["loss_n"]
                loss = self.acc["loss_sum"] / n if n else None
                rate = n / self.acc["train_seconds"] if self.acc["train_seconds"] > 0 else None
                rec.update(wall_seconds=round(self.wall(), 3), steps_per_s=None if rate is None else round(rate, 2),
                           loss_bits=loss)
                rec.update(self.task.record(loss, evaluation))
                self.folder.append_metrics(rec)
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
        L, task, progress = self.learner, self.task, self.progress
        acc = self.acc
        interval = progress.interval
        self.t_start = time.perf_counter()
        with L.pinned(), _signals(self):
            progress.start(L.steps, self.total, self.live_info())
            try:
                self.bookkeeping()  # a resumed run may owe the checkpoint step's record
                last_shown, shown_step = time.perf_counter(), L.steps
                first = True
                while L.steps < self.total and self.stop_signal is None:
                    t0 = time.perf_counter()
                    x, y, reset = task.next()
                    loss = L.step(x, y, reset) / LN2
                    task.observe(loss)
                    t1 = time.perf_counter()
                    if first:     # compiles the kernels unless cached: not part of the rate
                        first = False
                        progress.first_step(t1 - t0)
                        last_shown, shown_step = t1, L.steps
                    else:
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
                self.write_diverged(str(e))
                raise RunError(f"training diverged at step {L.steps}: {e}. summary.json records it"
                               f" (status 'diverged'). To try other settings (e.g. a lower --lr), start"
                               f" afresh: the same command with --overwrite, or another --out") from None
            progress.close()
            if self.stop_signal is not None and L.steps < self.total:
                if L.steps > self.saved_step or L.steps == 0:
                    self.save()
                self.write_outputs("interrupted")
                raise Interrupted(self.out, L.steps, self.total, self.stop_signal, self.task_cls.name)
        return self.write_outputs("complete")


def _stop_after_env():
    v = os.environ.get(STOP_ENV)
    if not v:
        return None
    try:
        return int(v)
    except ValueError:
        raise RunError(f"{STOP_ENV} must be an integer step, got {v!r}") from None


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


__all__ = ["TrainingRun", "Progress", "Interrupted", "STOP_ENV", "RUN_FORMAT", "RUN_VERSION"]
