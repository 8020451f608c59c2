"""What the fused learner step costs around its kernel: the median µs of a whole
``OnlineLearner.step`` against the fused kernel's entry point called directly with the same
arguments (vanilla RNN, 8 inputs and outputs, batch 1, 1 thread, float64).

    python scripts/fused_overhead.py uoro 32
    python scripts/fused_overhead.py ok 32 --rank 4

The difference is the Python around the kernel: input checks, the BLAS pin, the optimizer's
counter, argument unboxing of the step's own call. Run nothing else meanwhile; name the CPU.
"""
import argparse

import numpy as np

import oknumba
from oknumba.profile.timing import interleaved_samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("method")
    ap.add_argument("hidden", type=int)
    ap.add_argument("--rank", type=int, default=4, help="rank for ok / kf-avg (default: 4)")
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5000)
    a = ap.parse_args()
    kw = {"rank": a.rank} if a.method in ("ok", "ok-truncated", "kf-avg") else {}
    learner = oknumba.OnlineLearner(oknumba.RNN("vanilla", 8, a.hidden, 8, seed=0), a.method,
                                    batch=1, threads=1, seed=0, **kw)
    x = np.random.default_rng(0).standard_normal((1, 8))
    y = np.zeros(1, np.int64)
    for _ in range(500):
        learner.step(x, y)
    plan, opt = learner._fused, learner._optimizer
    if not plan:
        raise SystemExit(f"{a.method} has no fused step here (see oknumba.fused)")

    def kernel_only():
        opt.t += 1
        plan.run(x, y, False, True, opt.t, 1.0, -1.0, opt.fused_scalars())

    def whole_step():
        learner.step(x, y)

    with learner.pinned():
        step_us, kernel_us = interleaved_samples([(whole_step, a.steps), (kernel_only, a.steps)],
                                                 a.samples)
    med = {"step": float(np.median(step_us)), "kernel": float(np.median(kernel_us))}
    print(f"{a.method} n={a.hidden}: step {med['step']:.2f} µs, kernel {med['kernel']:.2f} µs, "
          f"around it {med['step'] - med['kernel']:.2f} µs")


if __name__ == "__main__":
    main()
