"""The output folder of a training run: which files it holds and how each is written.

``config.json``
    Every setting (the common ones of :data:`oknumba.runner.COMMON_DEFAULTS` and the task's),
    the model sizes, the learner's configuration and the task's extra entries (the char-LM
    corpus summary and vocabulary).
``metrics.jsonl``
    One JSON record per log interval (and at every evaluation and the last step): ``step``,
    ``wall_seconds``, ``steps_per_s``, ``loss_bits`` (mean per-step cross-entropy over the
    interval, bits) and the task's fields (copy: ``level``/``avg``; char-LM:
    ``train_bpc``/``valid_bpc``, ``valid_bpc`` null where no evaluation ran).
``summary.json``
    ``task``, ``method``, ``cell``, ``hidden``, ``rank``, ``batch``, ``seed``, ``lr``,
    ``dtype``, ``steps``, ``target_steps``, ``status`` (``"complete"``, ``"interrupted"`` or
    ``"diverged"``, the last with ``diverged_at_step`` and ``error``), ``wall_seconds``,
    ``final_loss_bits`` and the task's fields (``level``; ``valid_bpc``).
``params.npz``
    One array per key of ``model.params`` (``W``, ``V``).
``checkpoint.npz``
    The learner (:func:`oknumba.checkpoint.save_checkpoint`) plus the task state, the metric
    accumulators and the wall time so far.

Every file is replaced atomically (:func:`oknumba._io.atomic_write`); ``metrics.jsonl`` is
appended to, and rewritten atomically when a resumed run drops the records written after
its checkpoint.
"""
import json
import os

import numpy as np

from ._io import atomic_write, remove_stale_temporaries

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PARAMS_FILE = "params.npz"
CHECKPOINT_FILE = "checkpoint.npz"
#: every file a run writes (what ``--overwrite`` removes)
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, PARAMS_FILE, CHECKPOINT_FILE)


class RunError(Exception):
    """A run cannot start or continue (bad settings, refused checkpoint, missing files)."""


def write_json(path, doc):
    """``doc`` as indented JSON, atomically."""
    def write(f):
        json.dump(doc, f, indent=2)
        f.write("\n")

    atomic_write(path, write)


def read_json(path, what):
    """The JSON document at ``path`` (:class:`RunError` naming ``what`` if unreadable)."""
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


class RunFolder:
    """The files of one run folder (module docstring)."""

    def __init__(self, path):
        self.root = os.fspath(path)

    def path(self, name):
        return os.path.join(self.root, name)

    def holds_run(self):
        return os.path.exists(self.path(CONFIG_FILE))

    def read_summary(self):
        """``summary.json`` as a dict, None if absent or unreadable."""
        try:
            with open(self.path(SUMMARY_FILE)) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def remove_stale_temporaries(self):
        """Temporary files of a writer that was killed mid-write (SIGKILL, power loss):
        removed when a run starts or resumes in this folder."""
        return remove_stale_temporaries(self.root, RUN_FILES)

    def clear(self):
        """Remove the run's files (:data:`RUN_FILES`; nothing else in the folder)."""
        for name in RUN_FILES:
            try:
                os.remove(self.path(name))
            except FileNotFoundError:
                pass

    def create(self, config):
        """Make the folder, write ``config.json`` and an empty ``metrics.jsonl``."""
        os.makedirs(self.root, exist_ok=True)
        write_json(self.path(CONFIG_FILE), config)
        atomic_write(self.path(METRICS_FILE), lambda f: None)

    def read_config(self):
        return read_json(self.path(CONFIG_FILE), "run config")

    def write_config(self, config):
        write_json(self.path(CONFIG_FILE), config)

    def append_metrics(self, record):
        with open(self.path(METRICS_FILE), "a") as f:
            f.write(json.dumps(record) + "\n")

    def keep_metrics_through(self, step):
        """Drop the records after ``step`` (written after the checkpoint a run resumes from)."""
        path = self.path(METRICS_FILE)
        recs = read_metrics(path) if os.path.exists(path) else []
        keep = [r for r in recs if isinstance(r, dict) and r.get("step", 0) <= step]
        atomic_write(path, lambda f: f.writelines(json.dumps(r) + "\n" for r in keep))

    def write_summary(self, summary):
        write_json(self.path(SUMMARY_FILE), summary)

    def write_params(self, params):
        atomic_write(self.path(PARAMS_FILE), lambda f: np.savez(f, **params), binary=True)

    @property
    def checkpoint(self):
        return self.path(CHECKPOINT_FILE)


__all__ = ["RunFolder", "RunError", "read_metrics", "read_json", "write_json", "RUN_FILES", "CONFIG_FILE",
           "METRICS_FILE", "SUMMARY_FILE", "PARAMS_FILE", "CHECKPOINT_FILE"]
