"""The report's matplotlib figures: a task's curves (:func:`task_figure`) and the noise
against n (:func:`noise_figure`)."""
from collections import defaultdict

from ..plot import import_pyplot, save_figure
from .runs import PAPER_METRIC, ReportError, curve, headline_metric, method_label, paper_curve, paper_entry

LABELS = {"level": "level reached (curriculum T̄; higher is better)",
          "valid_bpc": "validation bits/char (lower is better)",
          "loss_bits": "training loss (bits/step)", "step": "step", "wall_seconds": "wall-clock seconds"}


def _pyplot():
    return import_pyplot(ReportError("the report's figures need matplotlib: pip install oknumba[plot]",
                                     exit_code=1))


def task_figure(task, groups, path):
    """``path``: the task's metric and training loss against steps and wall-clock seconds."""
    plt = _pyplot()
    metrics = [headline_metric(task)] + (["loss_bits"] if headline_metric(task) != "loss_bits" else [])
    fig, axes = plt.subplots(len(metrics), 2, figsize=(12, 4.2 * len(metrics)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, metric in enumerate(metrics):
        for j, x in enumerate(("step", "wall_seconds")):
            ax = axes[i][j]
            drawn = 0
            for gi, g in enumerate(groups):
                steps, walls, means, sds = curve(g.usable(), metric)
                if not steps:
                    continue
                xs = steps if x == "step" else walls
                c = colors[gi % len(colors)]
                n = len(g.usable())
                style = dict(drawstyle="steps-post") if metric == "level" else {}
                ax.plot(xs, means, "-" if len(xs) > 1 else "o", color=c, label=f"{g.label} (n={n})", **style)
                if n > 1:
                    lo = [m - s for m, s in zip(means, sds)]
                    hi = [m + s for m, s in zip(means, sds)]
                    ax.fill_between(xs, lo, hi, color=c, alpha=0.2, step="post" if metric == "level" else None)
                drawn += 1
            if x == "step":
                _overlay_paper(ax, groups, metric)
            ax.set_xlabel(LABELS.get(x, x))
            ax.set_ylabel(LABELS.get(metric, metric))
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, f"no {metric} values", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"{task}: mean over seeds, band ± 1 sd")
    save_figure(fig, path, 100, ReportError)


def _overlay_paper(ax, groups, metric):
    done = set()
    for g in groups:
        entry = paper_entry(g.config)
        if entry is None or entry in done or PAPER_METRIC[entry][1] != metric:
            continue
        done.add(entry)
        top = max((s for r in g.usable() for s in [rec.get("step") for rec in r.metrics] if isinstance(s, int)),
                  default=0)
        steps, means, sds, ns = paper_curve(entry)
        keep = [i for i, s in enumerate(steps) if s <= top]
        if not keep:
            continue
        xs = [steps[i] for i in keep]
        m = [means[i] for i in keep]
        sd = [sds[i] for i in keep]
        post = metric == "level"
        ax.plot(xs, m, "--", color="black", label=f"authors' logs ({method_label(g.config)}, n={max(ns)})",
                drawstyle="steps-post" if post else "default")
        ax.fill_between(xs, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)], color="grey", alpha=0.2,
                        step="post" if post else None)


def noise_figure(rows, path):
    """``path``: influence error, gradient error and cosine against n, one line per method."""
    plt = _pyplot()
    panels = [("influence", "relative influence error E‖G̃−G‖²/‖G‖² (mean over steps)", True),
              ("gradient", "relative gradient error (mean over steps)", True),
              ("cosine", "cosine to the exact gradient", False)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    lines = defaultdict(list)
    for r in rows:
        lines[(r["setting"], r["method"])].append(r)
    many = len({r["setting"] for r in rows}) > 1
    for ax, (key, label, log) in zip(axes, panels):
        for (setting, method), rs in sorted(lines.items()):
            rs = sorted(rs, key=lambda r: r["n"])
            ax.plot([r["n"] for r in rs], [r[key] for r in rs], "o-", label=f"{method} ({setting})" if many else method)
        ns = sorted({r["n"] for r in rows if isinstance(r["n"], (int, float)) and r["n"] > 0})
        if len(ns) > 1:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ns, [str(n) for n in ns])
            ax.minorticks_off()
        ax.set_xlabel("hidden units n")
        ax.set_ylabel(label, fontsize=9)
        if log and all(r[key] > 0 for r in rows):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("estimator noise against exact RTRL")
    save_figure(fig, path, 100, ReportError)

