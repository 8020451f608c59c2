"""Time this checkout's ``OnlineLearner.step`` against another version's in **one process**,
their samples alternating, so that a shared machine's drifting load hits both alike (separate
processes minutes apart differed by 10-20 % on the same code).

    git worktree add /tmp/base <rev>
    python benchmarks/ab_versions.py /tmp/base --cell rhn --hidden 128 --batch 16 --method ok:16

The other version's package is copied to a temporary folder as ``oknumba_base`` (its kernels
compile there on first use) and both learners train the same model on the same inputs.
Prints the median µs per step of each and the paired median of new ÷ base with its
interquartile range.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

import numpy as np


def make_step(pkg, cell, n, batch, dtype, threads, method):
    name, _, arg = method.partition(":")
    kwargs = {}
    if arg:
        kwargs["truncation" if name == "tbptt" else "rank"] = int(arg)
    model = pkg.RNN(cell, 4, n, 4, seed=0, dtype=dtype)
    learner = pkg.OnlineLearner(model, name, batch=batch, threads=threads, **kwargs)
    rng = np.random.default_rng(0)
    xs = np.ascontiguousarray(np.eye(4, dtype=dtype)[rng.integers(0, 4, size=(64, batch))])
    ys = rng.integers(0, 4, size=(64, batch)).astype(np.int64)
    state = [0]

    def step():
        j = state[0] % 64
        learner.step(xs[j], ys[j])
        state[0] += 1

    for _ in range(learner.update_every + 2):
        step()
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="checkout (or worktree) of the version to compare against")
    ap.add_argument("--cell", default="rhn")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--method", default="ok:16")
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=11)
    ap.add_argument("--sample-seconds", type=float, default=0.15)
    args = ap.parse_args(argv)
    src = os.path.join(args.base, "oknumba")
    if not os.path.isfile(os.path.join(src, "__init__.py")):
        sys.exit(f"{args.base!r} holds no oknumba package (expected {src}/__init__.py)")
    tmp = tempfile.mkdtemp(prefix="oknumba-ab-")
    shutil.copytree(src, os.path.join(tmp, "oknumba_base"), ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, tmp)
    import oknumba
    import oknumba_base

    from oknumba.profile.timing import interleaved_samples, reps_for

    setting = (args.cell, args.hidden, args.batch, args.dtype, args.threads, args.method)
    base, new = make_step(oknumba_base, *setting), make_step(oknumba, *setting)
    reps = reps_for(base, args.sample_seconds)     # the same steps per sample on both sides
    tb, tn = interleaved_samples([(base, reps), (new, reps)], args.samples)
    ratios = sorted(n / b for b, n in zip(tb, tn))
    q = len(ratios) // 4
    print(f"{args.cell} n={args.hidden} B={args.batch} {args.method} {args.dtype} threads={args.threads}:"
          f" base {statistics.median(tb):.1f} µs, new {statistics.median(tn):.1f} µs;"
          f" new/base paired median {statistics.median(ratios):.3f} (IQR {ratios[q]:.3f}-{ratios[-q - 1]:.3f})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
