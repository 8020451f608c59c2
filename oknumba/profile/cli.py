"""Command line of :mod:`oknumba.profile`: ``python -m oknumba.profile`` and the ``oknumba
profile`` sub-command."""
import argparse
import sys

from .._argtypes import positive_float as _positive_float
from .._argtypes import positive_int as _positive_int
from ..methods import parse_method_list, spec_forms
from .report import _HEADER, format_profile, plot_profile, write_json
from .run import DEFAULT_HIDDEN, DEFAULT_METHODS, profile


# --------------------------------------------------------------------------------------
# command line
def _int_list(text):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return vals


def _method_list(text):
    try:
        return parse_method_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_DESCRIPTION = ("Measure the median µs per OnlineLearner.step for each method and hidden size,"
                " the achieved GFLOP/s of the dominant product, and the ratio of the step to the"
                " bare numpy.matmul of the same shapes (timed in the same process, same dtype and"
                " threads). Prints a table and the fitted exponent of cost against n.")


def _add_arguments(p):
    from ..cells import CELLS

    p.add_argument("--cell", default="rhn", choices=sorted(CELLS), help="recurrent cell (default: rhn)")
    p.add_argument("--methods", type=_method_list, default=list(DEFAULT_METHODS),
                   help=f"comma-separated method specs: {spec_forms()}"
                        f" (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--hidden", type=_int_list, default=list(DEFAULT_HIDDEN),
                   help="comma-separated hidden sizes n (default: 32,64,128,256)")
    p.add_argument("--batch", type=_positive_int, default=16, help="independent streams B (default: 16)")
    p.add_argument("--breakdown", action="store_true",
                   help="also time each phase of the step (cell, readout, estimator and its bare products,"
                        " optimizer, Python glue) and print its share (default: off)")
    p.add_argument("--layers", type=_positive_int, default=1,
                   help="stacked layers of n units each; the bare products are summed over the layers (default: 1)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="Numba and BLAS threads for the whole run (default: leave as configured)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                   help="floating-point type (default: float64)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="run the learners on the CPU or a CUDA GPU (default: cpu)")
    p.add_argument("--samples", type=_positive_int, default=5,
                   help="timing samples per combination; the median is reported (default: 5)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="steps per sample (default: about 0.2 s worth, from the first timings)")
    p.add_argument("--max-step-seconds", type=_positive_float, default=2.0,
                   help="skip a combination whose first warm step takes longer (default: 2)")
    p.add_argument("--max-memory-gib", type=_positive_float, default=4.0,
                   help="skip a combination whose estimated memory is larger (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of model, inputs and estimators (default: 0)")
    p.add_argument("--compile-time", action="store_true",
                   help="also time the first step of the first method at the first size in fresh"
                        " subprocesses, with and without the on-disk kernel cache (default: off)")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON (default: none)")
    p.add_argument("--png", metavar="PATH", help="write a log-log plot, needs matplotlib (default: none)")
    p.add_argument("--quiet", action="store_true", help="no per-combination progress lines (default: off)")
    return p


def add_profile_parser(subparsers):
    """Add the ``profile`` sub-command to an ``argparse`` sub-parsers object."""
    p = subparsers.add_parser("profile", help="per-step cost of the online methods against hidden size",
                              description=_DESCRIPTION)
    _add_arguments(p)
    p.set_defaults(func=run_profile_cli)
    return p


def run_profile_cli(args):
    """Run :func:`profile` from parsed arguments, print the report; returns the exit code."""
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if progress is not None:
        print(_HEADER, file=sys.stderr, flush=True)
    result = profile(cell=args.cell, methods=args.methods, hidden=args.hidden, batch=args.batch,
                     threads=args.threads, dtype=args.dtype, steps=args.steps, samples=args.samples,
                     seed=args.seed, max_step_seconds=args.max_step_seconds,
                     max_memory_gib=args.max_memory_gib, compile_seconds=args.compile_time,
                     progress=progress, device=args.device, layers=args.layers, breakdown=args.breakdown)
    # on one terminal the live rows (stderr) already are the table: print it once
    same_screen = progress is not None and sys.stdout.isatty() and sys.stderr.isatty()
    print(format_profile(result, table=not same_screen))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.png:
        if plot_profile(result, args.png):
            print(f"wrote {args.png}")
        else:
            print("matplotlib is not installed: no plot written (pip install matplotlib)")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="python -m oknumba.profile", description=_DESCRIPTION)
    return _add_arguments(p)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_profile_cli(args)
