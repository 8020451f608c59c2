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
steps (one task each): a segment stops right after a checkpoint step (``stop_after`` of
:func:`oknumba.runner.train` / :func:`~oknumba.runner.resume`: the run writes its checkpoint
and stops), returns the files, the
client stores them and submits the next segment with them. Resuming is bit-identical, so the
run's final ``params.npz`` and ``metrics.jsonl`` (timings aside) equal an uninterrupted
run's. A killed worker or a Ctrl-C on the client thus loses at most the segment in progress
(``--checkpoint-every 0``: one segment, nothing kept). Re-running the same sweep skips runs
whose ``summary.json`` says ``complete``, continues the others from their checkpoints, retries
failed ones and leaves diverged ones alone (they would diverge again). A failed run (its error
is reported, with the traceback in ``sweep.json`` for a bug) never stops the others.

Dask is the optional extra ``oknumba[sweep]``; this package imports it only when a sweep runs.
"""
# The package is split by job; every name of the former single module ``oknumba/sweep.py``
# stays importable from here.
from .errors import DASK_MISSING, DaskMissing, SweepError  # noqa: F401
from .grid import (GRID_KEYS, PRESETS, PTB_ENV, _expand_block, _fmt_value, _method_settings,  # noqa: F401
                   _methods_list, _norm_keys, _PAPER, _ptb_paths, _task_keys, expand_grid, load_spec,
                   parse_seeds, run_names)
from .worker import (WRITE_ORDER, _WorkerProgress, next_stop, read_files,  # noqa: F401
                     run_one, write_files)
from .client import (RESUME_FILES, SCATTER_BYTES, SWEEP_FILE, SWEEP_FORMAT, SWEEP_VERSION,  # noqa: F401
                     RunState, Sweep, SweepDisplay, SweepInterrupted, _checkpoint_step, _client, _drive, _fail,
                     _import_dask, _short, _take, _workers_ignore_sigint, folder_state, run_sweep)
from .cli import (_SWEEP_DESCRIPTION, _err, _sigterm_as_interrupt, add_sweep_parser,  # noqa: F401
                  cmd_sweep, grid_from_args)

__all__ = ["PRESETS", "SweepError", "DaskMissing", "parse_seeds", "load_spec", "expand_grid", "run_names",
           "run_one", "next_stop", "folder_state", "run_sweep", "Sweep", "SweepDisplay", "SweepInterrupted",
           "add_sweep_parser", "cmd_sweep", "grid_from_args", "read_files", "write_files"]
