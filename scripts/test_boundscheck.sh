#!/usr/bin/env bash
# Run the kernel tests once with Numba's bounds checking on (NUMBA_BOUNDSCHECK=1): every
# array access in every oknumba kernel is checked, and an out-of-range one raises IndexError
# instead of reading or writing past the array.
#
# Numba's on-disk cache does not key kernels on the bounds-check flag, so a cached
# (unchecked) kernel would be loaded and nothing would be checked. The script therefore
# turns oknumba's kernel cache off (OKNUMBA_CACHE=0; an ambient NUMBA_CACHE_DIR is ignored),
# so every kernel is compiled in this process with checks — or, if BOUNDSCHECK_CACHE_DIR is
# set, caches them in that directory, which must hold bounds-checked kernels only (reruns
# then skip most of the compilation). Before the tests it verifies that checking is really
# on: a plain njit function and an oknumba kernel must both raise IndexError on an
# out-of-range read (exit 3 otherwise).
#
#   scripts/test_boundscheck.sh                    # the default selection, below
#   scripts/test_boundscheck.sh -x -k lstm         # extra arguments go to pytest
#   BOUNDSCHECK_TESTS="tests/test_cells.py" scripts/test_boundscheck.sh
#   PYTHON=.venv/bin/python scripts/test_boundscheck.sh
#
# What runs: tests/test_cells.py, tests/test_estimators.py, tests/test_functional.py,
# tests/test_learner.py, tests/test_readouts.py and tests/test_properties.py, in full. Together
# they compile every CPU kernel of the package (81 on 2026-12-02) with checks and run every
# cell (the deep RHN included) × every method of sequence_grad and OnlineLearner in float32
# and float64 (test_properties.py parametrises that product), both readouts, the OK reduction,
# the parallel stream driver, checkpoints and the optimisers. Almost all of the time is
# compilation (every fused learner step included): 10–11.5 minutes on 2 cores (AMD EPYC Zen 3
# and Zen 4, 2026-12-03/04).
#
# Exit status: pytest's, or 3 when bounds checking could not be confirmed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"

export NUMBA_BOUNDSCHECK=1             # read by numba at import: set before python starts
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ -n "${BOUNDSCHECK_CACHE_DIR:-}" ]; then
    mkdir -p "$BOUNDSCHECK_CACHE_DIR"
    export OKNUMBA_CACHE=1 NUMBA_CACHE_DIR="$BOUNDSCHECK_CACHE_DIR"
else
    export OKNUMBA_CACHE=0
    unset NUMBA_CACHE_DIR
fi

"$PY" - <<'EOF' || exit 3
import numpy as np
import numba
from numba import njit

import oknumba._jit
from oknumba.readouts import readout_outputs      # an oknumba kernel (oknumba._jit.kernel)

assert numba.config.BOUNDSCHECK, "numba.config.BOUNDSCHECK is off"
print(f"test_boundscheck.sh: numba {numba.__version__}, NUMBA_BOUNDSCHECK on, oknumba kernel"
      f" cache {'in ' + str(numba.config.CACHE_DIR) if oknumba._jit.CACHE else 'off'}")


@njit
def read(a, i):
    return a[i]


def must_raise(what, f, *args):
    try:
        f(*args)
    except IndexError:
        return
    raise SystemExit(f"test_boundscheck.sh: an out-of-range read in {what} did not raise"
                     " IndexError: bounds checking is not on")


must_raise("a plain njit function", read, np.zeros(3), 3)
# out = [h, 1] V reads h = s[b, :n]: with n = 2 > S = 1 it reads s[0, 1], past the array
V, s, out = np.zeros((3, 2)), np.zeros((1, 1)), np.zeros((1, 2))
must_raise("oknumba.readouts.readout_outputs", readout_outputs, V, s, 2, out)
EOF

if [ -n "${BOUNDSCHECK_TESTS:-}" ]; then
    # shellcheck disable=SC2206
    tests=($BOUNDSCHECK_TESTS)
else
    tests=(tests/test_cells.py tests/test_estimators.py tests/test_functional.py
           tests/test_learner.py tests/test_readouts.py tests/test_properties.py)
fi
start=$SECONDS
"$PY" -m pytest "${tests[@]}" "$@"
rc=$?
echo "test_boundscheck.sh: pytest exit $rc after $((SECONDS - start)) s" >&2
exit "$rc"
