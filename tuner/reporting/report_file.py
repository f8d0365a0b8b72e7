"""A study's report as one self-contained HTML file (what ``python -m tuner.report`` and the
search's WriteReport callback write)."""
from __future__ import annotations

from pathlib import Path

import optuna

from tuner.files import atomic_write_text
from tuner.reporting.html import render
from tuner.reporting.study_report import build_content


def write_report(study: optuna.Study, study_directory: Path, out: Path,
                 export_path: Path | None = None, jobs: int = 1) -> list:
    """Write the report to ``out``; return its plots (still open, for MLflow)."""
    content, plots = build_content(study, study_directory, export_path, jobs)
    atomic_write_text(out, render(content))
    return plots
