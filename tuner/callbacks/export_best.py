"""Writing the study's best configuration as JSON once the study is complete (by the worker
that ends it, or python -m tuner.validate; never by each worker)."""
from __future__ import annotations

from pathlib import Path

from tuner.exported_config import write_export
from tuner.storages import trial_facts
from tuner.study.exported_trial import export_trial
from tuner.study.study_callback import StudyCallback


class ExportBest(StudyCallback):
    def __init__(self, path: Path):
        self.path = path
        self.written: Path | None = None

    def on_search_complete(self, run, winner):
        if trial_facts.ranked_trials(run.study):
            self.written = write_export(export_trial(run.study), self.path)
