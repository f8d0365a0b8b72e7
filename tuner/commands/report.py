"""``python -m tuner.report --out report.html``: one self-contained HTML file of a study: its
context, the summary table, plots (history, knob importances and slices, validation, kernels'
time, Pareto front, timeline), the winner's knobs in plain words, failures grouped by status
and how to reproduce. Images are inline; the file needs no network access."""
from __future__ import annotations

from pathlib import Path

from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_runs_dir_argument, add_storage_argument,
                                    add_study_name_argument, selected_search_study)
from tuner.reporting.plots import close
from tuner.reporting.report_file import write_report
from tuner.storages.storage import study_dir


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m tuner.report", description=__doc__)
    add_study_name_argument(parser)
    add_storage_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("report.html"))
    args = parser.parse_args(argv)
    study = selected_search_study(args)
    close(write_report(study, study_dir(args.runs_dir, study.study_name).resolve(), args.out))
    print(f"wrote {args.out}")
    return 0
