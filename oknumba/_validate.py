"""Input checks shared by the public API. Each raises with a message naming the argument."""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype, name="dtype"):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_finite(arr, name):
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)});"
                         " clean the input or lower the learning rate")


def as_float_array(arr, name, shape, dtype):
    """Return ``arr`` as a C-contiguous array of ``dtype`` with the given shape.

    ``shape`` entries that are ``None`` are free. Integer or boolean input is refused (a
    common mistake is passing token ids where one-hot inputs are expected).
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {a.dtype}"
                        " (one-hot encode token ids first)")
    check_shape(a, name, shape)
    a = np.ascontiguousarray(a, dtype=dtype)
    check_finite(a, name)
    return a


def check_shape(a, name, shape):
    ok = a.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, a.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")


def as_targets(ys, name, shape, n_out):
    y = np.asarray(ys)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class ids (-1 = no target), got dtype {y.dtype}")
    check_shape(y, name, shape)
    if y.size and (y.min() < -1 or y.max() >= n_out):
        raise ValueError(f"{name} must hold class ids in [0, {n_out - 1}] or -1 for 'no target';"
                         f" found values in [{y.min()}, {y.max()}]")
    return np.ascontiguousarray(y, dtype=np.int64)


def as_resets(resets, name, shape):
    if resets is None:
        return np.zeros(shape, dtype=np.bool_)
    r = np.asarray(resets)
    if r.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array, got dtype {r.dtype}")
    check_shape(r, name, shape)
    return np.ascontiguousarray(r)
