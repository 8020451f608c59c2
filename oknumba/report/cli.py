"""The ``oknumba report`` command line: its parser and :func:`cmd_report`."""
import os
import sys

from .markdown import write_report
from .runs import ReportError


def add_report_parser(sub):
    p = sub.add_parser("report", help="report.md and PNG figures from run folders and noise results",
                       description="Write REPORT/report.md with PNG figures beside it: per task the metric (copy:"
                                   " level; char-LM: validation bits/char) and the training loss against steps and"
                                   " wall-clock seconds (mean and spread over seeds per method), a table of final"
                                   " values (mean ± sd, n seeds), the authors' logged curves where the setting is"
                                   " theirs, and a noise section from oknumba noise --json files. Needs matplotlib.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="run folders, folders holding them (a sweep's DIR) and oknumba noise --json files")
    p.add_argument("--out", required=True, metavar="REPORT", help="folder to write report.md and the figures to"
                                                                  " (required; no default)")
    p.add_argument("--title", help="the report's title (default: oknumba report)")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args):
    try:
        res = write_report(args.paths, args.out, title=args.title)
    except ReportError as e:
        print(f"oknumba: error: {e}", file=sys.stderr)
        return e.exit_code
    for s in res["skipped"]:
        print(f"skipped {s}", file=sys.stderr)
    n = len(res["figures"])
    print(f"wrote {res['report']} and {n} figure{'s' * (n != 1)}"
          f" ({', '.join(os.path.basename(f) for f in res['figures'])}) from {res['runs']} runs"
          f" and {res['noise']} noise results")
    return 0
