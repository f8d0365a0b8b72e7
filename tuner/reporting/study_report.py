"""Gathering what a study's report shows, from its storage and its local files alone."""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import optuna

from tuner.profiling.operator_times import Profile
from tuner.reporting.html import ReportContent
from tuner.reporting.plots import study_plots
from tuner.storages import trial_facts
from tuner.storages import attributes as attrs
from tuner.storages.attributes import StudyKey
from tuner.study.summary import summary_table
from tuner.study.validation import current_report


@dataclass
class StoredStudy:
    """The parts of a running study (tuner.study.loop.StudyRun) that the summary reads, for a
    study loaded from its storage."""

    study: optuna.Study
    noise: dict = field(default_factory=dict)

    def baseline(self):
        return trial_facts.baseline_trial(self.study.get_trials(deepcopy=False))

    def best_trials(self):
        return trial_facts.ranked_trials(self.study)


def exported_trial(study: optuna.Study):
    """The validated winner when the validation is current, else the best ok trial, else None."""
    report = current_report(study)
    if report is not None:
        return study.get_trials(deepcopy=False)[report.winner]
    ranked = trial_facts.ranked_trials(study)
    return ranked[0] if ranked else None


def winner_profiles(study_directory: Path, trial_number: int) -> tuple[tuple[Profile, Profile] | None, list]:
    """(baseline, winner) profiles and the comparison rows written by the search, if any."""
    table = study_directory / "profiles" / f"trial-{trial_number}" / "table.json"
    if not table.exists():
        return None, []
    data = json.loads(table.read_text())
    return (Profile.from_dict(data["baseline"]), Profile.from_dict(data["tuned"])), data["rows"]


def _knobs(trial) -> list[tuple[str, str]]:
    config = trial_facts.trial_config(trial)
    rows = [(k, str(v)) for k, v in config.non_default_knobs().items()]
    rows += [(f"kernel for {c.workload}",
              f"{c.kernel} " + ", ".join(f"{k}={v}" for k, v in c.params)) for c in config.kernels]
    return rows or [("(none)", "the untuned defaults")]


def _failures(study: optuna.Study) -> dict[str, list[tuple[int, str]]]:
    failures: dict[str, list[tuple[int, str]]] = {}
    for trial in study.get_trials(deepcopy=False):
        result = trial_facts.trial_result(trial)
        if result is not None and not result.ok:
            failures.setdefault(result.status.value, []).append(
                (trial.number, result.reason().partition(": ")[2] or "-"))
    return failures


def build_content(study: optuna.Study, study_directory: Path, export_path: Path | None = None,
                  jobs: int = 1) -> tuple[ReportContent, list]:
    """The report's content and its plots (close them with tuner.reporting.plots.close)."""
    target = attrs.get(study, StudyKey.TARGET, {})
    info = attrs.get(study, StudyKey.MODEL_INFO, {})
    noise = attrs.get(study, StudyKey.NOISE, {})
    report = current_report(study)
    winner = exported_trial(study)
    profiles, rows = winner_profiles(study_directory, winner.number) if winner else (None, [])
    plots = study_plots(study, report, profiles, winner.number if winner else None, jobs)
    shape = "x".join(str(s) for s in [target.get("batch_size"), 3, target.get("image_size"),
                                       target.get("image_size")])
    context = {"study": study.study_name, "model": str(target.get("model")),
               "input shape": shape, "device": str(target.get("device")),
               "trials": str(trial_facts.trial_count(study)),
               "CPU": f"{info.get('cpu_model', '?')} ({os.cpu_count()} cores)",
               "MindSpore": info.get("mindspore_version", "?"), "Optuna": optuna.__version__,
               "MLflow": mlflow.__version__, "Python": platform.python_version(),
               "machine noise at start": (f"CV {noise['noise_cv']:.1%} of a fixed matmul"
                                          if noise else "not recorded")}
    export = str(export_path) if export_path else "best.json"
    code = ":" in str(target.get("model"))  # package.module:factory: building it runs code
    trust, trusted = (" --trust-model-code", ", trust_model_code=True") if code else ("", "")
    reproduce = [f"python -m tuner.export --study-name {study.study_name} --out {export}",
                 f"python -m tuner.measure {export}{trust}     # re-measure it and the baseline",
                 f"python -m tuner.profile {export}{trust}     # where its time goes",
                 f"# in deployment code: net = tuner.load({export!r}, checkpoint='my.ckpt'"
                 f"{trusted})"]
    described = (f"trial {winner.number}: {trial_facts.trial_config(winner).describe()}"
                 + (" (validated winner)" if report is not None else " (best trial, not validated)")
                 if winner else "no successful trial yet")
    content = ReportContent(f"tuner report: {study.study_name}", context,
                            summary_table(StoredStudy(study, noise)), plots, described,
                            _knobs(winner) if winner else [], _failures(study), rows, reproduce)
    return content, plots
