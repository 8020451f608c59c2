#!/usr/bin/env bash
# Real-GPU check of the numba.cuda path (needs an NVIDIA GPU and driver; no simulator).
#
#   1. installs the package with the cuda and test extras into the interpreter ($PYTHON, default
#      python3): online `pip install -e ".[test,cuda]"`; offline (a GPU box without network)
#      the package alone, `--no-deps`, on the numba / numba-cuda already there;
#   2. checks that numba.cuda sees a device;
#   3. runs the `cuda` tests of tests/test_gpu.py compiled for the GPU (NUMBA_ENABLE_CUDASIM unset);
#   4. runs `oknumba profile` at the paper's two settings (RHN n=128 ok:16 B=16 and RHN n=256
#      ok:8 B=32, float32) on the GPU and on the CPU (all cores), and writes everything to one
#      JSON: $OUT_DIR/gpu_check.json (OUT_DIR defaults to $OUT, else ./gpu_check).
#
# About 7 minutes on one GPU, most of it kernel compilation (the cuda tests took 4 min 13 s on
# an NVIDIA H200 with a 16-core host, 2026-12-04).
# Exit status: non-zero if any part failed (the JSON says which).
#
#   bash scripts/gpu_check.sh
#   PYTHON=/opt/venv/bin/python OUT_DIR=/tmp/check bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT_DIR="${OUT_DIR:-${OUT:-gpu_check}}"
mkdir -p "$OUT_DIR"
unset NUMBA_ENABLE_CUDASIM
export PYTHONUNBUFFERED=1
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
say() { echo "== $*" | tee -a "$LOG"; }

say "install"
if ! timeout 120 "$PY" -m pip install -q -e ".[test,cuda]" >>"$LOG" 2>&1; then
    say "full install failed (offline?): installing the package alone on the numba/numba-cuda already present"
    timeout 60 "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 \
        || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - >>"$LOG" 2>&1 <<'PYEOF'
import numba, numpy, oknumba, oknumba.gpu as g
print("numba", numba.__version__, "numpy", numpy.__version__, "oknumba", oknumba.__file__)
print("gpu status:", g.gpu_status())
PYEOF

say "device"
timeout 60 "$PY" -c "
from numba import cuda
assert cuda.is_available(), 'numba.cuda sees no GPU'
d = cuda.get_current_device(); print(d.name, d.compute_capability)
" 2>&1 | tee "$OUT_DIR/device.txt" | tee -a "$LOG"
dev_rc=${PIPESTATUS[0]}

say "cuda tests (compiled)"
timeout 420 "$PY" -m pytest -m cuda tests/test_gpu.py -q -p no:cacheprovider \
    --junitxml="$OUT_DIR/gpu_tests.xml" 2>&1 | tail -n 30 | tee -a "$LOG"
test_rc=${PIPESTATUS[0]}

prof() {  # name device threads args...
    local name=$1 device=$2 threads=$3; shift 3
    timeout 90 "$PY" -m oknumba profile --cell rhn --dtype float32 --device "$device" \
        --threads "$threads" --samples 3 --quiet --json "$OUT_DIR/profile_$name.json" "$@" \
        >>"$LOG" 2>&1
    echo $?
}
say "profile"
NPROC=$(nproc)
rc_g1=$(prof copy_gpu gpu 1 --methods ok:16 --hidden 128 --batch 16)
rc_g2=$(prof ptb_gpu gpu 1 --methods ok:8 --hidden 256 --batch 32)
rc_c1=$(prof copy_cpu cpu "$NPROC" --methods ok:16 --hidden 128 --batch 16)
rc_c2=$(prof ptb_cpu cpu "$NPROC" --methods ok:8 --hidden 256 --batch 32)

"$PY" - "$OUT_DIR" "$dev_rc" "$test_rc" "$rc_g1" "$rc_g2" "$rc_c1" "$rc_c2" <<'PYEOF' | tee -a "$LOG"
import json, os, platform, sys
import xml.etree.ElementTree as ET
out, dev_rc, test_rc, *prof_rc = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor())
res = {"device": open(os.path.join(out, "device.txt")).read().strip(), "cpu": cpu, "nproc": os.cpu_count(),
       "device_rc": int(dev_rc), "tests_rc": int(test_rc), "profile": {}}
xml = os.path.join(out, "gpu_tests.xml")
if os.path.exists(xml):
    suite = ET.parse(xml).getroot().find("testsuite") or ET.parse(xml).getroot()
    res["tests"] = {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "time")}
for name, rc in zip(["copy_gpu", "ptb_gpu", "copy_cpu", "ptb_cpu"], prof_rc):
    path = os.path.join(out, f"profile_{name}.json")
    entry = {"rc": int(rc)}
    if os.path.exists(path):
        entry["result"] = json.load(open(path))
    res["profile"][name] = entry
json.dump(res, open(os.path.join(out, "gpu_check.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in res.items() if k != "profile"}, indent=1))
print("wrote", os.path.join(out, "gpu_check.json"))
PYEOF
[ "$dev_rc" -eq 0 ] && [ "$test_rc" -eq 0 ] && [ "$rc_g1" -eq 0 ] && [ "$rc_g2" -eq 0 ] \
    && [ "$rc_c1" -eq 0 ] && [ "$rc_c2" -eq 0 ]
