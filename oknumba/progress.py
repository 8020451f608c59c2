"""The progress display of ``oknumba train`` (a :class:`oknumba.training.Progress`).

On a terminal a tqdm bar: steps done, the *recent* rate and the ETA from it (tqdm's
exponential moving average, so a slow start or a busy spell does not skew the estimate for
long), and the live metric (copy: level and avg bits; char-LM: train/valid bits per char).
Elsewhere (a log file, a pipe) a plain line per metrics record, with its ETA from that
record's rate. The first step of a process compiles the kernels unless Numba's on-disk cache
already holds them; a notice says so before it, how long it took after, and that time is
kept out of the rate and the ETA.
"""
import math
import os
import sys
import time

from .training import Progress

#: a first step slower than this is reported as kernel compilation
COMPILE_NOTICE_S = 1.0


def hms(seconds):
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def metric_text(info):
    """The live metric: ``level 3  avg 0.412 bits`` (copy) or ``train 2.10 bpc  valid 2.05 bpc``."""
    parts = []
    if "level" in info:
        parts.append(f"level {info['level']}  avg {info['avg']:.3f} bits")
    if info.get("train_bpc") is not None:
        parts.append(f"train {info['train_bpc']:.3f} bpc")
    if info.get("valid_bpc") is not None:
        parts.append(f"valid {info['valid_bpc']:.3f} bpc")
    return "  ".join(parts)


class TerminalProgress(Progress):
    """A tqdm bar on a TTY; a plain line per metrics record otherwise (module docstring)."""

    def __init__(self, label, stream=None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.25 if self.tty else None
        self.label = label
        self.bar = None
        self.step = 0

    def start(self, step, total, info):
        self.step, self.total = step, total
        self._write(f"{self.label}: starting at step {step} of {total}; the first step compiles the"
                    " kernels unless they are cached (about a minute on 2 cores, once per setting)")

    def first_step(self, seconds):
        if seconds >= COMPILE_NOTICE_S:
            from ._jit import CACHE

            cached = "compiled and cached for later runs" if CACHE else "compiled; OKNUMBA_CACHE=0: not cached"
            self._write(f"{self.label}: kernels ready after {seconds:.1f} s ({cached}); the rate and ETA"
                        " leave this out")
        if self.tty:
            from tqdm import tqdm

            # a terminal that reports no width (some emulators, `script`) would get an empty bar
            try:
                sized = os.get_terminal_size(self.stream.fileno()).columns > 0
            except (AttributeError, OSError, ValueError):
                sized = False
            self.bar = tqdm(total=self.total, initial=self.step, desc=self.label, unit="step",
                            file=self.stream, dynamic_ncols=sized, ncols=None if sized else 100,
                            smoothing=0.05, mininterval=0.25,
                            bar_format="{desc}: {n}/{total} {bar} {rate_fmt}  ETA {remaining}{postfix}")

    def update(self, step, total, steps_per_s, info):
        self._advance(step)
        if self.bar is not None:
            text = metric_text(info)
            self.bar.set_postfix_str(text, refresh=False)

    def record(self, rec, total):
        self._advance(rec["step"])
        info = {k: rec.get(k) for k in ("level", "avg", "train_bpc", "valid_bpc") if rec.get(k) is not None}
        if self.bar is not None:
            self.bar.set_postfix_str(metric_text(info), refresh=True)
            if rec.get("valid_bpc") is not None:          # keep evaluation results on screen
                self.bar.write(f"{self.label}  step {rec['step']}/{total}  {metric_text(info)}", file=self.stream)
            return
        if self.tty:
            return                       # before the bar exists (the first step's record)
        rate = rec.get("steps_per_s")
        eta = (total - rec["step"]) / rate if rate else None
        self._write(f"{self.label}  step {rec['step']}/{total}  {'?' if rate is None else f'{rate:.0f}'}"
                    f" steps/s  {metric_text(info)}  ETA {hms(eta)}")

    def message(self, text):
        self._write(text)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _advance(self, step):
        if self.bar is not None and step > self.step:
            self.bar.update(step - self.step)
        self.step = max(self.step, step)

    def _write(self, text):
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()


__all__ = ["TerminalProgress", "hms", "metric_text", "COMPILE_NOTICE_S"]
