"""``python -m tuner.report --out report.html``: one self-contained HTML file of a study: its
context, the summary table, plots (history, knob importances and slices, validation, kernels'
time, Pareto front, timeline), the winner's knobs in plain words, failures grouped by status
and how to reproduce. Images are inline; the file needs no network access."""
from __future__ import annotations

from pathlib import Path

import optuna

from tuner.cli import OneLineParser, run_cli
from tuner.errors import UsageError
from tuner.files import atomic_write_text
from tuner.reporting.html import render
from tuner.reporting.plots import close
from tuner.reporting.study_report import build_content
from tuner.storages import attributes as attrs
from tuner.storages.attributes import StudyKey
from tuner.storages.storage import DEFAULT_RUNS_DIR, open_study, study_dir


def write_report(study: optuna.Study, study_directory: Path, out: Path,
                 export_path: Path | None = None, jobs: int = 1) -> list:
    """Write the report to ``out``; return its plots (still open, for MLflow)."""
    content, plots = build_content(study, study_directory, export_path, jobs)
    atomic_write_text(out, render(content))
    return plots


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m tuner.report", description=__doc__)
    parser.add_argument("--study-name", help="default: the only study in the storage")
    parser.add_argument("--storage", help="Optuna storage URL (default sqlite:///<runs-dir>/optuna.db)")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR)
    parser.add_argument("--out", type=Path, default=Path("report.html"))
    args = parser.parse_args(argv)
    study = open_study(args.storage, args.runs_dir, args.study_name)
    name = study.study_name
    if not attrs.has(study, StudyKey.TARGET):
        raise UsageError(f"study {name} was not made by tuner.search")
    close(write_report(study, study_dir(args.runs_dir, name).resolve(), args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
