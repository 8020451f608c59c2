"""The ``oknumba`` command line. Parsing and printing only: numerics live in the package."""
import argparse
import sys
import time

import numpy as np


def build_parser():
    p = argparse.ArgumentParser(prog="oknumba", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="compare exact-RTRL and BPTT gradients of a small model",
                       description="Run exact RTRL and BPTT on one random sequence of a small model"
                                   " and print the largest relative difference of the gradients.")
    d.add_argument("--cell", default="rhn", choices=["vanilla", "lstm", "gru", "rhn"],
                   help="recurrent cell (default: rhn)")
    d.add_argument("--hidden", type=int, default=16, help="hidden units n (default: 16)")
    d.add_argument("--steps", type=int, default=30, help="sequence length T (default: 30)")
    d.add_argument("--batch", type=int, default=4, help="independent streams B (default: 4)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    d.set_defaults(func=demo)
    return p


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


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
