"""The grid of a sweep: seeds, spec files, presets, their expansion into run configs and the
run folders' names (the formats: :mod:`oknumba.sweep`)."""
import itertools
import json
import os
import re

from .. import runner
from ..methods import METHODS, parse_method_spec
from ..run_folder import RunError
from ..tasks import TASKS
from .errors import SweepError

#: a folder holding ptb.char.train.txt[.gz] and ptb.char.valid.txt[.gz], for the presets' char-LM runs
PTB_ENV = "OKNUMBA_PTB_DIR"
#: grid keys besides the tasks' settings
GRID_KEYS = ("task", "methods", "seeds")

_PAPER = dict(cell="rhn", optimizer="adam", clip=1.0, dtype="float32", lr=10 ** -3.5)
#: built-in grids (``--preset``), in the spec format. ``paper-copy`` / ``paper-ptb``: the settings of
#: the authors' released runs; ``small``: the paper's comparisons at reduced size on two cores.
PRESETS = {
    "paper-copy": {
        "description": "the authors' copy-task runs: RHN n=128, 16-OK, B=16, float32, lr 10^-3.5, 2M steps",
        "grid": [dict(_PAPER, task="copy", hidden=128, methods=["ok:16"], batch=16, steps=2_000_000,
                      seeds="0-4")]},
    "paper-ptb": {
        "description": "the authors' PTB char-LM runs: RHN n=256, 8-OK, B=32, float32, lr 10^-3.5, 1M steps",
        "grid": [dict(_PAPER, task="charlm", hidden=256, methods=["ok:8"], batch=32, steps=1_000_000,
                      reset_every=100, eval_every=10000, seeds="0-4", _corpus="ptb")]},
    "small": {
        "description": "the paper's comparisons at reduced size (about 25-30 min on 2 cores): copy at n=32"
                       " and PTB char-LM at n=64, ok/kf/uoro/tbptt at two truncations, 3 seeds",
        "seeds": "0-2", "lr": 3e-3, "checkpoint_every": 10000,
        "grid": [dict(task="charlm", hidden=64, batch=16, steps=30000, eval_every=2000, eval_chars=20000,
                      log_every=1000, methods=["ok:8", "kf", "uoro", "tbptt:5", "tbptt:25"], _corpus="ptb"),
                 dict(task="copy", hidden=32, batch=8, steps=100000,
                      methods=["ok:8", "kf", "uoro", "tbptt:4", "tbptt:16"])]},
}


def parse_seeds(value):
    """``"0-2"`` → ``[0, 1, 2]``; ``"0,3,7-9"``; an int; a list of ints or such strings.
    Raises :class:`SweepError` (negative, reversed, repeated or malformed)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    seeds = []
    for item in items:
        if isinstance(item, bool):
            raise SweepError(f"bad seeds {value!r}: expected e.g. 0-2 or 0,3,5")
        if isinstance(item, int):
            parts = [item]
        elif isinstance(item, str):
            parts = []
            for tok in item.split(","):
                tok = tok.strip()
                m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", tok)
                if not m:
                    raise SweepError(f"bad seeds {value!r}: expected e.g. 0-2 or 0,3,5 (non-negative integers)")
                lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                if hi < lo:
                    raise SweepError(f"bad seeds {value!r}: the range {tok} is reversed")
                parts.extend(range(lo, hi + 1))
        else:
            raise SweepError(f"bad seeds {value!r}: expected e.g. 0-2 or 0,3,5")
        for s in parts:
            if s < 0:
                raise SweepError(f"bad seeds {value!r}: seeds are integers >= 0")
            if s in seeds:
                raise SweepError(f"bad seeds {value!r}: seed {s} is given twice")
            seeds.append(s)
    if not seeds:
        raise SweepError(f"bad seeds {value!r}: no seed given")
    return seeds


def load_spec(path):
    """The spec document in the TOML or JSON file ``path`` (:class:`SweepError` if unusable)."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SweepError(f"cannot read the spec file {path}: {e.strerror or e}") from None
    if ext == ".toml":
        try:
            import tomllib
        except ImportError:                      # Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise SweepError("TOML spec files need Python >= 3.11 (or pip install tomli);"
                                 " write the spec as JSON instead") from None
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SweepError(f"the spec file {path} is not valid TOML ({e})") from None
    elif ext == ".json":
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise SweepError(f"the spec file {path} is not valid JSON ({e})") from None
    else:
        raise SweepError(f"the spec file {path} must end in .toml or .json")
    if not isinstance(doc, dict):
        raise SweepError(f"the spec file {path} must hold a table (a JSON object) of settings")
    return doc


def _norm_keys(d, where):
    if not isinstance(d, dict):
        raise SweepError(f"{where} must be a table of settings, got {d!r}")
    return {str(k).replace("-", "_"): v for k, v in d.items()}


def _task_keys(task):
    return set(runner.DEFAULTS[task]) - {"task"}


def _ptb_paths(where):
    folder = os.environ.get(PTB_ENV)
    if folder:
        found = {}
        for split in ("train", "valid"):
            for name in (f"ptb.char.{split}.txt", f"ptb.char.{split}.txt.gz"):
                if os.path.isfile(os.path.join(folder, name)):
                    found[split] = os.path.join(folder, name)
                    break
        if len(found) == 2:
            return found
        raise SweepError(f"{PTB_ENV}={folder} does not hold ptb.char.train.txt[.gz] and ptb.char.valid.txt[.gz]")
    raise SweepError(f"{where}'s charlm runs need the PTB character files: give --train PATH --valid PATH,"
                     f" or set {PTB_ENV}=FOLDER holding ptb.char.train.txt[.gz] and ptb.char.valid.txt[.gz]"
                     " (or sweep only its copy runs: oknumba sweep copy ...)")


def _method_settings(spec, settings, task, where):
    """A method spec (``ok:8``, ``kf``, bare ``ok`` / ``tbptt`` taking ``rank`` / ``truncation``
    from the settings) → ``{"method", "rank", "truncation"}``."""
    from ..learner import LEARNER_METHODS

    text = str(spec).strip()
    name, sep, _ = text.partition(":")
    name = name.strip().lower()
    info = METHODS.get(name)
    if info is not None and not sep and info.param in ("rank", "truncation"):
        value = settings.get(info.param)
        if value is None and info.param == "rank":
            value = runner.DEFAULTS[task]["rank"]
        if value is None:
            raise SweepError(f"{where}: method {name} needs its {info.param}: write e.g. {name}:20 in --methods")
        text = f"{name}:{value}"
    try:
        _, method, kwargs = parse_method_spec(text)
    except ValueError as e:
        raise SweepError(f"{where}: {e}") from None
    if method not in LEARNER_METHODS:
        raise SweepError(f"{where}: method {method!r} cannot train online; use one of {list(LEARNER_METHODS)}")
    return {"method": method, "rank": kwargs.get("rank"), "truncation": kwargs.get("truncation")}


def _methods_list(value, where):
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        items = [s.strip() for s in value if s.strip()]
    else:
        raise SweepError(f"{where}: methods must be a list or a comma-separated string like 'ok:8,kf', got {value!r}")
    if not items:
        raise SweepError(f"{where}: methods names no method")
    return items


def expand_grid(spec, overrides=None, task=None, base_dir=None, where="the grid"):
    """The runs of a grid: a list of ``(name, config)`` (configs from :func:`oknumba.runner.make_config`).

    ``spec``: the spec document (:mod:`oknumba.sweep`); ``overrides``: settings from the command
    line (above the spec's); ``task``: keep only that task's entries; ``base_dir``: relative
    data paths of the spec are taken relative to it. Raises :class:`SweepError`.
    """
    spec = _norm_keys(spec, where)
    overrides = _norm_keys(overrides or {}, "the options")
    entries = spec.pop("grid", None)
    spec.pop("description", None)
    spec.pop("out", None)
    if entries is None:
        entries = [{}]
    if not isinstance(entries, list) or not entries:
        raise SweepError(f"{where}: grid must be a non-empty list of tables")
    blocks = []
    for i, entry in enumerate(entries):
        w = f"{where}, grid entry {i + 1}" if len(entries) > 1 else where
        entry = _norm_keys(entry, w)
        t = entry.get("task", spec.get("task", task))
        if t is None:
            raise SweepError(f"{w} names no task: give the task (one of {list(TASKS)})")
        if t not in TASKS:
            raise SweepError(f"{w}: task must be one of {list(TASKS)}, got {t!r}")
        if task is not None and t != task:
            continue
        blocks.append((w, t, entry))
    if not blocks:
        raise SweepError(f"{where} has no {task} runs")
    all_known = set(GRID_KEYS).union(*(_task_keys(_norm_keys(e, where).get("task", spec.get("task", task)))
                                       for e in entries))
    unknown = sorted(set(spec) - all_known)
    if unknown:
        raise SweepError(f"{where}: unknown setting(s) {', '.join(unknown)} (no task of the grid takes them)")
    used = set()
    cfgs = []
    for w, t, entry in blocks:
        known = _task_keys(t) | set(GRID_KEYS)
        merged = {}
        for source, d in (("spec", spec), ("entry", entry), ("options", overrides)):
            for k, v in d.items():
                if k in known or (source == "entry" and k == "_corpus"):
                    merged[k] = v
                    used.add(k)
                elif source == "entry":
                    raise SweepError(f"{w}: unknown setting {k!r} for task {t} (known: {sorted(known)})")
        if base_dir is not None:
            for k in TASKS[t].path_keys:
                v = merged.get(k)
                if k not in overrides and v is not None:
                    merged[k] = ([os.path.join(base_dir, x) for x in v] if isinstance(v, list)
                                 else os.path.join(base_dir, v))
        if merged.pop("_corpus", None) == "ptb" and not (merged.get("train") and merged.get("valid")):
            merged.update(_ptb_paths(where))
        cfgs.extend(_expand_block(w, t, merged))
    unused = sorted(set(overrides) - used)
    if unused:
        tasks = sorted({t for _, t, _ in blocks})
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise SweepError(f"{flags} is not an option of the grid's task{'s' if len(tasks) > 1 else ''}"
                         f" ({', '.join(tasks)})")
    unique = []
    for c in cfgs:
        if c not in unique:
            unique.append(c)
    return list(zip(run_names(unique), unique))


def _expand_block(where, task, merged):
    methods = _methods_list(merged.pop("methods", None) or merged.get("method") or runner.DEFAULTS[task]["method"],
                            where)
    merged.pop("method", None)
    merged.pop("task", None)
    seeds = merged.pop("seeds", None)
    if seeds is None:
        seeds = merged.get("seed", runner.DEFAULTS[task]["seed"])
    merged.pop("seed", None)
    seeds = parse_seeds(seeds)
    keys = sorted(merged)
    values = [v if isinstance(v, list) else [v] for v in (merged[k] for k in keys)]
    for k, v in zip(keys, values):
        if not v:
            raise SweepError(f"{where}: {k} is an empty list")
    out = []
    for combo in itertools.product(*values):
        settings = dict(zip(keys, combo))
        for m in methods:
            ms = _method_settings(m, settings, task, where)
            for seed in seeds:
                s = dict(settings, seed=seed, **ms)
                no_clip = "clip" in s and (s["clip"] is None or str(s["clip"]).lower() in ("none", "off"))
                if no_clip:
                    s.pop("clip")
                try:
                    cfg = runner.make_config(task, **s)
                except RunError as e:
                    raise SweepError(f"{where}: {e}") from None
                if no_clip:
                    cfg["clip"] = None
                if METHODS[cfg["method"]].param != "truncation":
                    cfg["truncation"] = None
                out.append(cfg)
    return out


def _fmt_value(key, v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and key in {k for c in TASKS.values() for k in c.path_keys}:
        return os.path.basename(v).split(".")[0]
    if isinstance(v, (list, tuple)):          # a per-layer setting: hidden [64, 32] -> 64+32
        return "+".join(_fmt_value(key, x) for x in v)
    return "none" if v is None else str(v)


def run_names(cfgs):
    """The folder name of each config (:mod:`oknumba.sweep`); :class:`SweepError` if two coincide."""
    skip = {"task", "method", "rank", "truncation", "seed"}
    varying = {}
    for task in {c["task"] for c in cfgs}:
        group = [c for c in cfgs if c["task"] == task]
        keys = [k for k in group[0] if k not in skip]
        varying[task] = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in group}) > 1]
    names = []
    for c in cfgs:
        param = c.get("rank") if METHODS[c["method"]].param == "rank" else c.get("truncation")
        name = f"{c['task']}-{c['method']}{'' if param is None else param}-seed{c['seed']}"
        name += "".join(f"-{k}{_fmt_value(k, c.get(k))}" for k in varying[c["task"]])
        names.append(re.sub(r"[^A-Za-z0-9._+=-]", "_", name))
    seen = {}
    for n, c in zip(names, cfgs):
        if n in seen:
            raise SweepError(f"two runs of the grid would share the folder name {n}: their settings differ"
                             " only in digits the name drops; make the values differ more")
        seen[n] = c
    return names

