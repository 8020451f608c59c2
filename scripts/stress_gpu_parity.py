#!/usr/bin/env python3
"""Stress harness for the GPU-vs-CPU parity tests in the CUDA simulator.

Runs the ``cuda``-marked tests of ``tests/test_gpu.py`` (by default the parity ones) many
times, each run a fresh ``pytest`` process with ``NUMBA_ENABLE_CUDASIM=1``, and reports the
failures per test case. Runs vary what has made intermittent failures appear:

* the Numba cache: a *cold* run gets an empty ``NUMBA_CACHE_DIR`` (every CPU kernel compiles
  in that process), a *warm* run shares one cache directory with the other warm runs;
* the GIL switch interval of the simulated threads (``sys.setswitchinterval``; the test
  fixture reads ``OKNUMBA_SIM_SWITCH_INTERVAL``): short intervals interleave the simulated
  CUDA threads of a block more finely and expose races sooner.

Examples::

    python scripts/stress_gpu_parity.py                      # 30 runs, 2 at a time
    python scripts/stress_gpu_parity.py --runs 6 --switch 1e-6 -k "rhn and ok"
    python scripts/stress_gpu_parity.py --json stress.json

Exit status 0 when every run of every case passed, 1 otherwise.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SELECTION = "matches_cpu or round_trip or stale"


def _run_once(index, python, selection, switch, cold, warm_dir, extra):
    with tempfile.TemporaryDirectory(prefix="oknumba-stress-") as tmp:
        env = dict(os.environ)
        env["NUMBA_ENABLE_CUDASIM"] = "1"
        env["OKNUMBA_SIM_SWITCH_INTERVAL"] = repr(switch)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env["NUMBA_CACHE_DIR"] = os.path.join(tmp, "numba-cache") if cold else warm_dir
        xml = os.path.join(tmp, "junit.xml")
        cmd = [python, "-m", "pytest", "-m", "cuda", "tests/test_gpu.py", "-q",
               "-p", "no:cacheprovider", f"--junitxml={xml}", "-k", selection, *extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        cases = {}
        if os.path.exists(xml):
            for tc in ET.parse(xml).getroot().iter("testcase"):
                name = tc.get("name")
                bad = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
                skipped = tc.find("skipped") is not None
                cases[name] = ("skipped" if skipped else "failed" if bad is not None else "passed",
                               (bad.get("message") or "")[:300] if bad is not None else "")
    return dict(index=index, switch=switch, cold=cold, wall_s=round(wall, 1),
                returncode=proc.returncode, cases=cases,
                tail="" if proc.returncode == 0 else proc.stdout[-2000:] + proc.stderr[-2000:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="pytest processes in all (default 30)")
    ap.add_argument("--jobs", type=int, default=2, help="processes at a time (default 2)")
    ap.add_argument("--switch", default="5e-5,1e-6,1e-3",
                    help="comma-separated switch intervals in seconds, cycled over the runs")
    ap.add_argument("--cold-every", type=int, default=3,
                    help="every N-th run starts with an empty Numba cache (default 3; 1 = all)")
    ap.add_argument("-k", dest="selection", default=DEFAULT_SELECTION,
                    help=f"pytest -k expression (default {DEFAULT_SELECTION!r})")
    ap.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    ap.add_argument("--json", help="write every run's result to this file")
    ap.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = ap.parse_args(argv)
    try:
        switches = [float(s) for s in args.switch.split(",") if s]
    except ValueError:
        ap.error(f"--switch must be comma-separated numbers, got {args.switch!r}")
    if args.runs < 1 or args.jobs < 1 or args.cold_every < 1 or not switches:
        ap.error("--runs, --jobs and --cold-every must be >= 1 and --switch non-empty")

    results = []
    with tempfile.TemporaryDirectory(prefix="oknumba-stress-warm-") as warm_dir:
        # warm runs share this cache; a first warm run fills it
        plan = [(i, switches[i % len(switches)], i % args.cold_every == 0) for i in range(args.runs)]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futs = [pool.submit(_run_once, i, args.python, args.selection, sw, cold, warm_dir,
                                args.pytest_args) for i, sw, cold in plan]
            for fut in concurrent.futures.as_completed(futs):
                res = fut.result()
                results.append(res)
                n_fail = sum(1 for s, _ in res["cases"].values() if s == "failed")
                print(f"run {res['index']:3d}  {'cold' if res['cold'] else 'warm'}  switch "
                      f"{res['switch']:g}  {len(res['cases'])} cases  {n_fail} failed  "
                      f"rc {res['returncode']}  {res['wall_s']} s", flush=True)
    results.sort(key=lambda r: r["index"])

    per_case = collections.defaultdict(lambda: collections.Counter())
    messages = collections.defaultdict(list)
    for res in results:
        for name, (status, msg) in res["cases"].items():
            per_case[name][status] += 1
            if status == "failed":
                messages[name].append(f"run {res['index']} ({'cold' if res['cold'] else 'warm'},"
                                      f" switch {res['switch']:g}): {msg}")
    broken = [r for r in results if not r["cases"] or (r["returncode"] not in (0, 1))]
    print(f"\n{'case':70s} passed failed skipped")
    for name in sorted(per_case):
        c = per_case[name]
        print(f"{name:70s} {c['passed']:6d} {c['failed']:6d} {c['skipped']:7d}")
    total_fail = sum(c["failed"] for c in per_case.values())
    print(f"\n{len(results)} runs ({sum(r['cold'] for r in results)} cold), {len(per_case)} cases,"
          f" {total_fail} failures, {len(broken)} runs without a test report")
    for name, msgs in sorted(messages.items()):
        print(f"\nFAILED {name}:")
        for m in msgs:
            print("   ", m)
    for r in broken:
        print(f"\nrun {r['index']} produced no report (rc {r['returncode']}):\n{r['tail']}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(runs=results, per_case={
            k: dict(v) for k, v in per_case.items()}), indent=1))
    return 0 if total_fail == 0 and not broken else 1


if __name__ == "__main__":
    sys.exit(main())
