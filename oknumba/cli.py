"""The ``oknumba`` command line. Parsing and printing only: numerics live in the package.

Commands::

    oknumba train copy [options]                          copy task; prints the level reached
    oknumba train charlm --train PATH --valid PATH [...]  char-level LM; prints valid bits/char
    oknumba train TASK --resume DIR                       continue an interrupted run
    oknumba noise [options]                               estimator noise against exact RTRL
    oknumba plot DIR... --out PNG [--metric M]            learning curves of several runs
    oknumba sweep TASK|SPEC --methods --seeds --out DIR   a grid of runs on Dask (resumable)
    oknumba report DIR... --out REPORT                    report.md + figures of runs and noise
    oknumba sample RUN_DIR [--chars N --temperature T]    text from a char-LM run
    oknumba demo                                          exact RTRL vs BPTT on a small model

Exit codes: 0 success, 1 failed (e.g. matplotlib missing), 2 bad arguments or a refused
run/checkpoint, 130/143 interrupted by SIGINT/SIGTERM (a checkpoint was written).
"""
import argparse
import json
import math
import re
import shlex
import sys
import time

import numpy as np

from . import __version__, runner
from ._argtypes import comma_list
from ._argtypes import nonneg_int as _nonneg_int
from ._argtypes import positive_float as _positive_float
from ._argtypes import positive_int as _positive_int
from .cells import CELLS
from .tasks import TASKS
from .learner import LEARNER_METHODS
from .progress import TerminalProgress

_DESCRIPTION = ("Online training of recurrent networks with RTRL and the Optimal Kronecker-Sum approximation"
                " (OK).\n\n" + __doc__.split("\n\n", 1)[1].replace("Commands::", "Commands:"))


def _fmt_default(v):
    if v is None:
        return "none"
    if isinstance(v, float) and abs(v - 10 ** -3.5) < 1e-15:
        return "10^-3.5 ≈ 3.16e-4"
    return str(v)


def _clip(text):
    if text.lower() in ("none", "off"):
        return "none"
    return _positive_float(text)


# ------------------------------------------------------------------------------------------------
# parser
# ------------------------------------------------------------------------------------------------
def _add_small_model_options(p, hidden, steps, batch, what):
    """``--cell --hidden --steps --batch`` of the small-model commands (noise, demo)."""
    p.add_argument("--cell", default="rhn", choices=list(CELLS), help="recurrent cell (default: rhn)")
    p.add_argument("--hidden", type=_positive_int, default=hidden, help=f"hidden units n (default: {hidden})")
    p.add_argument("--steps", type=_positive_int, default=steps, help=f"{what} (default: {steps})")
    p.add_argument("--batch", type=_positive_int, default=batch,
                   help=f"independent streams B (default: {batch})")


def _add_train_options(p, task):
    d = runner.DEFAULTS[task]

    def dflt(key):
        return _fmt_default(d[key])

    g = p.add_argument_group("model and method")
    g.add_argument("--cell", type=comma_list(None, list(CELLS)),
                   help=f"recurrent cell ({', '.join(CELLS)}), or one per layer: rhn,gru (default: {dflt('cell')})")
    g.add_argument("--hidden", type=comma_list(_positive_int),
                   help=f"hidden units n, or one per layer: 128,64 (default: {dflt('hidden')})")
    g.add_argument("--depth", type=comma_list(_positive_int),
                   help=f"transition micro-layers per step of a deep-transition cell (rhn; Zilly et al."
                        f" 2017), or one per layer (default: {dflt('depth')})")
    g.add_argument("--layers", type=_positive_int,
                   help=f"stacked recurrent layers, each reading the one below; the readout reads the top"
                        f" (default: {dflt('layers')}, or as many as --cell/--hidden/--depth list)")
    g.add_argument("--method", choices=list(LEARNER_METHODS),
                   help=f"online gradient method (default: {dflt('method')}); tbptt needs --truncation")
    g.add_argument("--rank", type=_positive_int,
                   help=f"rank r of ok / ok-truncated / kf-avg, ignored by the other methods (default: {dflt('rank')})")
    g.add_argument("--truncation", type=_positive_int,
                   help="window k of tbptt (updates every k steps); only for --method tbptt (default: none)")
    g.add_argument("--dtype", choices=["float32", "float64"], help=f"floating-point type (default: {dflt('dtype')})")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=_positive_int, help=f"independent streams B (default: {dflt('batch')})")
    g.add_argument("--lr", type=_positive_float,
                   help=f"learning rate; accepts 3e-3 or 10^-3.5 (default: {dflt('lr')})")
    g.add_argument("--optimizer", choices=["adam", "sgd"], help=f"optimizer (default: {dflt('optimizer')})")
    g.add_argument("--clip", type=_clip, help=f"per-parameter gradient norm bound, 'none' disables"
                                              f" (default: {dflt('clip')})")
    g.add_argument("--steps", type=_positive_int,
                   help=f"training steps, one character/symbol per stream each (default: {dflt('steps')});"
                        " with --resume: the new total (to extend a run)")
    g.add_argument("--seed", type=_nonneg_int, help=f"seed of initialisation, estimator and task (default: {dflt('seed')})")
    task_cls = TASKS[task]
    if any(k not in runner.COMMON_DEFAULTS for k in task_cls.defaults):
        task_cls.add_arguments(p.add_argument_group(f"{task} task"), dflt)
    g = p.add_argument_group("run")
    g.add_argument("--out", metavar="DIR",
                   help=f"output folder (default: runs/{task}-<method><rank>-<YYYYmmdd-HHMMSS>)")
    g.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR from its checkpoint.npz with its config.json: the original"
                        " command plus --resume DIR works; only --steps, --threads, --device, --log-every,"
                        " --checkpoint-every may differ from the stored values (default: none)")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh in --out DIR even if it holds a run (removes that run's files:"
                        " config, metrics, summary, params, checkpoint) (default: off)")
    g.add_argument("--threads", type=_positive_int,
                   help=f"Numba and BLAS threads; 1 is fastest for small models on 2 cores; a resumed run is"
                        f" bit-identical only with the same value (default: {dflt('threads')})")
    g.add_argument("--device", choices=["cpu", "gpu"],
                   help=f"where the run lives; gpu needs the cuda extra and a CUDA driver (or"
                        f" NUMBA_ENABLE_CUDASIM=1) and runs every method (default: {dflt('device')})")
    g.add_argument("--log-every", type=_positive_int,
                   help=f"write a metrics.jsonl record every N steps (default: {dflt('log_every')})")
    g.add_argument("--checkpoint-every", type=_nonneg_int,
                   help=f"write checkpoint.npz every N steps and at the end, 0 = never; SIGINT/SIGTERM always"
                        f" write one (default: {dflt('checkpoint_every')})")
    g.add_argument("--quiet", action="store_true",
                   help="no progress display on stderr; only the final result line (default: off)")
    p.set_defaults(func=cmd_train, task=task)


def build_parser():
    p = argparse.ArgumentParser(prog="oknumba", description=_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"oknumba {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help=f"online training on a task ({', '.join(TASKS)})",
                       description="Online training (one parameter update per step) with RTRL or an"
                                   " approximation. Writes config.json, metrics.jsonl, summary.json,"
                                   " params.npz and checkpoint.npz to the output folder.")
    tsub = t.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, task_cls in TASKS.items():      # every registered task (oknumba.tasks)
        _add_train_options(tsub.add_parser(name, help=task_cls.help, description=task_cls.description), name)

    n = sub.add_parser("noise", help="approximation noise of the online estimators against exact RTRL",
                       description="Measure E||G~ - G||^2/||G||^2 (influence and loss gradient) and the gradient"
                                   " cosine of each estimator against exact RTRL on a random one-hot input"
                                   " trajectory with frozen weights, averaged over seeds.")
    _add_small_model_options(n, hidden=12, steps=30, batch=1, what="trajectory length T")
    n.add_argument("--inputs", type=_positive_int, default=4, help="one-hot input (and output) size (default: 4)")
    n.add_argument("--methods", default="uoro,kf,ok:1,kf-avg:8,ok:8",
                   help="comma-separated NAME or NAME:RANK (default: uoro,kf,ok:1,kf-avg:8,ok:8)")
    n.add_argument("--seeds", type=_positive_int, default=100, help="estimator seeds averaged over (default: 100)")
    n.add_argument("--init-scale", type=_positive_float, default=0.3,
                   help="standard deviation of the normal weight initialisation (default: 0.3)")
    n.add_argument("--burn-in", type=_nonneg_int, default=0,
                   help="steps left out of the mean columns (default: 0)")
    n.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                   help="floating-point type (default: float64)")
    n.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the weights and the trajectory (default: 0)")
    n.add_argument("--json", metavar="PATH", help="also write settings and per-step curves as JSON (default: none)")
    n.set_defaults(func=cmd_noise)

    pl = sub.add_parser("plot", help="learning curves of runs into one PNG (needs matplotlib)",
                        description="Draw one metric of several runs (their metrics.jsonl) into one PNG, one line"
                                    " per run labelled by method and rank. Needs matplotlib:"
                                    " pip install oknumba[plot].")
    pl.add_argument("dirs", nargs="+", metavar="DIR", help="run folders holding metrics.jsonl and config.json")
    pl.add_argument("--out", required=True, metavar="PNG", help="image file to write (required; no default)")
    pl.add_argument("--metric", default="auto",
                    help="record key to plot: level, avg, loss_bits, train_bpc, valid_bpc, steps_per_s; auto ="
                         " level for copy runs, valid_bpc for charlm runs (default: auto)")
    pl.add_argument("--x", default="step", choices=["step", "wall_seconds"],
                    help="horizontal axis (default: step)")
    pl.add_argument("--title", help="figure title (default: the metric and task)")
    pl.set_defaults(func=cmd_plot)

    from .profile import add_profile_parser
    from .sample import add_sample_parser

    add_profile_parser(sub)

    from .report import add_report_parser
    from .sweep import add_sweep_parser

    add_sweep_parser(sub)
    add_report_parser(sub)
    add_sample_parser(sub)

    d = sub.add_parser("demo", help="compare exact-RTRL and BPTT gradients of a small model",
                       description="Run exact RTRL and BPTT on one random sequence of a small model"
                                   " and print the largest relative difference of the gradients.")
    _add_small_model_options(d, hidden=16, steps=30, batch=4, what="sequence length T")
    d.add_argument("--seed", type=_nonneg_int, default=0, help="random seed (default: 0)")
    d.set_defaults(func=demo)
    return p


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------
def _train_keys(task):
    """The config keys ``oknumba train TASK`` takes from the command line."""
    return [k for k in runner.DEFAULTS[task] if k != "task"]



def _err(msg):
    print(f"oknumba: error: {msg}", file=sys.stderr)


def _flag(key):
    return "--" + key.replace("_", "-")


def _typed(value):
    return "none" if value is None else str(value)


def cmd_train(args):
    given = {k: getattr(args, k) for k in _train_keys(args.task) if getattr(args, k, None) is not None}
    out = args.resume or args.out or "?"
    clip_none = given.get("clip") == "none"
    if clip_none:
        given.pop("clip")
    try:
        if args.resume:
            out = args.resume
            if args.out and not runner._same_setting(args.out, args.resume):
                raise runner.RunError(f"--out {args.out} differs from --resume {args.resume} (a resumed run"
                                      " stays in its folder): drop --out")
            if args.overwrite:
                raise runner.RunError("--overwrite starts a run afresh and --resume continues one: give one")
            doc = runner.load_run_config(out)
            if doc["task"] != args.task:
                raise runner.RunError(f"{out} holds a {doc['task']} run; use: oknumba train {doc['task']} --resume {out}")
            if clip_none and doc.get("clip") is not None:
                raise runner.ResumeConflict(out, [("clip", None, doc.get("clip"))])
            cfg = doc
            progress = _progress(args, cfg)
            summary = runner.resume(out, progress=progress, **given)
        else:
            cfg = runner.make_config(args.task, **given)
            if clip_none:
                cfg["clip"] = None
            out = args.out or runner.default_out_dir(cfg)
            progress = _progress(args, cfg)
            if not args.quiet:
                print(f"{_label(cfg)}: {cfg['steps']} steps, writing to {out}", file=sys.stderr)
            summary = runner.train(cfg, out, progress=progress, overwrite=args.overwrite)
    except runner.ResumeConflict as e:
        flags = ", ".join(f"{_flag(k)} {_typed(g)} (the run has {_typed(v)})" for k, g, v in e.conflicts)
        _err(f"cannot change {flags} when resuming {e.out_dir}; only --steps, --threads, --device,"
             " --log-every, --checkpoint-every may differ (or start afresh with --overwrite instead of --resume)")
        return 2
    except runner.RunError as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        print(f"\naborted by a second signal without a new checkpoint; an earlier one, if any, continues with:"
              f" oknumba train {args.task} --resume {shlex.quote(out)}", file=sys.stderr)
        return 130
    except runner.Interrupted as e:
        cmd = f"oknumba train {e.task} --resume {shlex.quote(e.out_dir)}"
        print(f"\ninterrupted by {e.signame} at step {e.step} of {e.total}; checkpoint saved to {e.checkpoint}\n"
              f"continue with: {cmd}", file=sys.stderr)
        return e.exit_code
    print(f"{TASKS[summary['task']].result_line(summary)}; results in {out}")
    return 0


def _label(cfg):
    m = cfg["method"] + ("" if cfg.get("rank") is None else f":{cfg['rank']}")
    def joined(v):
        return "+".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    depth = "" if cfg.get("depth", 1) == 1 else f" depth={joined(cfg['depth'])}"
    layers = "" if cfg.get("layers", 1) == 1 else f" layers={cfg['layers']}"
    return f"{cfg['task']} {joined(cfg['cell'])}{depth}{layers} n={joined(cfg['hidden'])} {m} B={cfg['batch']}"


def _progress(args, cfg):
    return runner.Progress() if args.quiet else TerminalProgress(_label(cfg))


def cmd_noise(args):
    from . import RNN, format_noise_table, measure_noise

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        _err("--methods names no method")
        return 2
    try:
        model = RNN(args.cell, args.inputs, args.hidden, args.inputs, seed=args.seed, dtype=np.dtype(args.dtype),
                    init="normal", init_scale=args.init_scale)
        rng = np.random.default_rng(args.seed)
        xs = np.eye(args.inputs)[rng.integers(0, args.inputs, size=(args.steps, args.batch))]
        t0 = time.perf_counter()
        res = measure_noise(model, xs, methods, seeds=args.seeds, burn_in=args.burn_in)
    except (ValueError, TypeError) as e:
        _err(str(e))
        return 2
    print(f"noise against exact RTRL: {args.cell} n_in={args.inputs} n={args.hidden} T={args.steps}"
          f" B={args.batch} init N(0, {args.init_scale}^2), {args.seeds} seeds, burn-in {args.burn_in}"
          f" ({time.perf_counter() - t0:.1f} s)")
    print("infl. err = E||G~ - G||^2 / ||G||^2 of the influence (last step, and mean over steps);"
          " grad. err = the same for the loss gradient")
    print(format_noise_table(res))
    if args.json:
        doc = {"settings": {k: getattr(args, k) for k in ("cell", "hidden", "inputs", "steps", "batch", "seeds",
                                                          "init_scale", "burn_in", "dtype", "seed")},
               "methods": methods,
               "results": {lab: {k: (v if k == "summary" else np.asarray(v).tolist()) for k, v in r.items()}
                           for lab, r in res.items()}}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def cmd_plot(args):
    from .plot import PlotError, plot_runs, png_path

    try:
        lines = plot_runs(args.dirs, args.out, metric=args.metric, x=args.x, title=args.title)
    except PlotError as e:
        _err(str(e))
        return e.exit_code
    print(f"wrote {png_path(args.out)} ({len(lines)} runs: {', '.join(lines)})")
    return 0


def demo(args):
    from . import RNN, sequence_grad

    model = RNN(args.cell, 4, args.hidden, 4, seed=args.seed, init="normal", init_scale=0.3)
    rng = np.random.default_rng(args.seed)
    xs = np.eye(4)[rng.integers(0, 4, size=(args.steps, args.batch))]
    ys = rng.integers(0, 4, size=(args.steps, args.batch))
    resets = rng.random((args.steps, args.batch)) < 0.05
    out = {}
    for method in ("bptt", "rtrl"):
        t0 = time.perf_counter()
        out[method] = sequence_grad(model, xs, ys, method, resets=resets)
        print(f"{method:5s} loss {out[method][0]:.6f} nats  ({time.perf_counter() - t0:.2f} s incl. compilation)")
    for k in model.params:
        a, b = out["rtrl"][1][k], out["bptt"][1][k]
        print(f"d{k}: max |rtrl - bptt| / max |bptt| = {np.abs(a - b).max() / np.abs(b).max():.3e}")
    return 0


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _join_negative_values(argv):
    """``--lr -1e-3`` → ``--lr=-1e-3``: argparse takes ``-1e-3`` for an option (it only knows
    plain ``-1`` / ``-0.5`` as numbers), so the value's own check can say what is wrong."""
    out = []
    for tok in argv:
        if (out and _NEGATIVE_NUMBER.match(tok) and out[-1].startswith("--") and "=" not in out[-1]):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def main(argv=None):
    """Run the command line; user mistakes end in one ``oknumba: error:`` line (exit 2), a
    bug in a traceback with a line asking to report it (exit 1)."""
    argv = _join_negative_values(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except OSError as e:   # output paths, permissions, a full disk, unreadable inputs
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        _err(f"cannot use{where}: {e.strerror or e}")
        return 2
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"\noknumba {__version__}: this is a bug in oknumba, not a mistake of yours. Please report it"
              " (the project's issue tracker) with the command you ran and the traceback above.",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
