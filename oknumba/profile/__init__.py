"""Per-step cost of the online methods against hidden size: ``python -m oknumba.profile``.

For each method × hidden size n this measures the median wall time of one whole
:meth:`oknumba.OnlineLearner.step` (forward, Jacobians, estimator update, gradient, optimizer
step, input checks — everything a user pays), the achieved GFLOP/s of the method's dominant
product, and the ratio of the step to the **bare product** — ``numpy.matmul`` of stacked
matrices of the same shapes, timed in the same process with the same dtype and threads,
its samples alternating with the step's so that a change of the machine's load hits both.
A ratio near 1 means the step is as fast as its dominant GEMM allows; a large ratio points at
overhead (Python calls, reductions, memory traffic) outside that product.

Only public APIs are used (:class:`oknumba.RNN`, :class:`oknumba.OnlineLearner`,
:func:`oknumba._threads.pinned_threads`), so the profile stays valid while kernels change.

Sizes (``a, P = model.params["W"].shape``): ``a = n_in + n + 1`` input rows, ``P`` = gate
blocks × n (vanilla 1, rhn 2, gru 3, lstm 4), ``S`` = state size (n; 2n for the LSTM), ``B``
streams. Flops counted per step (multiply-add = 2 flops), summed over the B streams:

==========================  ===================  ======================================
method                      flops per stream     bare product (stacked over B)
==========================  ===================  ======================================
``ok:r``, ``ok-truncated:r``,  ``2·r·S²·P``      ``(B,S,S) @ (B,S,r·P)``
``kf-avg:r``
``kf``                      ``2·S²·P``           ``(B,S,S) @ (B,S,P)``
``rtrl``                    ``2·S²·a·P``         ``(B,S,S) @ (B,S,a·P)``
``uoro``                    ``6·a·P`` (nominal)  none (ratio ``None``)
``tbptt:k``                 ``4·a·P + 2·S²``     none (ratio ``None``)
                            (nominal)
==========================  ===================  ======================================

The UORO count is the forward ``[x, h, 1]·W`` product, the tangent through the cell's
Jacobian-vector product and the rank-one parameter-factor update/gradient, each taken as one
a×P pass; the TBPTT count is the forward product plus, amortised per step, the backward
``δ·H`` product and the ``ĥ ⊗ (δ D)`` weight-gradient outer product. Both are nominal (a
one-hot input makes the forward cheaper); only the product methods' counts are exact for
their dominant term. Jacobian fills (``H``), reductions (QR/SVD of OK) and the optimizer are
not counted but are in the timed step.

Measurement: inputs are one-hot random vectors and random targets, pre-generated (a pool
cycled through); the first step compiles (never timed); the next one is timed alone and
checked against ``max_step_seconds`` (the combination is skipped if slower); after more
warm-up steps (at least one full update period, so TBPTT's backward pass is compiled too),
``samples`` samples of ``steps`` consecutive steps each are timed with
:func:`time.perf_counter_ns` with the garbage collector off; the median per-step time is
reported. Combinations whose estimated memory exceeds ``max_memory_gib`` are skipped before
anything is allocated (exact RTRL holds two ``B·S·a·P`` influence buffers). Everything runs
inside ``pinned_threads(threads)`` so Numba and both BLAS libraries use the same count.

The exponent of cost against n is fitted per method by least squares on log-log axes
(:func:`fit_exponent`); the sizes used are reported with it.
"""
# The package is split by job; every name of the former single module ``oknumba/profile.py``
# stays importable from here.
from .._argtypes import positive_float as _positive_float  # noqa: F401
from .._argtypes import positive_int as _positive_int  # noqa: F401
from .._threads import pinned_threads  # noqa: F401
from ..methods import method_info, parse_method_list, parse_method_spec, spec_forms  # noqa: F401
from .costs import (N_IN, N_OUT, _sizes, estimate_bytes, fit_exponent,  # noqa: F401
                    flops_per_step, product_columns)
from .timing import (_auto_reps, _effective_threads, _machine_info, _time_samples,  # noqa: F401
                     bare_product_us)
from .compile_timer import _COMPILE_SCRIPT, compile_time  # noqa: F401
from .report import _HEADER, _fmt, _format_row, format_profile, plot_profile, write_json  # noqa: F401
from .run import DEFAULT_HIDDEN, DEFAULT_METHODS, RESULT_KEYS, _profile_one, profile  # noqa: F401
from .cli import (_DESCRIPTION, _add_arguments, _int_list, _method_list,  # noqa: F401
                  add_profile_parser, build_parser, main, run_profile_cli)

__all__ = ["DEFAULT_HIDDEN", "DEFAULT_METHODS", "N_IN", "N_OUT", "RESULT_KEYS", "add_profile_parser",
           "bare_product_us", "build_parser", "compile_time", "estimate_bytes", "fit_exponent",
           "flops_per_step", "format_profile", "main", "parse_method_list", "parse_method_spec",
           "plot_profile", "product_columns", "profile", "run_profile_cli", "write_json"]
