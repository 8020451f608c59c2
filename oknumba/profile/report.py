"""Output of :mod:`oknumba.profile`: the printed table, the JSON file and the PNG plot."""
import json


# --------------------------------------------------------------------------------------
# output
def _fmt(v, spec):
    if v is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width) if width.isdigit() else 0)
    return format(v, spec)


_HEADER = (f"{'method':<16}{'n':>6}{'µs/step':>13}{'GFLOP/s':>10}{'bare µs':>12}"
           f"{'bare GF/s':>11}{'ratio':>8}")


def _format_row(r):
    if r["status"] != "ok":
        return f"{r['method']:<16}{r['n']:>6}  skipped: {r['reason']}"
    return (f"{r['method']:<16}{r['n']:>6}{_fmt(r['us_per_step'], '13.1f')}{_fmt(r['gflops'], '10.2f')}"
            f"{_fmt(r['bare_us'], '12.1f')}{_fmt(r['bare_gflops'], '11.2f')}{_fmt(r['ratio'], '8.2f')}")


def format_profile(result, table=True):
    """The printed report: table (``table=False``: the settings line only, for a terminal
    that already shows the rows live), fitted exponents, compile times and notes."""
    c, m = result["config"], result["machine"]
    blas = m['threads']['blas']
    blas_txt = [t[2] for t in blas] if isinstance(blas, list) else blas
    load_start = _fmt((m.get('loadavg_start') or [None])[0], '.2f')
    load_end = _fmt((m.get('loadavg_end') or [None])[0], '.2f')
    cpu = (m.get("cpu") or {}).get("describe")
    lines = [f"cell={c['cell']} batch={c['batch']} dtype={c['dtype']} threads={c['threads']}"
             f" (numba {m['threads']['numba']}, blas {blas_txt})"
             f" samples={c['samples']} cpus={m.get('cpu_count')}"
             f" load={load_start}->{load_end}",
             _HEADER]
    if cpu:
        lines.insert(0, f"cpu: {cpu}")
    if table:
        lines += [_format_row(r) for r in result["results"]]
    else:
        lines.pop()                                  # the header too: the rows are on screen
    from .breakdown import format_breakdown

    lines += format_breakdown(result["results"])
    lines.append("")
    lines.append("fitted exponent of µs/step ~ n^e (least squares on log-log):")
    for label, fit in result["exponents"].items():
        bare = result["bare_exponents"].get(label)
        bare_txt = f"   bare product e = {bare['exponent']:.2f}" if bare else ""
        if fit is None:
            lines.append(f"  {label:<16}too few sizes")
        else:
            lines.append(f"  {label:<16}e = {fit['exponent']:.2f}"
                         f"  (n = {', '.join(map(str, fit['sizes']))}){bare_txt}")
    if result.get("compile"):
        for key, ci in result["compile"].items():
            lines.append(f"compile ({key}, {ci['config']}): import {ci['import_s']:.2f} s, first step"
                         f" {ci['first_step_s']:.2f} s, second step {ci['second_step_s'] * 1e3:.1f} ms,"
                         f" process {ci['wall_s']:.2f} s")
    lines += [f"note: {t}" for t in result["notes"]]
    return "\n".join(lines)


def write_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def plot_profile(result, path):
    """Log-log PNG of µs/step (solid) and bare product µs (dashed) against n. Returns False
    (and writes nothing) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    c = result["config"]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for label in result["exponents"]:
        rows = [r for r in result["results"] if r["method"] == label and r["status"] == "ok"]
        if not rows:
            continue
        fit = result["exponents"][label]
        lbl = label + (f" (n^{fit['exponent']:.2f})" if fit else "")
        line, = ax.loglog([r["n"] for r in rows], [r["us_per_step"] for r in rows], "o-", label=lbl)
        bare = [r for r in rows if r["bare_us"] is not None]
        if bare:
            ax.loglog([r["n"] for r in bare], [r["bare_us"] for r in bare], "--", color=line.get_color(),
                      alpha=0.6)
    sizes = sorted({r["n"] for r in result["results"] if r["status"] == "ok"})
    if sizes:
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xticks([], minor=True)
    ax.set_xlabel("hidden units n")
    ax.set_ylabel("µs per step")
    ax.set_title(f"{c['cell']}, batch {c['batch']}, {c['dtype']}, threads {c['threads']}"
                 " (dashed: bare product)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
