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


def comma_list(convert=None, choices=None):
    """A type taking one value or a comma-separated list of them (``"128,64"`` → ``[128, 64]``,
    ``"128"`` → ``128``): each item through ``convert`` (None: the text) and checked against
    ``choices`` (None: any)."""
    def parse(text):
        vals = []
        for tok in (t.strip() for t in text.split(",")):
            try:
                v = convert(tok) if convert else tok
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentTypeError(f"{e} (in {text!r})") from None
            if choices is not None and v not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice {tok!r} (choose from"
                                                 f" {', '.join(map(str, choices))})")
            vals.append(v)
        return vals if len(vals) > 1 else vals[0]
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse
