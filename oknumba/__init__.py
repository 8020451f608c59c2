"""oknumba: online training of recurrent networks with real-time recurrent learning and the
Optimal Kronecker-Sum approximation (Benzing et al., ICML 2019), in NumPy + Numba.

Importing the package compiles nothing: kernels compile on first use (and are cached).
"""
import os

# Numba's parallel kernels run on OpenMP; spinning idle OpenMP threads steal the cores from
# BLAS (measured 2–4× slower steps on 2 cores). Passive waiting is the better default for a
# library that mixes both; set OMP_WAIT_POLICY yourself before importing to override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import checkpoint  # noqa: F401  (oknumba.checkpoint.save_checkpoint / load_checkpoint)
from .estimators import ok_min_variance, ok_reduce
from .functional import METHODS, predict, sequence_grad, sequence_loss, stream_loss
from .learner import OnlineLearner
from .model import RNN
from .model_io import load_model
from .noise import format_noise_table, measure_noise

__version__ = "0.1.0"

__all__ = ["RNN", "OnlineLearner", "load_model", "predict", "stream_loss", "ok_reduce", "ok_min_variance", "measure_noise", "format_noise_table", "sequence_loss", "sequence_grad", "METHODS", "__version__"]
