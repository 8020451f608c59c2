#!/usr/bin/env bash
# Smoke-run the airspeed-velocity (asv) benchmark suite in benchmarks/ (CI-sized): every
# benchmark runs once (--quick), nothing is saved (--dry-run). About 2-4 min on 2 cores.
# It benchmarks the package as installed in the current Python (environment_type "existing"),
# so install it first:  python -m pip install -e ".[bench]"
#
#   scripts/run_asv_quick.sh                         # whole suite, quick
#   scripts/run_asv_quick.sh --bench TimeStep        # extra arguments go to `asv run`
#   PYTHON=.venv/bin/python scripts/run_asv_quick.sh # pick the interpreter (default: python3)
#
# Full run, saved and published as HTML (from benchmarks/; results and html land in
# benchmarks/.asv/, which git ignores; `--quick` timings are one sample: never compare them):
#
#   cd benchmarks
#   asv machine --yes                      # once per machine (writes ~/.asv-machine.json)
#   asv run --python=same --set-commit-hash=$(git rev-parse HEAD)
#   asv publish                            # writes .asv/html (needs git)
#   asv preview                            # serves it on http://127.0.0.1:8080
#   asv compare <old-hash> <new-hash>      # after running both commits
#
# Threads: benchmarks pin Numba and BLAS to OKNUMBA_BENCH_THREADS (default 1) threads.
set -euo pipefail
cd "$(dirname "$0")/../benchmarks"
PY="${PYTHON:-python3}"
"$PY" -m asv machine --machine=ci --yes
"$PY" -m asv run --machine=ci --python=same --quick --show-stderr --dry-run "$@"
