"""The study's plots and HTML report, written and logged to the parent MLflow run once the
search is complete (tuner.reporting)."""
from __future__ import annotations

import sys
from pathlib import Path

from tuner.errors import one_line
from tuner.storages.mlflow_names import PLOTS_ARTIFACT_DIR
from tuner.study.study_callback import StudyCallback

REPORT_FILE = "report.html"


class WriteReport(StudyCallback):
    """Writes ``<study dir>/report.html`` (or ``out``) and logs it and every plot (PNG, under
    ``plots/``) to the tracker's parent run. Put it after ProfileWinner: the report shows the
    winner's profile. A failure is one line on stderr; it never stops the study."""

    def __init__(self, tracker=None, export_path: Path | None = None, jobs: int = 1,
                 out: Path | None = None):
        self.tracker, self.export_path, self.jobs, self.out = tracker, export_path, jobs, out
        self.written: Path | None = None

    def on_search_complete(self, run, winner):
        from tuner.reporting.report_file import write_report
        from tuner.reporting.plots import close

        path = self.out or run.directory / REPORT_FILE
        plots = []
        try:
            plots = write_report(run.study, run.directory, path, self.export_path, self.jobs)
            self.written = path
            client = self.tracker.client if self.tracker is not None else None
            if client is not None and self.tracker.parent_id:
                for plot in plots:
                    if plot.figure is not None:
                        client.log_figure(self.tracker.parent_id, plot.figure,
                                          f"{PLOTS_ARTIFACT_DIR}/{plot.name}.png")
                client.log_artifact(self.tracker.parent_id, str(path))
        except Exception as exc:  # a report is a side effect: it must not end the study
            text = one_line(exc)
            print(f"report not written or not logged: {text}", file=sys.stderr)
        finally:
            close(plots)
