"""The report's markdown: one section per task and one for the noise results, their tables,
and :func:`write_report`, which writes ``report.md`` and its figures."""
import math
import os
from collections import defaultdict

from .. import __version__
from .._io import atomic_write
from .figures import _pyplot, noise_figure, task_figure
from .runs import (PAPER_METRIC, ReportError, _last, _status_text, _steps_text, collect, common_settings,
                   final_value, fmt_mean_sd, group_runs, headline_metric, mean_sd, paper_at, paper_curve,
                   paper_entry, paper_logs)

REPORT_FILE = "report.md"
NOISE_FIGURE = "noise.png"
SHORT = {"level": "level", "valid_bpc": "valid bits/char", "loss_bits": "train loss (bits)"}


def _md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def task_section(task, groups, figure):
    """The markdown lines of one task: figure and table of final values."""
    metric = headline_metric(task)
    lines = [f"## {task}", ""]
    desc = {"level": "the curriculum level reached (copy task; higher is better)",
            "valid_bpc": "validation bits per character (lower is better)"}.get(metric, metric)
    lines += [f"Metric: {desc}; also the training loss (bits per step). Curves: mean over seeds, band ± 1 sd,"
              " against steps (left) and wall-clock seconds (right; they include kernel compilation where a run's"
              " process found no cached kernels, and evaluations).", ""]
    common = common_settings(groups)
    if common:
        lines += [f"Settings shared by all rows: {common}.", ""]
    lines += [f"![{task}]({figure})", ""]
    header = ["setting", "n seeds", "steps", f"{SHORT.get(metric, metric)} (final)"]
    if metric != "loss_bits":
        header.append("train loss (bits, final)")
    header += ["wall s", "status"]
    rows = []
    for g in groups:
        runs = g.usable()
        row = [g.label, len(runs), _steps_text([_last(r, "steps") or _last(r, "step") for r in runs])]
        row.append(fmt_mean_sd(*mean_sd([final_value(r, metric) for r in runs])[:2], 1 if metric == "level" else None))
        if metric != "loss_bits":
            row.append(fmt_mean_sd(*mean_sd([final_value(r, "loss_bits") for r in runs])[:2]))
        row.append(fmt_mean_sd(*mean_sd([_last(r, "wall_seconds") for r in runs])[:2]))
        row.append(_status_text(g.runs))
        rows.append(row)
        entry = paper_entry(g.config)
        if entry is not None and PAPER_METRIC[entry][1] == metric:
            our = max((_last(r, "steps") or 0 for r in runs), default=0)
            psteps, _, _, pns = paper_curve(entry)
            last_all = max(s for s, n in zip(psteps, pns) if n == max(pns))   # the last step all seeds logged
            for at in sorted({our, last_all}):
                step, m, sd, n = paper_at(entry, at)
                pr = [f"authors' logs ({g.label})", n, step, fmt_mean_sd(m, sd, 1 if metric == "level" else None)]
                pr += [""] * (len(header) - len(pr))
                if pr not in rows:
                    rows.append(pr)
    lines += _md_table(header, rows) + [""]
    if any(paper_entry(g.config) for g in groups):
        lines += ["Authors' logs: " + paper_logs()["source"] + "; their curves are overlaid up to the last step"
                  " run here (their first logged step is 10,000).", ""]
    return lines


def noise_rows(noise):
    """One row per (setting, method, n) of the noise documents (duplicates averaged)."""
    acc = defaultdict(list)
    for path, doc in noise:
        st = doc["settings"]
        setting = " ".join(f"{k}={st[k]}" for k in ("cell", "steps", "batch", "inputs", "init_scale", "seeds", "dtype")
                           if k in st)
        for method, res in doc["results"].items():
            acc[(setting, method, st.get("hidden"))].append(res["summary"])
    rows = []
    for (setting, method, n), summaries in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        row = {"setting": setting, "method": method, "n": n}
        for k in ("influence_last", "influence", "gradient", "cosine"):
            vals = [s.get(k) for s in summaries if isinstance(s.get(k), (int, float))]
            row[k] = sum(vals) / len(vals) if vals else math.nan
        rows.append(row)
    return rows


def noise_section(noise, figure):
    rows = noise_rows(noise)
    lines = ["## Noise against exact RTRL", "",
             "From `oknumba noise --json` results: per method and hidden size n, the relative error"
             " E‖G̃ − G‖²/‖G‖² of the influence matrix (at the last step, and the mean over steps) and of the"
             " loss gradient, and the cosine between estimated and exact gradient (frozen weights, averaged over"
             " estimator seeds).", "", f"![noise]({figure})", ""]
    settings = sorted({r["setting"] for r in rows})
    for s in settings:
        if len(settings) > 1:
            lines += [f"Setting: {s}", ""]
        elif s:
            lines += [f"Setting: {s}.", ""]
        body = [[r["method"], r["n"], f"{r['influence_last']:.3e}", f"{r['influence']:.3e}", f"{r['gradient']:.3e}",
                 f"{r['cosine']:.4f}"] for r in rows if r["setting"] == s]
        lines += _md_table(["method", "n", "infl. err (last)", "infl. err (mean)", "grad. err", "cosine"], body) + [""]
    return lines, rows


def write_report(paths, out_dir, title=None):
    """Write ``out_dir/report.md`` and its figures from ``paths`` (:mod:`oknumba.report`).

    Returns ``{"report": path, "figures": [...], "runs": n, "noise": n, "skipped": [...]}``.
    Raises :class:`ReportError`.
    """
    runs, noise, skipped = collect(paths)
    if not runs and not noise:
        raise ReportError(f"found no run folders or noise results in {', '.join(paths)}")
    _pyplot()
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create {out_dir} ({e.strerror or e})") from None
    lines = [f"# {title or 'oknumba report'}", "",
             f"Written by oknumba {__version__} `report` from {len(runs)} run folder{'s' * (len(runs) != 1)}"
             f" and {len(noise)} noise result{'s' * (len(noise) != 1)} ({', '.join(f'`{p}`' for p in paths)}). Values"
             " are mean ± sd over seeds (sample sd), n = number of seeds; diverged runs are left out of the"
             " numbers and counted under status.", ""]
    figures = []
    for task, groups in group_runs(runs).items():
        fig = f"{task}.png"
        task_figure(task, groups, os.path.join(out_dir, fig))
        figures.append(fig)
        lines += task_section(task, groups, fig)
    if noise:
        section, rows = noise_section(noise, NOISE_FIGURE)
        noise_figure(rows, os.path.join(out_dir, NOISE_FIGURE))
        figures.append(NOISE_FIGURE)
        lines += section
    if skipped:
        lines += ["## Skipped inputs", ""] + [f"* {s}" for s in skipped] + [""]
    path = os.path.join(out_dir, REPORT_FILE)
    atomic_write(path, lambda f: f.write("\n".join(lines)))
    return {"report": path, "figures": [os.path.join(out_dir, f) for f in figures], "runs": len(runs),
            "noise": len(noise), "skipped": skipped}
