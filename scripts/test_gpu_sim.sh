#!/usr/bin/env bash
# Run the GPU-path tests (pytest marker `cuda`, tests/test_gpu.py) in the CUDA simulator:
# no GPU needed, numba-cuda must be installed (pip install -e ".[cuda,test]").
# The main suite deselects these tests (setup.cfg: addopts = -m "not cuda"); CI runs this
# script as a separate step. About 3 minutes on 2 cores with a warm Numba cache (the CPU
# reference kernels compile on the first run: add a minute or two).
#
#   scripts/test_gpu_sim.sh                  # all cuda tests
#   scripts/test_gpu_sim.sh -k checkpoint    # extra arguments go to pytest
#   PYTHON=.venv/bin/python scripts/test_gpu_sim.sh
#
# Exit status: pytest's. Exit 5 ("no tests collected/selected") counts as a failure when
# tests/test_gpu.py defines tests (a broken marker or collection would otherwise pass
# silently) and as success only when there are none.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export NUMBA_ENABLE_CUDASIM=1          # must be set before numba is imported
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
"$PY" -m pytest -m cuda tests/test_gpu.py "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    if grep -qE '^def test_' tests/test_gpu.py 2>/dev/null; then
        echo "test_gpu_sim.sh: tests/test_gpu.py defines tests but pytest selected none (exit 5)" >&2
        exit 5
    fi
    echo "test_gpu_sim.sh: no cuda tests selected (exit 5), treated as success" >&2
    exit 0
fi
exit "$rc"
