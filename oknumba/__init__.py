"""oknumba: online training of recurrent networks with real-time recurrent learning and the
Optimal Kronecker-Sum approximation (Benzing et al., ICML 2019), in NumPy + Numba.

Importing the package compiles nothing: kernels compile on first use (and are cached).
"""
from .functional import METHODS, sequence_grad, sequence_loss
from .model import RNN

__version__ = "0.1.0"

__all__ = ["RNN", "sequence_loss", "sequence_grad", "METHODS", "__version__"]
