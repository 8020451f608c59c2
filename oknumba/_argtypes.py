"""``argparse`` value types shared by the command-line modules (:mod:`oknumba.cli`,
:mod:`oknumba.profile`): each raises ``ArgumentTypeError`` with the expected form."""
import argparse
import math


def _int_at_least(text, minimum):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {v}")
    return v


def positive_int(text):
    return _int_at_least(text, 1)


def nonneg_int(text):
    return _int_at_least(text, 0)


def positive_float(text):
    try:
        v = float(eval_number(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def eval_number(text):
    """``"3e-3"``, ``"0.001"`` or ``"10^-3.5"`` / ``"10**-3.5"`` as a float."""
    t = text.strip().replace("**", "^")
    if t.startswith("10^"):
        return 10.0 ** float(t[3:])
    return float(t)
