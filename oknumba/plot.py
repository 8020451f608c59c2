"""Learning curves of several runs in one PNG (``oknumba plot``). Needs matplotlib (the
optional extra ``oknumba[plot]``), imported only when a figure is drawn; :mod:`oknumba.report`
shares its figure helpers (:func:`import_pyplot`, :func:`save_figure`, :func:`_fmt_value`)."""
import json
import math
import os

from .run_folder import CONFIG_FILE, METRICS_FILE, read_metrics
from .tasks import TASKS


def auto_metric(task):
    """The metric ``metric="auto"`` plots for a task: its headline metric (the first of its
    ``metrics``), else the training loss."""
    cls = TASKS.get(task)
    return cls.metrics[0] if cls is not None and cls.metrics else "loss_bits"

_AXIS_LABELS = {"level": "length reached (level T̄)", "avg": "running avg CE (bits)",
                "loss_bits": "train loss (bits/step)", "train_bpc": "train bits/char",
                "valid_bpc": "valid bits/char", "steps_per_s": "steps/s", "step": "step",
                "wall_seconds": "wall time (s)"}


class PlotError(Exception):
    """A plot cannot be drawn; ``exit_code`` 1 for a missing matplotlib, 2 for bad input."""

    def __init__(self, msg, exit_code=2):
        super().__init__(msg)
        self.exit_code = exit_code


def _load(run_dir):
    cfg_path, m_path = os.path.join(run_dir, CONFIG_FILE), os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(m_path):
        raise PlotError(f"{run_dir} has no {METRICS_FILE}: is it an oknumba run folder?")
    cfg = {}
    if os.path.exists(cfg_path):
        try:
            with open(cfg_path) as f:
                cfg = json.load(f)
        except (OSError, ValueError) as e:
            raise PlotError(f"{cfg_path} is unreadable ({e})") from None
    return cfg, read_metrics(m_path)


def _labels(cfgs, dirs):
    """``method[:rank]``, plus the settings that tell apart runs that would share a label."""
    base = [c.get("method", os.path.basename(os.path.normpath(d))) + (f":{c['rank']}" if c.get("rank") else "")
            for c, d in zip(cfgs, dirs)]
    out = list(base)
    for lab in set(base):
        idx = [i for i, b in enumerate(base) if b == lab]
        if len(idx) < 2:
            continue
        keys = [k for k in ("task", "cell", "hidden", "batch", "lr", "dtype", "seed")
                if len({json.dumps(cfgs[i].get(k)) for i in idx}) > 1]
        for i in idx:
            extra = " ".join(_fmt_value(k, cfgs[i].get(k)) for k in keys)
            out[i] = f"{lab} {extra}" if extra else f"{lab} ({os.path.basename(os.path.normpath(dirs[i]))})"
    return out


def png_path(out):
    """The file a figure saved to ``out`` lands in: matplotlib adds ``.png`` to a name
    without an extension."""
    return out if os.path.splitext(out)[1] else out + ".png"


def _fmt_value(k, v):
    """Short legend text for a setting (``lr=10^-3.5``, ``lr=0.001``)."""
    if isinstance(v, float):
        e = math.log10(v) if v > 0 else None
        if e is not None and abs(e * 2 - round(e * 2)) < 1e-9 and v < 1e-2:
            return f"{k}=10^{round(e * 2) / 2:g}"
        return f"{k}={v:.3g}"
    return f"{k}={v}"


def import_pyplot(missing):
    """``matplotlib.pyplot`` on the Agg backend; raises the exception ``missing`` if there is no
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise missing from None
    return plt


def save_figure(fig, path, dpi, error):
    """Lay out ``fig``, save it to ``path`` and close it; a failed write raises
    ``error("cannot write PATH (...)")``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as e:
        raise error(f"cannot write {path} ({e})") from None
    finally:
        plt.close(fig)


def plot_runs(dirs, out, metric="auto", x="step", title=None):
    """Draw ``metric`` against ``x`` for each run folder in ``dirs`` into the PNG ``out``
    (``.png`` is added to a name without an extension: :func:`png_path`).

    Returns the list of line labels. Raises :class:`PlotError`.
    """
    out = png_path(out)
    plt = import_pyplot(PlotError("plotting needs matplotlib: pip install oknumba[plot]", exit_code=1))
    runs = [_load(d) for d in dirs]
    cfgs = [c for c, _ in runs]
    if metric == "auto":
        found = {auto_metric(c.get("task")) for c in cfgs}
        if len(found) > 1:
            raise PlotError(f"the runs are of different tasks; pass --metric (one of {sorted(found)} or loss_bits)")
        metric = found.pop()
    labels = _labels(cfgs, dirs)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = []
    for (cfg, recs), lab in zip(runs, labels):
        pts = [(r[x], r[metric]) for r in recs if r.get(x) is not None and r.get(metric) is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        style = "-" if len(pts) > 1 else "o"
        ax.plot(xs, ys, style, label=lab, drawstyle="steps-post" if metric == "level" else "default")
        drawn.append(lab)
    if not drawn:
        plt.close(fig)
        raise PlotError(f"no run has any {metric!r} values in its {METRICS_FILE}")
    ax.set_xlabel(_AXIS_LABELS.get(x, x))
    ax.set_ylabel(_AXIS_LABELS.get(metric, metric))
    tasks = sorted({c.get("task", "?") for c in cfgs})
    ax.set_title(title or f"{'/'.join(tasks)}: {metric}")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out, 110, PlotError)
    return drawn
