"""The report's numbers: recorded runs and noise results read from disk (:func:`collect`), the
authors' logs (:func:`paper_logs`, :func:`paper_entry`), runs grouped by setting
(:func:`group_runs`) and their statistics (:func:`mean_sd`, :func:`final_value`, :func:`curve`)."""
import json
import math
import os
from collections import defaultdict

from ..plot import _fmt_value
from ..run_folder import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, read_metrics
from ..tasks import TASKS
from ..training import COMMON_IDENTITY_KEYS

#: the authors' settings (``paper_logs.json`` entry → settings a group must have; lr compared in log10)
PAPER_SETTINGS = {
    "copy": {"task": "copy", "cell": "rhn", "hidden": 128, "method": "ok", "rank": 16, "batch": 16,
             "dtype": "float32", "lr": 10 ** -3.5, "optimizer": "adam", "clip": 1.0},
    "ptb": {"task": "charlm", "cell": "rhn", "hidden": 256, "method": "ok", "rank": 8, "batch": 32,
            "dtype": "float32", "lr": 10 ** -3.5, "optimizer": "adam", "clip": 1.0, "reset_every": 100},
}
#: the metric of the authors' logs for each entry: (their key, ours)
PAPER_METRIC = {"copy": ("level", "level"), "ptb": ("val_bpc", "valid_bpc")}


class ReportError(Exception):
    """A report cannot be written; ``exit_code`` 1 for a missing matplotlib, 2 for bad input."""

    def __init__(self, msg, exit_code=2):
        super().__init__(msg)
        self.exit_code = exit_code


class Run:
    """One recorded run: its folder, ``config``, ``metrics`` (records) and ``summary`` (or {})."""

    def __init__(self, path, config, metrics, summary):
        self.path, self.config, self.metrics, self.summary = path, config, metrics, summary

    @property
    def task(self):
        return self.config.get("task", "?")

    @property
    def status(self):
        return self.summary.get("status", "unfinished")


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def is_noise_doc(doc):
    """Whether ``doc`` is an ``oknumba noise --json`` document."""
    return (isinstance(doc, dict) and isinstance(doc.get("settings"), dict) and isinstance(doc.get("results"), dict)
            and all(isinstance(r, dict) and isinstance(r.get("summary"), dict) for r in doc["results"].values()))


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _load_run(path):
    config = _read_json(os.path.join(path, CONFIG_FILE))
    if not isinstance(config, dict) or "task" not in config:
        return None, f"{path}: {CONFIG_FILE} is unreadable or not a run config"
    try:
        metrics = [r for r in read_metrics(os.path.join(path, METRICS_FILE)) if isinstance(r, dict)]
    except OSError as e:
        return None, f"{path}: {METRICS_FILE} is unreadable ({e})"
    summary = _read_json(os.path.join(path, SUMMARY_FILE))
    return Run(path, config, metrics, summary if isinstance(summary, dict) else {}), None


def _is_run_folder(path):
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(os.path.join(path, METRICS_FILE))


def collect(paths):
    """``(runs, noise, skipped)`` from run folders, folders holding them and noise JSON files:
    ``noise`` is a list of ``(path, doc)``, ``skipped`` lines naming unreadable inputs."""
    runs, noise, skipped, seen = [], [], [], set()

    def add_run(path):
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        run, why = _load_run(path)
        if run is None:
            skipped.append(why)
        else:
            runs.append(run)

    def add_json(path, explicit):
        doc = _read_json(path)
        if is_noise_doc(doc):
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                noise.append((path, doc))
        elif explicit:
            raise ReportError(f"{path} is not an oknumba noise --json file")

    for p in paths:
        if os.path.isfile(p):
            add_json(p, explicit=True)
        elif _is_run_folder(p):
            add_run(p)
        elif os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                if _is_run_folder(root):
                    add_run(root)
                    dirs[:] = []
                    continue
                for name in sorted(files):
                    if name.endswith(".json"):
                        add_json(os.path.join(root, name), explicit=False)
        else:
            raise ReportError(f"{p} does not exist")
    return runs, noise, skipped


def paper_logs():
    """The authors' logged curves (``oknumba/data/paper_logs.json``)."""
    from importlib import resources

    return json.loads(resources.files("oknumba").joinpath("data", "paper_logs.json").read_text())


def paper_entry(config):
    """The ``paper_logs.json`` entry (``"copy"`` / ``"ptb"``) whose setting ``config`` has, or None.
    The char-LM entry also needs a training file named like PTB's (``ptb*``)."""
    for entry, want in PAPER_SETTINGS.items():
        ok = True
        for k, v in want.items():
            got = config.get(k)
            if k == "lr":
                ok = isinstance(got, (int, float)) and got > 0 and abs(math.log10(got) - math.log10(v)) < 1e-6
            elif isinstance(v, float):
                ok = isinstance(got, (int, float)) and math.isclose(got, v)
            else:
                ok = got == v
            if not ok:
                break
        if ok and entry == "ptb":
            ok = os.path.basename(str(config.get("train") or "")).lower().startswith("ptb")
        if ok:
            return entry
    return None


# ------------------------------------------------------------------------------------------------
# grouping and numbers
# ------------------------------------------------------------------------------------------------
def _identity(task):
    cls = TASKS.get(task)
    return list(COMMON_IDENTITY_KEYS) + (list(cls.identity_keys) + list(cls.path_keys) if cls else [])


def headline_metric(task):
    """The metric a task's figure and table lead with (its first ``metrics`` entry)."""
    cls = TASKS.get(task)
    return cls.metrics[0] if cls is not None and cls.metrics else "loss_bits"


class Group:
    """The runs of one setting (all identity settings but the seed); ``label``: its legend text."""

    def __init__(self, key, runs):
        self.key, self.runs = key, runs
        self.config = runs[0].config
        self.label = method_label(self.config)

    @property
    def seeds(self):
        return sorted({r.config.get("seed") for r in self.runs}, key=str)

    def usable(self):
        return [r for r in self.runs if r.status != "diverged"]


def method_label(cfg):
    m = cfg.get("method", "?")
    p = cfg.get("rank") if cfg.get("rank") is not None else cfg.get("truncation")
    return m if p is None else f"{m}:{p}"


def group_runs(runs):
    """``{task: [Group, ...]}``, tasks and groups in a stable order; labels name the settings
    that tell groups of a task apart, and ``common`` the settings shared by all."""
    by_task = defaultdict(list)
    for r in runs:
        by_task[r.task].append(r)
    out = {}
    for task in sorted(by_task):
        # runs of other lengths are other groups: a mean over 100k- and 800k-step runs means nothing
        keys = [k for k in _identity(task) if k not in ("seed", "task")] + ["steps"]
        groups = defaultdict(list)
        for r in by_task[task]:
            groups[json.dumps([r.config.get(k) for k in keys])].append(r)
        gl = [Group(k, sorted(v, key=lambda r: (str(r.config.get("seed")), r.path))) for k, v in groups.items()]
        differing = [k for k in keys if k not in ("method", "rank", "truncation")
                     and len({json.dumps(g.config.get(k)) for g in gl}) > 1]
        for g in gl:
            extra = " ".join(_setting_text(k, g.config.get(k)) for k in differing)
            g.label = f"{g.label} {extra}" if extra else g.label
        order = {m: i for i, m in enumerate(["ok", "ok-truncated", "kf", "kf-avg", "uoro", "rtrl", "tbptt"])}
        gl.sort(key=lambda g: (order.get(g.config.get("method"), 99), g.config.get("rank") or 0,
                               g.config.get("truncation") or 0, g.label))
        out[task] = gl
    return out


def _setting_text(k, v):
    if isinstance(v, str) and os.sep in v:
        v = os.path.basename(v)
    return _fmt_value(k, v)


def common_settings(groups):
    """``key value`` text of the identity settings equal in every group (and not the method's)."""
    task = groups[0].config.get("task")
    keys = [k for k in _identity(task) if k not in ("seed", "task", "method", "rank", "truncation")]
    out = []
    for k in keys:
        vals = {json.dumps(g.config.get(k)) for g in groups}
        if len(vals) == 1 and groups[0].config.get(k) is not None:
            out.append(_setting_text(k, groups[0].config.get(k)))
    return ", ".join(out)


def final_value(run, metric):
    """The run's last value of ``metric``: from ``summary.json`` if there (``final_loss_bits``
    for the loss), else its last metrics record with one."""
    key = "final_loss_bits" if metric == "loss_bits" else metric
    v = run.summary.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    for rec in reversed(run.metrics):
        v = rec.get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _last(run, key):
    v = run.summary.get(key)
    if v is None and run.metrics:
        v = run.metrics[-1].get(key)
    return v


def mean_sd(values):
    """``(mean, sd, n)`` of the finite values (sample sd; None for n < 2)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    if not n:
        return None, None, 0
    m = sum(vals) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return m, sd, n


def fmt_mean_sd(m, sd, decimals=None):
    """``m ± sd`` with ``decimals`` (default: 3 below 10, 1 below 100, else 0); ``—`` for none."""
    if m is None:
        return "—"
    if decimals is None:
        decimals = 3 if abs(m) < 10 else 1 if abs(m) < 100 else 0
    f = f"{{:.{decimals}f}}" if m == 0 or abs(m) >= 10 ** -decimals else "{:.2e}"
    return f.format(m) + ("" if sd is None else " ± " + f.format(sd))


def _steps_text(values):
    vals = sorted({int(v) for v in values if isinstance(v, (int, float))})
    if not vals:
        return "—"
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]}–{vals[-1]}"


def curve(runs, metric):
    """Mean curve over runs: ``(steps, walls, means, sds)`` at every logged step of ``metric``
    (mean over the runs that logged it; walls: their mean wall-clock seconds there)."""
    vals, walls = defaultdict(list), defaultdict(list)
    for r in runs:
        for rec in r.metrics:
            s, v = rec.get("step"), rec.get(metric)
            if isinstance(s, (int, float)) and isinstance(v, (int, float)) and math.isfinite(v):
                vals[s].append(float(v))
                w = rec.get("wall_seconds")
                if isinstance(w, (int, float)):
                    walls[s].append(float(w))
    steps = sorted(vals)
    means, sds, ws = [], [], []
    for s in steps:
        m, sd, _ = mean_sd(vals[s])
        means.append(m)
        sds.append(sd or 0.0)
        ws.append(sum(walls[s]) / len(walls[s]) if walls[s] else math.nan)
    return steps, ws, means, sds


def paper_curve(entry):
    """The authors' curve of ``entry``: ``(steps, means, sds, ns)`` over their seeds."""
    doc = paper_logs()[entry]
    key = PAPER_METRIC[entry][0]
    vals = defaultdict(list)
    for s in doc["seeds"]:
        for step, v in zip(s["steps"], s[key]):
            vals[step].append(float(v))
    steps = sorted(vals)
    stats = [mean_sd(vals[s]) for s in steps]
    return steps, [m for m, _, _ in stats], [sd or 0.0 for _, sd, _ in stats], [n for _, _, n in stats]


def paper_at(entry, step):
    """The authors' ``(step, mean, sd, n)`` at the last logged step <= ``step`` (their first
    logged step if ``step`` is before it)."""
    steps, means, sds, ns = paper_curve(entry)
    i = max([j for j, s in enumerate(steps) if s <= step], default=0)
    return steps[i], means[i], sds[i] or None, ns[i]


def _status_text(runs):
    counts = defaultdict(int)
    for r in runs:
        counts[r.status] += 1
    if set(counts) == {"complete"}:
        return "complete"
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

