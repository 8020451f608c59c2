"""oknumba's ``OnlineLearner.step`` against the plain-NumPy implementation of the same maths
(``benchmarks/benchmarks/_plain_numpy.py``: vanilla RNN, batch 1, row-scaled Jacobians): median µs per
whole step of each, measured in one process with the samples of the two interleaved, and the
speed-up plain ÷ oknumba.

    python benchmarks/compare_plain_numpy.py --hidden 32,64,128,256 --threads 1

Threads (Numba and every BLAS) are pinned to ``--threads`` for both sides. The asv suite
tracks the same ratio (``bench_baseline.TrackSpeedupOverPlainNumpy``).
"""
import argparse
import os
import sys

# the asv suite's package (benchmarks/benchmarks) is importable from this folder
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmarks._plain_numpy import PlainLearner  # noqa: E402
from benchmarks.bench_baseline import interleaved_medians, make_pair  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="32,64,128,256", help="comma-separated n (default: %(default)s)")
    ap.add_argument("--methods", default="uoro,kf,rtrl", help="comma-separated (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="Numba and BLAS threads (default: 1)")
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--samples", type=int, default=7, help="samples per side (default: 7)")
    args = ap.parse_args(argv)
    from oknumba._threads import pinned_threads
    from oknumba.profile.timing import cpu_info

    print(f"{cpu_info()['describe']}, threads={args.threads}, {args.dtype}, batch 1, vanilla cell,"
          f" medians of {args.samples} interleaved samples")
    print(f"{'method':<8}{'n':>6}{'oknumba µs':>14}{'plain µs':>12}{'speed-up':>10}")
    with pinned_threads(args.threads):
        for method in args.methods.split(","):
            for n in (int(v) for v in args.hidden.split(",")):
                ours, plain = make_pair(method, n, args.dtype, args.threads, PlainLearner)
                t_ours, t_plain = interleaved_medians(ours, plain, args.samples)
                print(f"{method:<8}{n:>6}{t_ours:>14.1f}{t_plain:>12.1f}{t_plain / t_ours:>9.1f}×",
                      flush=True)


if __name__ == "__main__":
    main()
