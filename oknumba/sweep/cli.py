"""The ``oknumba sweep`` command line: its parser (every option of ``oknumba train TASK`` plus
the sweep's own), the grid from the parsed options, and :func:`cmd_sweep`."""
import argparse
import json
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager

from .. import runner
from .._argtypes import comma_list
from ..tasks import TASKS
from .client import SWEEP_FILE, SweepDisplay, SweepInterrupted, _import_dask, folder_state, run_sweep
from .errors import SweepError
from .grid import PRESETS, expand_grid, load_spec


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
authors' released settings; small: the paper's comparisons at reduced size, about 25-30 min on 2
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
    from .. import cli

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
                action.help = re.sub(r"\(default: [^()]*(\([^()]*\)[^()]*)*\)", f"(default: the task's: {text})",
                                     action.help, count=1)
    listed = {k for t in tasks for k in runner.DEFAULTS[t]} - {"task", "method", "seed"}
    for action in p._actions:          # --hidden 32,64: a comma-separated list varies the setting
        if action.dest in listed and action.option_strings and action.nargs is None and (action.type or action.choices):
            action.type, action.choices = comma_list(action.type, action.choices), None
            if action.help:
                action.help += "; a comma-separated list varies it"
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
    g.add_argument("--dry-run", action="store_true",
                   help="list the runs and what would happen to each; run nothing (default: off)")
    g.add_argument("--quiet", action="store_true", help="only failures and the final line (default: off)")
    g.add_argument("--resume", metavar="DIR", help="not a sweep option: re-running the same command continues"
                                                   " its interrupted runs (default: none)")
    g.add_argument("--overwrite", action="store_true", help="not a sweep option: remove DIR/<name> to run a run"
                                                            " afresh (default: off)")
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
    for plural, single in (("methods", "method"), ("seeds", "seed")):
        value = getattr(args, plural)
        if value is not None:
            if single in given:
                raise SweepError(f"give --{plural} or --{single}, not both")
            given[plural] = value
        elif single in given:
            given[plural] = given.pop(single)
    runs = expand_grid(spec, given, task=task, base_dir=base_dir, where=where)
    out = args.out or spec.get("out")
    if not out:
        raise SweepError("give the sweep folder: --out DIR")
    if base_dir is not None and not args.out and not os.path.isabs(out):
        out = os.path.join(base_dir, out)
    if not args.scheduler:         # workers of a LocalCluster read the same files as this process
        for _, cfg in runs:
            for k in TASKS[cfg["task"]].path_keys:
                if cfg.get(k) and not os.path.exists(cfg[k]):
                    raise SweepError(f"--{k.replace('_', '-')} {cfg[k]}: no such file")
    return runs, out


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops the client like Ctrl-C (the list yielded is non-empty after one)."""
    got = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum, frame):
        got.append(signum)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield got
    finally:
        signal.signal(signal.SIGTERM, old)


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
        with _sigterm_as_interrupt() as got:
            sweep = run_sweep(runs, out, workers=args.workers, scheduler=args.scheduler, display=display)
    except SweepError as e:
        _err(str(e))
        return 2
    except SweepInterrupted as e:
        c = e.sweep.counts()
        print(f"\nsweep interrupted: {c['done']} runs finished now, {c['skipped']} earlier, {c['failed']} failed,"
              f" {c['pending'] + c['running']} unfinished; run the same command again to continue them from"
              " their last checkpoints", file=sys.stderr)
        return 128 + (signal.SIGTERM if got else signal.SIGINT)
    c = sweep.counts()
    failed = [r for r in sweep.runs if r.status in ("failed", "diverged")]
    print(f"sweep: {c['done'] + c['skipped']} of {c['total']} runs finished ({c['done']} now, {c['skipped']} earlier),"
          f" {len(failed)} failed; run folders and {SWEEP_FILE} in {out}")
    if failed:
        print("failed: " + ", ".join(r.name for r in failed) + f" (errors in {os.path.join(out, SWEEP_FILE)});"
              " re-run the same command to retry them", file=sys.stderr)
        return 1
    return 0
