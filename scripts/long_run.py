"""Long online runs: does every method stay finite, and do its influence factors stay bounded?

    python scripts/long_run.py                         # 10^6 steps, every method, float32 and float64
    python scripts/long_run.py --steps 20000 --methods ok:4,uoro --dtypes float32 --json out.json

For each method (from the registry :data:`oknumba.methods.METHODS`: the Kronecker methods
ok, ok-truncated, kf, kf-avg, then UORO, exact RTRL and — loss only, it keeps no influence —
TBPTT) and each dtype, a small model (``--cell``, ``--hidden``, batch ``--batch``) trains
online through the public API (:class:`oknumba.RNN`, :class:`oknumba.OnlineLearner`) on a
delayed-recall stream: random symbols one-hot in, the target is the symbol ``--delay`` steps
back. By default the streams are never reset, so the influence estimate is carried through
the whole run — the hard case for boundedness.

Every ``--sample-every`` steps the script reads the estimator's factors
(``learner.estimator``):

* ok / ok-truncated / kf / kf-avg: ``us`` (B, r, a), the explicit large factors ``At``
  (B, r, P, S), the stored rows ``W`` (B, r+K, P, S) and coefficients ``X`` of its
  ``state_dict()``;
* uoro: ``s_tilde`` (B, S) and ``theta`` (B, a·P);
* rtrl: ``G`` (B, S, a·P);

and records the largest Euclidean/Frobenius norm of a single factor (per stream and term),
the norm of the whole estimate ``‖G̃‖_F`` (from ``dense()``), and whether everything —
factors, parameters — is finite. Norms are computed in float64 (no overflow of float32
squares). The loss of every step is checked by the learner itself (``FloatingPointError``).

Prints one table row per method × dtype: steps done, mean loss (bits) over the last
``--tail`` steps, the largest factor norm and ``‖G̃‖_F`` seen, the factor norm at the end,
wall seconds (all steps and samples) and, within them, the first step's seconds (which
include compiling the kernels unless Numba's cache has them) and a status. Exit code 0 if every run stayed finite and below ``--norm-limit``; 1 if
anything became non-finite (loss, factors or parameters); 3 if all stayed finite but a
factor norm exceeded ``--norm-limit``; 2 for bad arguments.
"""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import oknumba  # noqa: E402
from oknumba.methods import METHODS, method_names, parse_method_spec  # noqa: E402

LN2 = math.log(2.0)
CHUNK = 10_000          # steps of input generated at once


def default_specs(rank, truncation):
    """Every registered method as a spec: ``name:rank`` / ``name:truncation`` where it takes one."""
    specs = []
    for name in method_names():
        param = METHODS[name].param
        specs.append(name if param is None else f"{name}:{rank if param == 'rank' else truncation}")
    return specs


# ------------------------------------------------------------------------------------------------
# factor norms per estimator
# ------------------------------------------------------------------------------------------------
def _norms(x, axes):
    x = np.asarray(x, np.float64)
    return np.sqrt(np.sum(x * x, axis=axes))


def factor_stats(est):
    """``{"factor": largest single factor norm, "estimate": largest ‖G̃_b‖_F, "finite": bool,
    ...components}`` for the estimator ``est``; None for a method without influence factors."""
    if not getattr(est, "has_influence", True):
        return None
    parts = {}
    if hasattr(est, "us") and hasattr(est, "term_rows"):        # ok, ok-truncated, kf, kf-avg
        sd = est.state_dict()
        parts["u"] = _norms(est.us, 2)                          # (B, r)
        parts["A"] = _norms(est.At, (2, 3))                     # (B, r)
        parts["rows"] = _norms(sd["W"], (2, 3))                 # (B, r + K)
        parts["X"] = np.abs(np.asarray(sd["X"], np.float64))    # coefficients, not a factor
    elif hasattr(est, "s_tilde") and hasattr(est, "theta"):     # uoro
        parts["s_tilde"] = _norms(est.s_tilde, 1)
        parts["theta"] = _norms(est.theta, 1)
    elif hasattr(est, "G"):                                     # exact rtrl
        parts["G"] = _norms(est.G, (1, 2))
    else:
        raise TypeError(f"no factor inspection for estimator {type(est).__name__}")
    dense = np.asarray(est.dense(), np.float64)
    estimate = _norms(dense.reshape(dense.shape[0], -1), 1)
    out = {k: float(np.max(v)) for k, v in parts.items()}
    out["factor"] = max(v for k, v in out.items() if k != "X")
    out["estimate"] = float(np.max(estimate))
    out["finite"] = bool(all(np.all(np.isfinite(v)) for v in parts.values()) and np.all(np.isfinite(estimate)))
    return out


# ------------------------------------------------------------------------------------------------
# one run
# ------------------------------------------------------------------------------------------------
class DelayedRecall:
    """Random symbols (one-hot) in; target = the symbol ``delay`` steps back (−1 before)."""

    def __init__(self, n_sym, batch, delay, dtype, seed):
        self.n_sym, self.batch, self.delay = n_sym, batch, delay
        self.eye = np.eye(n_sym, dtype=dtype)
        self.rng = np.random.default_rng(seed)
        self.hist = np.full((delay, batch), -1, np.int64)      # the last `delay` symbols

    def chunk(self, n):
        sym = self.rng.integers(0, self.n_sym, size=(n, self.batch))
        ys = np.concatenate([self.hist, sym])[:n]
        self.hist = np.concatenate([self.hist, sym])[-self.delay:] if self.delay else self.hist
        return np.ascontiguousarray(self.eye[sym]), np.ascontiguousarray(ys)


def run_one(spec, dtype, args):
    label, name, kwargs = parse_method_spec(spec)
    dt = np.dtype(dtype)
    model = oknumba.RNN(args.cell, args.symbols, args.hidden, args.symbols, seed=args.seed, dtype=dt)
    learner = oknumba.OnlineLearner(model, name, batch=args.batch, lr=args.lr, clip=args.clip,
                                    seed=args.seed, threads=args.threads, **kwargs)
    data = DelayedRecall(args.symbols, args.batch, args.delay, dt, args.seed + 1)
    steps, tail = args.steps, min(args.tail, args.steps)
    res = {"method": label, "dtype": dtype, "steps": 0, "status": "ok", "error": None,
           "max_factor": None, "max_estimate": None, "final_factor": None, "samples": []}
    tail_sum, tail_n, interval_sum, interval_n = 0.0, 0, 0.0, 0
    never = np.zeros(args.batch, bool)
    every_reset = args.reset_every
    heartbeat = max(1, steps // 10)
    t_start = time.perf_counter()
    first_step_s = None

    def sample(step):
        st = factor_stats(learner.estimator)
        params_ok = all(np.all(np.isfinite(p)) for p in model.params.values())
        rec = {"step": step, "loss_bits": interval_sum / interval_n / LN2 if interval_n else None,
               "params_finite": bool(params_ok)}
        if st is not None:
            rec.update(st)
            res["max_factor"] = max(res["max_factor"] or 0.0, st["factor"])
            res["max_estimate"] = max(res["max_estimate"] or 0.0, st["estimate"])
            res["final_factor"] = st["factor"]
        res["samples"].append(rec)
        if not params_ok or (st is not None and not st["finite"]):
            raise FloatingPointError(f"non-finite {'parameters' if not params_ok else 'influence factors'}"
                                     f" at step {step}")

    try:
        with learner.pinned():
            done = 0
            while done < steps:
                n = min(CHUNK, steps - done)
                xs, ys = data.chunk(n)
                for i in range(n):
                    t = done + i            # steps taken before this one
                    reset = None
                    if every_reset and t % every_reset == 0:
                        reset = ~never
                    if first_step_s is None:
                        t0 = time.perf_counter()
                        loss = learner.step(xs[i], ys[i], reset)
                        first_step_s = time.perf_counter() - t0
                    else:
                        loss = learner.step(xs[i], ys[i], reset)
                    if t >= steps - tail:
                        tail_sum += loss
                        tail_n += 1
                    interval_sum += loss
                    interval_n += 1
                    step = t + 1
                    if step % args.sample_every == 0 or step == steps:
                        sample(step)
                        interval_sum, interval_n = 0.0, 0
                    if not args.quiet and step % heartbeat == 0 and step < steps:
                        f = res["final_factor"]
                        print(f"  {label} {dtype}: step {step}/{steps}"
                              f"  {time.perf_counter() - t_start:.0f} s"
                              + ("" if f is None else f"  factor norm {f:.3g}"), file=sys.stderr, flush=True)
                done += n
    except FloatingPointError as e:
        res["status"], res["error"] = "non-finite", str(e)
    res["steps"] = learner.steps
    res["tail_steps"] = tail_n
    res["final_loss_bits"] = tail_sum / tail_n / LN2 if tail_n else None
    res["wall_seconds"] = time.perf_counter() - t_start
    res["first_step_seconds"] = first_step_s
    if res["status"] == "ok" and res["max_factor"] is not None and res["max_factor"] > args.norm_limit:
        res["status"] = "above limit"
    return res


# ------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------
def _g(v, fmt=".4g"):
    return "—" if v is None else format(v, fmt)


def format_table(results, tail):
    head = ["method", "dtype", "steps", f"loss bits (last {tail})", "max factor norm", "max ‖G̃‖_F",
            "final factor norm", "wall s", "1st step s", "status"]
    rows = [[r["method"], r["dtype"], str(r["steps"]), _g(r["final_loss_bits"]), _g(r["max_factor"]),
             _g(r["max_estimate"]), _g(r["final_factor"]), f"{r['wall_seconds']:.1f}",
             _g(r["first_step_seconds"], ".2f"), r["status"]]
            for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < 2 or i == len(cells) - 1 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=1_000_000, help="online steps per method and dtype")
    p.add_argument("--methods", default=None,
                   help="comma-separated specs, e.g. ok:4,kf,uoro (default: every registered method,"
                        " with --rank / --truncation)")
    p.add_argument("--dtypes", default="float32,float64", help="comma-separated float32/float64")
    p.add_argument("--cell", default="rhn", help="recurrent cell")
    p.add_argument("--hidden", type=int, default=8, help="hidden units n")
    p.add_argument("--batch", type=int, default=1, help="independent streams B")
    p.add_argument("--rank", type=int, default=4, help="rank r of ok, ok-truncated, kf-avg")
    p.add_argument("--truncation", type=int, default=10, help="window k of tbptt")
    p.add_argument("--symbols", type=int, default=4, help="alphabet size (input and output)")
    p.add_argument("--delay", type=int, default=3, help="the target is the input this many steps back")
    p.add_argument("--reset-every", type=int, default=0,
                   help="reset state and influence of every stream every N steps (0: never)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=1.0, help="per-parameter gradient norm bound")
    p.add_argument("--seed", type=int, default=0, help="seed of model, estimator and data")
    p.add_argument("--threads", type=int, default=1, help="Numba and BLAS threads (learner.pinned())")
    p.add_argument("--sample-every", type=int, default=1000, help="steps between factor-norm samples")
    p.add_argument("--tail", type=int, default=10_000, help="steps of the final mean loss")
    p.add_argument("--norm-limit", type=float, default=1e6,
                   help="a factor norm above this counts as unbounded (exit code 3)")
    p.add_argument("--json", metavar="OUT", help="also write settings, results and the sampled norms as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    for key in ("steps", "hidden", "batch", "rank", "truncation", "symbols", "sample_every", "tail", "threads"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.delay < 0 or args.reset_every < 0:
        p.error("--delay and --reset-every must be >= 0")
    try:
        specs = ([s.strip() for s in args.methods.split(",") if s.strip()] if args.methods
                 else default_specs(args.rank, args.truncation))
        for s in specs:
            parse_method_spec(s)
    except ValueError as e:
        p.error(str(e))
    if not specs:
        p.error("--methods names no method")
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not dtypes or any(d not in ("float32", "float64") for d in dtypes):
        p.error(f"--dtypes must name float32 and/or float64, got {args.dtypes!r}")

    print(f"long run: {args.cell} n={args.hidden} B={args.batch} symbols={args.symbols} delay={args.delay}"
          f" reset-every={args.reset_every or 'never'} lr={args.lr} clip={args.clip}, {args.steps} steps each,"
          f" factor norms every {args.sample_every} steps", flush=True)
    results = []
    for spec in specs:
        for dtype in dtypes:
            r = run_one(spec, dtype, args)
            results.append(r)
            if not args.quiet:
                print(f"{r['method']} {dtype}: {r['status']} after {r['steps']} steps, {r['wall_seconds']:.1f} s"
                      + (f" ({r['error']})" if r["error"] else ""), file=sys.stderr, flush=True)
    print(format_table(results, min(args.tail, args.steps)))
    nonfinite = [r for r in results if r["status"] == "non-finite"]
    above = [r for r in results if r["status"] == "above limit"]
    for r in nonfinite:
        print(f"NON-FINITE: {r['method']} {r['dtype']}: {r['error']}")
    for r in above:
        print(f"ABOVE LIMIT: {r['method']} {r['dtype']}: factor norm {r['max_factor']:.4g} > {args.norm_limit:g}")
    if args.json:
        doc = {"settings": {k: v for k, v in vars(args).items() if k != "json"}, "methods": specs,
               "dtypes": dtypes, "oknumba": oknumba.__version__, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    return 1 if nonfinite else 3 if above else 0


if __name__ == "__main__":
    sys.exit(main())
