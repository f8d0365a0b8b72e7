"""What a study looks like after its workers ran: the figures of the fault suite and the cluster.

Definitions (each counted from the storage and the tracking server alone):

- ``asked``: trials in the study (any state); ``completed``: finished with a record
  (COMPLETE or PRUNED: a pruned trial's record says why, e.g. ``timeout``).
- ``lost``: FAIL trials (their worker died or was interrupted) whose configuration was not
  measured by a retry (Optuna's ``failed_trial`` system attribute) that finished.
- ``duplicated``: starting points the study holds more than once: a host's measured baseline
  beyond its first, a second ``default``/``tuning_records`` trial, a screening configuration
  twice (retries of a lost trial are not duplicates).
- ``running`` / ``waiting``: trials left RUNNING or WAITING.
- ``mlflow_missing`` / ``mlflow_duplicated``: finished trials without a nested run under the
  study's parent run, and nested runs beyond one per trial number; ``parent_runs``: runs of the
  experiment tagged with the study's name and no parent.
- ``export_valid``: the exported JSON reads back (tuner.exported_config) and names an ok trial of
  this study; ``validated_on``: the host named by the study's validation report.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.storages.liveness import retried_from

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class StudyAudit:
    asked: int
    completed: int
    lost: int
    duplicated: int
    running: int
    waiting: int
    baselines: int
    mlflow_missing: int | None = None
    mlflow_duplicated: int | None = None
    parent_runs: int | None = None
    nested_runs: int | None = None
    export_valid: bool | None = None
    validated_on: str = ""

    @property
    def clean(self) -> bool:
        return (self.lost == self.duplicated == self.running == self.waiting == 0
                and not self.mlflow_missing and not self.mlflow_duplicated
                and self.export_valid is not False)

    def to_dict(self) -> dict:
        return {**asdict(self), "clean": self.clean}


def _lost(trials) -> int:
    retried = {retried_from(t) for t in trials if t.state in FINISHED}
    return sum(1 for t in trials if t.state == TrialState.FAIL
               and t.number not in retried and retried_from(t) not in retried - {None})


def _duplicated(trials) -> tuple[int, int]:
    """(duplicated starting points, measured baselines)."""
    originals = [t for t in trials if retried_from(t) is None and t.state != TrialState.FAIL]
    baselines = Counter(trial_facts.trial_host_key(t) for t in originals
                        if trial_facts.is_measured_baseline(t))
    origins = Counter(trial_facts.origin(t) for t in originals)
    screening = Counter(attrs.trial_get(t, TrialKey.CONFIG_HASH) for t in originals
                        if trial_facts.origin(t) == "screening")
    duplicated = sum(n - 1 for n in baselines.values())
    duplicated += sum(max(origins[o] - 1, 0) for o in ("default", "tuning_records"))
    duplicated += sum(n - 1 for n in screening.values())
    return duplicated, sum(baselines.values())


def _mlflow(study: optuna.Study, tracking_uri: str) -> tuple[int, int, int, int]:
    """(missing, duplicated, parent runs, nested runs) of the study in MLflow."""
    from mlflow.tracking import MlflowClient

    from tuner.storages.mlflow_names import (EXPERIMENT, LOGGED_STATES, PARENT_TAG, STUDY_TAG,
                                             TRIAL_TAG)

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    finished = {t.number for t in study.get_trials(deepcopy=False, states=LOGGED_STATES)}
    if experiment is None:
        return len(finished), 0, 0, 0
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`{STUDY_TAG}` = '{study.study_name}'")
    parents = {r.info.run_id for r in runs if PARENT_TAG not in r.data.tags}
    nested = [r for parent in parents for r in client.search_runs(
        [experiment.experiment_id], f"tags.`{PARENT_TAG}` = '{parent}'", max_results=5000)]
    numbers = Counter(int(r.data.tags[TRIAL_TAG]) for r in nested if TRIAL_TAG in r.data.tags)
    return (len(finished - set(numbers)), sum(n - 1 for n in numbers.values()), len(parents),
            len(nested))


def _export_valid(study: optuna.Study, path: Path) -> bool:
    from tuner.exported_config import read_export

    try:
        exported = read_export(path)
    except Exception:  # unreadable or refused: not a valid export
        return False
    number = exported.study.get("trial")
    trials = study.get_trials(deepcopy=False)
    return (exported.study.get("name") == study.study_name and isinstance(number, int)
            and 0 <= number < len(trials) and trials[number] in trial_facts.ok_trials(trials))


def audit(study: optuna.Study, tracking_uri: str | None = None,
          export_path: Path | None = None) -> StudyAudit:
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    duplicated, baselines = _duplicated(trials)
    missing = duplicates = parents = nested = None
    if tracking_uri:
        missing, duplicates, parents, nested = _mlflow(study, tracking_uri)
    report = attrs.get(study, StudyKey.VALIDATION) or {}
    return StudyAudit(
        asked=len(trials), completed=sum(states[s] for s in FINISHED), lost=_lost(trials),
        duplicated=duplicated, running=states[TrialState.RUNNING],
        waiting=states[TrialState.WAITING], baselines=baselines, mlflow_missing=missing,
        mlflow_duplicated=duplicates, parent_runs=parents, nested_runs=nested,
        export_valid=_export_valid(study, export_path) if export_path else None,
        validated_on=report.get("host", ""))
