"""Reports behind ``oknumba report``: ``report.md`` plus PNG figures beside it, from recorded
runs and noise measurements. Everything here is a pure function of those files.

Inputs (``oknumba report PATH...``): run folders (``config.json`` + ``metrics.jsonl``), folders
holding them at any depth (a sweep's ``DIR``), and ``oknumba noise --json`` files (also found
inside the folders).

Per task, runs are grouped by their settings except the seed (one group per method and
setting); the report draws ``<task>.png``: the task's metric (copy: the curriculum level;
char-LM: validation bits/char; other tasks: their first metric) and the training loss, each
against steps and against wall-clock seconds, as the mean over seeds with a ± 1 sd band; it
tabulates the final values (mean ± sd, n seeds). Where a group has the setting of the authors'
released runs (:data:`PAPER_SETTINGS`; ``oknumba/data/paper_logs.json``, numbers read from
their logs), their logged curves are overlaid and their values tabulated. A noise section
tabulates, per method and hidden size n, the relative influence and gradient errors and the
gradient cosine against exact RTRL and draws them against n (``noise.png``).
"""
# The package is split by job; every name of the former single module ``oknumba/report.py``
# stays importable from here.
from .runs import (PAPER_METRIC, PAPER_SETTINGS, Group, ReportError, Run, _identity, _is_run_folder,  # noqa: F401
                   _last, _load_run, _read_json, _setting_text, _status_text, _steps_text, collect,
                   common_settings, curve, final_value, fmt_mean_sd, group_runs, headline_metric, is_noise_doc,
                   mean_sd, method_label, paper_at, paper_curve, paper_entry, paper_logs)
from .figures import LABELS, _overlay_paper, _pyplot, noise_figure, task_figure  # noqa: F401
from .markdown import (NOISE_FIGURE, REPORT_FILE, SHORT, _md_table, noise_rows, noise_section,  # noqa: F401
                       task_section, write_report)
from .cli import add_report_parser, cmd_report  # noqa: F401

__all__ = ["write_report", "collect", "group_runs", "paper_logs", "paper_entry", "ReportError", "add_report_parser",
           "cmd_report", "PAPER_SETTINGS"]
