"""A study in MLflow from its Optuna storage alone: its one parent run, one nested run per trial.

Rules:

- The parent run's id is the study attribute ``StudyKey.MLFLOW_PARENT_RUN``; it is looked up or
  created under the study's ``mlflow`` lock (tuner.storages.coordination), so that workers
  starting together make one.
- Every name (tags, parameters, metrics, artifacts) is tuner.storages.mlflow_names's.
- A trial's nested run carries the tag ``trial_number``. A trial is logged by checking, under
  the same lock, that the parent has no nested run with its number, then creating it: never
  twice, whoever logs it (its worker at the trial's end, a later trial's worker once the server
  is back, ``python -m tuner.sync_mlflow``).
- The tag ``tuner.logged`` is set last: a run without it (the server went away mid-way) is
  completed in place, not duplicated.
- Artifacts are best effort: when the artifact store refuses (read-only, full) the run gets the
  tag ``artifact_error`` and keeps its parameters, metrics and tags.
- Every finished trial is logged: COMPLETE and PRUNED with their record, FAIL (lost worker,
  interrupted) with the status ``lost``.
"""
from __future__ import annotations

import platform

import mlflow
import optuna
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.time import get_current_time_millis
from optuna.trial import FrozenTrial

from tuner.errors import one_line
from tuner.redact import mask_url
from tuner.trial.result import TrialResult
from tuner.storages import attributes as attrs
from tuner.storages import mlflow_names as names
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.storages.coordination import study_lock
from tuner.storages.liveness import retried_from
from tuner.storages.mlflow_names import (COMPLETE_TAG, EXPERIMENT, EXPERIMENT_KIND,
                                         LOGGED_STATES, NOTE_TAG, PARENT_TAG, TRIAL_TAG)
from tuner.study.hosts import Host

_BATCH = 100


def _param_value(value) -> str:
    return "default" if value is None else str(value)[:6000]


class StudyRuns:
    """The MLflow side of one study (see module), through ``client``."""

    def __init__(self, client: MlflowClient, study: optuna.Study, artifact_location: str | None):
        self.client, self.study, self.artifact_location = client, study, artifact_location
        self.experiment_id = ""
        self.parent_id = ""
        self.run_ids: dict[int, str] = {}  # trial number -> its nested run, as last seen

    def log(self, run_id: str, params: dict | None = None, metrics: dict | None = None,
            tags: dict | None = None, step: int = 0) -> None:
        now = get_current_time_millis()
        items = {"params": [Param(k, _param_value(v)) for k, v in (params or {}).items()],
                 "metrics": [Metric(k, float(v), now, step) for k, v in (metrics or {}).items()
                             if v is not None],
                 "tags": [RunTag(k, str(v)) for k, v in (tags or {}).items()]}
        for start in range(0, max(map(len, items.values()), default=0), _BATCH):
            self.client.log_batch(run_id, **{k: v[start:start + _BATCH] for k, v in items.items()})

    def _experiment(self) -> str:
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            for key, value in EXPERIMENT_KIND.items():
                if experiment.tags.get(key) != value:
                    self.client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
        try:
            return self.client.create_experiment(EXPERIMENT, tags=EXPERIMENT_KIND,
                                                 artifact_location=self.artifact_location)
        except mlflow.exceptions.MlflowException:  # another study's worker made it meanwhile
            experiment = self.client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                raise
            return experiment.experiment_id

    def connect(self, extra_params: dict | None = None) -> bool:
        """Find or create the experiment and the study's parent run; True if it created it
        (raises what MLflow raises when the server cannot be reached)."""
        with study_lock(self.study, "mlflow"):
            self.experiment_id = self._experiment()
            parent = attrs.get(self.study, StudyKey.MLFLOW_PARENT_RUN, "")
            if parent:
                try:
                    self.client.update_run(parent, status="RUNNING")
                    self.parent_id = parent
                    return False
                except mlflow.exceptions.MlflowException as exc:
                    if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                        raise
            name = self.study.study_name  # that parent is gone (the tracking store was reset)
            self.parent_id = self.client.create_run(
                self.experiment_id, run_name=name, tags={names.STUDY_TAG: name}).info.run_id
            attrs.put(self.study, StudyKey.MLFLOW_PARENT_RUN, self.parent_id)
            self.log(self.parent_id, params={**_study_params(self.study), **(extra_params or {})})
            return True

    def logged(self) -> dict[int, tuple[str, bool]]:
        """trial number -> (its nested run, complete?) for the study's parent run."""
        found, token = {}, None
        while True:
            page = self.client.search_runs([self.experiment_id],
                                           f"tags.`{PARENT_TAG}` = '{self.parent_id}'",
                                           max_results=1000, page_token=token)
            for run in page:
                number = run.data.tags.get(TRIAL_TAG)
                if number is not None and number.isdigit():
                    found[int(number)] = (run.info.run_id, COMPLETE_TAG in run.data.tags)
            token = page.token
            if not token:
                self.run_ids.update({n: run_id for n, (run_id, _) in found.items()})
                return found

    def sync(self, trials: list[FrozenTrial]) -> int:
        """Log each of ``trials`` (finished) that the parent lacks or has incomplete; how many."""
        logged, count = self.logged(), 0
        for trial in trials:
            if trial.state not in LOGGED_STATES or logged.get(trial.number, ("", False))[1]:
                continue
            with study_lock(self.study, "mlflow"):
                current = self._nested(trial.number)
                if current is None or not current[1]:
                    self.log_trial(trial, current[0] if current else None)
                    count += 1
        return count

    def _nested(self, number: int) -> tuple[str, bool] | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{TRIAL_TAG}` = '{number}'")
        return (runs[0].info.run_id, COMPLETE_TAG in runs[0].data.tags) if runs else None

    def log_trial(self, trial: FrozenTrial, run_id: str | None = None) -> str:
        """The trial's nested run (created, or ``run_id`` completed)."""
        result = trial_facts.trial_result(trial)
        status = result.status.value if result else "lost"
        if run_id is None:
            run_id = self.client.create_run(
                self.experiment_id, run_name=trial_run_name(trial, result),
                tags={PARENT_TAG: self.parent_id, TRIAL_TAG: str(trial.number)}).info.run_id
        config = trial_facts.trial_config(trial)
        metrics = dict(result.metrics.to_dict()) if result and result.metrics else {}
        if result:
            metrics[names.WALL_SECONDS_METRIC] = result.wall_seconds
            metrics.update({names.GRAPH_OPS_PREFIX + k: v for k, v in result.graph_ops.items()})
        metrics[names.SPEEDUP_METRIC] = attrs.trial_get(trial, TrialKey.SPEEDUP)
        self.log(run_id, params=config.flat(), metrics=metrics, tags=_trial_tags(trial, status))
        artifact_error = self._artifacts(run_id, trial, result)
        if artifact_error:
            self.client.set_tag(run_id, names.ARTIFACT_ERROR_TAG, artifact_error[:5000])
        self.client.set_terminated(run_id, "FINISHED" if result and result.ok else "FAILED")
        self.client.set_tag(run_id, COMPLETE_TAG, "true")
        self.run_ids[trial.number] = run_id
        return run_id

    def _artifacts(self, run_id: str, trial: FrozenTrial, result: TrialResult | None) -> str:
        try:
            self.client.log_dict(run_id, trial_facts.trial_config(trial).to_dict(),
                                 names.CONFIG_ARTIFACT)
            if result and result.error:
                self.client.log_text(run_id, result.error, names.ERROR_ARTIFACT)
        except Exception as exc:  # a refusing artifact store costs the artifacts, not the run
            return one_line(exc)
        return ""


def _study_params(study: optuna.Study) -> dict:
    """The parent run's parameters, from what the study stores (any worker, or a later sync)."""
    target = attrs.get(study, StudyKey.TARGET, {})
    info = attrs.get(study, StudyKey.MODEL_INFO, {})
    host = attrs.get(study, StudyKey.HOST)
    measure = attrs.get(study, StudyKey.MEASURE, {})
    shape = [target.get("batch_size"), 3, target.get("image_size"), target.get("image_size")]
    return {**target, names.INPUT_SHAPE_PARAM: "x".join(map(str, shape)),
            names.SEARCH_SPACE_PARAM: attrs.get(study, StudyKey.SPACE),
            names.OBJECTIVES_PARAM: ",".join(attrs.get(study, StudyKey.OBJECTIVES, [])),
            names.MINDSPORE_VERSION_PARAM: info.get("mindspore_version"),
            names.OPTUNA_VERSION_PARAM: optuna.__version__,
            names.MLFLOW_VERSION_PARAM: mlflow.__version__,
            names.PYTHON_VERSION_PARAM: platform.python_version(),
            names.CPU_MODEL_PARAM: info.get("cpu_model"),
            names.CPU_COUNT_PARAM: host.get("cores") if host else None,
            names.MODEL_PARAMETERS_PARAM: info.get("parameters"),
            names.STUDY_STORAGE_PARAM: safe_url(study),
            **{names.MEASURE_PARAM_PREFIX + k: v for k, v in measure.items()}}


def _trial_tags(trial: FrozenTrial, status: str) -> dict:
    host = attrs.trial_get(trial, TrialKey.HOST)
    tags = {names.STATUS_TAG: status,
            names.BASELINE_TAG: str(trial_facts.is_baseline(trial)).lower(),
            names.OPTUNA_STATE_TAG: trial.state.name, names.ORIGIN_TAG: trial_facts.origin(trial),
            NOTE_TAG: trial_note(trial, status),
            **(Host.from_dict(host).tags() if host else {})}
    if attrs.trial_get(trial, TrialKey.WORKER):
        tags[names.WORKER_TAG] = attrs.trial_get(trial, TrialKey.WORKER)
    if attrs.has(trial, TrialKey.REUSED_FROM):
        tags[names.REUSED_FROM_TAG] = str(attrs.trial_get(trial, TrialKey.REUSED_FROM))
    if retried_from(trial) is not None:
        tags[names.RETRY_OF_TAG] = str(retried_from(trial))
    return tags


def trial_run_name(trial: FrozenTrial, result: TrialResult | None) -> str:
    """``trial-7 ok 12.3x``; the baseline ``trial-0 baseline``; a failure ``trial-4 pruned``."""
    if trial_facts.is_baseline(trial) and result is not None:
        return f"trial-{trial.number} baseline"
    if result is None:
        return f"trial-{trial.number} lost"
    speedup = attrs.trial_get(trial, TrialKey.SPEEDUP)
    return f"trial-{trial.number} {result.status.value}" + (
        f" {speedup:.2f}x" if result.ok and speedup is not None else "")


def trial_note(trial: FrozenTrial, status: str) -> str:
    """The nested run's description: its knobs that differ from the untuned defaults."""
    config = trial_facts.trial_config(trial)
    result = trial_facts.trial_result(trial)
    lines = [f"- `{k}` = `{v}`" for k, v in config.non_default_knobs().items()]
    lines += [f"- `{c.workload}`: {c.kernel} " + ", ".join(f"{k}={v}" for k, v in c.params)
              for c in config.kernels]
    head = f"Trial {trial.number} ({trial_facts.origin(trial)}): {status}."
    if result is not None and result.error:
        head += f" {result.reason()}"
    elif result is None:
        head += " Its worker was lost before it ended (its configuration is re-run once)."
    return "\n".join([head, "", "Knobs that differ from the untuned defaults:"]
                     + (lines or ["- none"]))[:5000]


def safe_url(study: optuna.Study) -> str:
    """The storage URL with its credentials masked (tuner.redact.mask_url)."""
    storage = getattr(study._storage, "_backend", study._storage)
    return mask_url(getattr(storage, "url", ""))
