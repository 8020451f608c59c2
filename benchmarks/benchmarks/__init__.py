"""asv benchmarks for oknumba (run from ``benchmarks/``; see ``scripts/run_asv_quick.sh``).

Threads: every benchmark pins Numba and BLAS threads to ``OKNUMBA_BENCH_THREADS`` (default 1)
in ``setup``; the environment variable is also exported as ``OPENBLAS_NUM_THREADS`` before
numpy loads, so numpy's and Numba's (scipy's) OpenBLAS never fight for the cores.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("OKNUMBA_BENCH_THREADS", "1"))
