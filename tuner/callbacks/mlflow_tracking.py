"""MLflow tracking: one parent run per study, one nested run per trial.

The parent run carries the study's context (model, shape, device, space, versions, CPU) and the
best figures so far; each nested run carries every knob as a parameter, every metric, the trial
status as a tag, and the trial's config JSON (and error text) as artifacts.
"""
from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

import mlflow
import optuna
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.time import get_current_time_millis

from tuner.callbacks.base import StudyCallback
from tuner.callbacks.progress import pruning_savings, summary_table
from tuner.errors import UsageError, one_line
from tuner.study import records
from tuner.study.loop import SPEEDUP_ATTR

EXPERIMENT = "tuner"
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # UI opens on the runs
UI_VIEW = "workflowType=machine_learning"  # the UI's "Model training" view: opens on runs
NOTE_TAG = "mlflow.note.content"  # a run's description in the UI (Markdown)
PARENT_RUN_ATTR = "mlflow_parent_run_id"
_BATCH = 100


def _param_value(value) -> str:
    return "default" if value is None else str(value)[:6000]


class MlflowTracker(StudyCallback):
    def __init__(self, tracking_uri: str, artifact_root: Path, extra_params: dict | None = None):
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.extra_params = extra_params or {}
        self.client: MlflowClient | None = None
        self.parent_id = ""
        self.trial_run_ids: dict[int, str] = {}  # trial number -> its nested run
        self.experiment_id = ""

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            for key, value in EXPERIMENT_KIND.items():
                if experiment.tags.get(key) != value:
                    self.client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
        location = None
        if self.tracking_uri.startswith("sqlite:"):
            self.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.artifact_root.resolve().as_uri()
        return self.client.create_experiment(EXPERIMENT, artifact_location=location,
                                             tags=EXPERIMENT_KIND)

    def log(self, run_id: str, params: dict | None = None, metrics: dict | None = None,
             tags: dict | None = None, step: int = 0) -> None:
        now = get_current_time_millis()
        items = {"params": [Param(k, _param_value(v)) for k, v in (params or {}).items()],
                 "metrics": [Metric(k, float(v), now, step) for k, v in (metrics or {}).items()
                             if v is not None],
                 "tags": [RunTag(k, str(v)) for k, v in (tags or {}).items()]}
        for start in range(0, max(map(len, items.values()), default=0), _BATCH):
            self.client.log_batch(run_id, **{k: v[start:start + _BATCH] for k, v in items.items()})

    def on_study_start(self, run):
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        try:
            experiment_id = self.experiment_id = self._experiment_id()
        except Exception as exc:  # MLflow raises many kinds for a bad or unreachable store
            reason = one_line(exc)[:300]
            raise UsageError(f"--tracking-uri {self.tracking_uri}: cannot use it ({reason})") from None
        self.parent_id = run.study.user_attrs.get(PARENT_RUN_ATTR, "")
        if self.parent_id:
            try:
                self.client.update_run(self.parent_id, status="RUNNING")
                self.log(self.parent_id, metrics=run.noise, step=records.trial_count(run.study))
                return
            except mlflow.exceptions.MlflowException:
                self.parent_id = ""  # the tracking store was reset: start a new parent run
        parent = self.client.create_run(experiment_id, run_name=run.study.study_name,
                                        tags={"tuner.study": run.study.study_name})
        self.parent_id = parent.info.run_id
        run.study.set_user_attr(PARENT_RUN_ATTR, self.parent_id)
        info = run.model_info
        self.log(self.parent_id, params={
            **run.target.to_dict(), "input_shape": "x".join(map(str, run.target.input_shape)),
            "search_space": run.space.source, "objectives": ",".join(o.name for o in run.objectives),
            "mindspore_version": info.get("mindspore_version"), "optuna_version": optuna.__version__,
            "mlflow_version": mlflow.__version__, "python_version": platform.python_version(),
            "cpu_model": info.get("cpu_model"), "cpu_count": os.cpu_count(),
            "model_parameters": info.get("parameters"), "study_storage": _safe_url(run),
            **{f"measure.{k}": v for k, v in run.measure.to_dict().items()},
            **self.extra_params})
        self.log(self.parent_id, metrics=run.noise)
        self.client.log_dict(self.parent_id, run.space.describe(), "search_space.json")
        self.client.log_dict(self.parent_id, info, "model_info.json")

    def on_trial_end(self, run, trial, result):
        config = records.trial_config(trial)
        baseline = records.is_baseline(trial)
        child = self.client.create_run(
            self.client.get_run(self.parent_id).info.experiment_id,
            run_name=_trial_run_name(trial, result, baseline),
            tags={"mlflow.parentRunId": self.parent_id, "status": result.status.value,
                  "trial_number": str(trial.number), "baseline": str(baseline).lower(),
                  "optuna_state": trial.state.name, "origin": records.origin(trial),
                  NOTE_TAG: _trial_note(trial, result),
                  **({"reused_from": str(trial.user_attrs[records.REUSED_FROM_ATTR])}
                     if records.REUSED_FROM_ATTR in trial.user_attrs else {})})
        run_id = child.info.run_id
        self.trial_run_ids[trial.number] = run_id
        metrics = dict(result.metrics.to_dict()) if result.metrics else {}
        metrics["wall_seconds"] = result.wall_seconds
        if SPEEDUP_ATTR in trial.user_attrs:
            metrics["speedup"] = trial.user_attrs[SPEEDUP_ATTR]
        metrics.update({f"graph_ops.{k}": v for k, v in result.graph_ops.items()})
        self.log(run_id, params=config.flat(), metrics=metrics)
        self.client.log_dict(run_id, config.to_dict(), "config.json")
        if result.error:
            self.client.log_text(run_id, result.error, "error.txt")
        self.client.set_terminated(run_id, "FINISHED" if result.ok else "FAILED")
        self._update_parent(run, trial.number)

    def _update_parent(self, run, step: int) -> None:
        best = run.best_trials()
        if not best:
            return
        top = best[0]
        metrics = {f"best_{k}": v for k, v in records.trial_result(top).metrics.to_dict().items()}
        metrics["best_speedup"] = top.user_attrs.get(SPEEDUP_ATTR)
        metrics["trials"] = records.trial_count(run.study)
        metrics.update(pruning_savings(run.study.get_trials(deepcopy=False)))
        self.log(self.parent_id, metrics=metrics, step=step,
                  tags={"best_trial": top.number,
                        "best_knobs": records.trial_config(top).describe()[:5000]})

    def on_validated(self, run, report):
        winner = report.candidate(report.winner)
        (low, high), (ci_low, ci_high) = winner.spread, winner.interval
        self.log(self.parent_id, metrics={"validated_speedup": winner.speedup,
                                           "validated_speedup_low": low,
                                           "validated_speedup_high": high,
                                           "validated_speedup_ci_low": ci_low,
                                           "validated_speedup_ci_high": ci_high},
                  tags={"validated_winner": report.winner, "validation_note": report.note or "-"},
                  step=records.trial_count(run.study))
        self.client.log_dict(self.parent_id, report.to_dict(), "validation.json")

    def on_search_complete(self, run, winner):
        summary = summary_table(run)
        self.log(self.parent_id, tags={NOTE_TAG: (
            f"**{run.study.study_name}**: {run.target.model} "
            f"{'x'.join(map(str, run.target.input_shape))} on {run.target.device}\n\n"
            f"```\n{summary}\n```\n\nNested runs: one per trial (name: number, status, "
            f"speedup). Artifacts: `profile/` (where the winner's time goes), `plots/`, "
            f"`report.html`.")[:5000]})

    def on_study_end(self, run):
        if self.client is not None and self.parent_id:
            self.client.set_terminated(self.parent_id, RunStatus.to_string(RunStatus.FINISHED))


def _trial_run_name(trial, result, baseline: bool) -> str:
    """``trial-7 ok 12.3x``; the baseline ``trial-0 baseline``; a failure ``trial-4 pruned``."""
    if baseline:
        return f"trial-{trial.number} baseline"
    speedup = trial.user_attrs.get(SPEEDUP_ATTR)
    return f"trial-{trial.number} {result.status.value}" + (
        f" {speedup:.2f}x" if result.ok and speedup is not None else "")


def _trial_note(trial, result) -> str:
    """The nested run's description: its knobs that differ from the untuned defaults."""
    config = records.trial_config(trial)
    lines = [f"- `{k}` = `{v}`" for k, v in config.non_default_knobs().items()]
    lines += [f"- `{c.workload}`: {c.kernel} " + ", ".join(f"{k}={v}" for k, v in c.params)
              for c in config.kernels]
    head = f"Trial {trial.number} ({records.origin(trial)}): {result.status.value}."
    if result.error:
        head += f" {result.reason()}"
    return "\n".join([head, "", "Knobs that differ from the untuned defaults:"]
                     + (lines or ["- none"]))[:5000]


def _safe_url(run) -> str:
    """The storage URL without a password."""
    url = getattr(run.study._storage, "url", "")
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
