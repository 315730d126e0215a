"""Reports of a run root: tables (Markdown, CSV, LaTeX), PNG figures and a static HTML page.

``build_report("runs/demo")`` writes ``runs/demo/report/``; ``sept report RUN_ROOT`` does the same
from the command line. :mod:`sept.report.aggregate` documents the order of averaging.
"""

from __future__ import annotations

from sept.report.aggregate import Group, Stat, average_over_datasets, group_runs
from sept.report.build import Report, build_report
from sept.report.collect import RunRecord, collect, collect_run_root
from sept.report.tables import Table, build_tables

__all__ = [
    "Group",
    "Report",
    "RunRecord",
    "Stat",
    "Table",
    "average_over_datasets",
    "build_report",
    "build_tables",
    "collect",
    "collect_run_root",
    "group_runs",
]
