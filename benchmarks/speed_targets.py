"""Measure every speed target of the README's performance section on this machine and print
them as one Markdown table, the CPU named above it.

    python benchmarks/speed_targets.py                    # everything (about 3 minutes on 2 cores)
    python benchmarks/speed_targets.py --only latency,plain --samples 9
    python benchmarks/speed_targets.py --json targets.json

What is measured (each profile line in a fresh ``python -m oknumba profile`` process, so one
setting's compiled code and caches do not warm the next; medians of ``--samples``):

* ``paper``: the copy-task (RHN n = 128, ``ok:16``, B = 16) and PTB (RHN n = 256, ``ok:8``,
  B = 32) settings, float32 and float64, 1 and 2 threads — whole step ÷ bare products
  (target ≤ 1.3);
* ``batch1``: one stream, vanilla and RHN, n = 128 and 256, ``ok:4`` and ``kf``, float64,
  1 thread — step ÷ bare products (target ≤ 1.5);
* ``latency``: vanilla n = 32, B = 1, float64, 1 thread — µs per whole step (``ok:4`` ≤ 25,
  ``uoro`` ≤ 10);
* ``plain``: against the plain-NumPy implementation (``benchmarks/_plain_numpy.py``), same
  process, samples interleaved, batch 1, float64, 1 thread — speed-up plain ÷ oknumba at
  n = 32, 64, 128, 256 (targets at n = 32: ``uoro`` ≥ 10, ``kf`` ≥ 5; everywhere ≥ 1).

The ratios and latencies are what ``oknumba profile`` reports and the asv suite tracks
(``bench_ratio``, ``bench_baseline``); this script only collects them into the README's form.
Run it on an otherwise idle machine: the figures are wall times.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: (group, label, profile arguments, what is read, target, "max" or "min")
PAPER = [("paper", f"{name}: RHN n = {n}, `{m}`, B = {b}, {dt}, {th} thread{'s' * (th > 1)}",
          ["--cell", "rhn", "--methods", m, "--hidden", str(n), "--batch", str(b), "--dtype", dt,
           "--threads", str(th)], "ratio", 1.3)
         for name, m, n, b in (("copy", "ok:16", 128, 16), ("PTB", "ok:8", 256, 32))
         for dt in ("float64", "float32") for th in (1, 2)]
BATCH1 = [("batch1", f"B = 1, {cell}, `{m}`, n = {n}, float64, 1 thread",
           ["--cell", cell, "--methods", m, "--hidden", str(n), "--batch", "1", "--threads", "1"],
           "ratio", 1.5)
          for cell in ("vanilla", "rhn") for m in ("ok:4", "kf") for n in (128, 256)]
LATENCY = [("latency", f"vanilla n = 32, B = 1, `{m}`, float64, 1 thread (µs per step)",
            ["--cell", "vanilla", "--methods", m, "--hidden", "32", "--batch", "1", "--threads", "1"],
            "us_per_step", target)
           for m, target in (("ok:4", 25.0), ("uoro", 10.0))]
PLAIN_SIZES = (32, 64, 128, 256)
PLAIN_TARGETS = {("uoro", 32): 10.0, ("kf", 32): 5.0}
GROUPS = ("paper", "batch1", "latency", "plain")


def _profile_value(args, key, samples):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.json")
        cmd = [sys.executable, "-m", "oknumba", "profile", *args, "--samples", str(samples),
               "--quiet", "--json", path]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
        with open(path) as f:
            row = json.load(f)["results"][0]
    return row[key]


def _plain_rows(samples):
    from benchmarks._plain_numpy import PlainLearner
    from benchmarks.bench_baseline import interleaved_medians, make_pair
    from oknumba._threads import pinned_threads

    rows = []
    with pinned_threads(1):
        for method in ("uoro", "kf", "rtrl"):
            for n in PLAIN_SIZES:
                ours, plain = make_pair(method, n, "float64", 1, PlainLearner)
                t_ours, t_plain = interleaved_medians(ours, plain, samples)
                rows.append(dict(group="plain", label=f"plain NumPy ÷ oknumba, `{method}`, n = {n}"
                                 f" ({t_plain:.1f} / {t_ours:.1f} µs)", value=t_plain / t_ours,
                                 target=PLAIN_TARGETS.get((method, n), 1.0), better="min"))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(GROUPS),
                    help=f"comma-separated groups of {', '.join(GROUPS)} (default: all)")
    ap.add_argument("--samples", type=int, default=7, help="samples per setting (default: 7)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown or args.samples < 1:
        ap.error(f"unknown group(s) {unknown}; choose from {', '.join(GROUPS)}" if unknown
                 else "--samples must be >= 1")
    from oknumba.profile.timing import cpu_info

    cpu = cpu_info()
    print(f"CPU: {cpu['describe']}; medians of {args.samples} samples", flush=True)
    print("| setting | measured | target | met |\n|---|---|---|---|", flush=True)
    rows = []
    for group, label, prof_args, key, target in PAPER + BATCH1 + LATENCY:
        if group in groups:
            value = _profile_value(prof_args, key, args.samples)
            rows.append(dict(group=group, label=label + ("" if key != "ratio" else " (× bare)"),
                             value=value, target=target, better="max"))
            _print(rows[-1])
    if "plain" in groups:
        for row in _plain_rows(args.samples):
            rows.append(row)
            _print(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu, samples=args.samples, rows=rows), f, indent=1)


def _print(row):
    ok = row["value"] <= row["target"] if row["better"] == "max" else row["value"] >= row["target"]
    sign = "≤" if row["better"] == "max" else "≥"
    print(f"| {row['label']} | {row['value']:.2f} | {sign} {row['target']:g} | {'yes' if ok else 'no'} |",
          flush=True)


if __name__ == "__main__":
    main()
