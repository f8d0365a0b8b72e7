"""MLflow tracking: one parent run per study (across all its workers), one nested run per trial.

The parent run carries the study's context (model, shape, device, space, versions, CPU) and the
best figures so far; each nested run carries every knob as a parameter, every metric, the trial
status, host and worker as tags, and the trial's config JSON (and error text) as artifacts
(tuner.callbacks.mlflow_runs says how each is made once).

Rules:

- A tracking store that cannot be used when the worker starts is a usage error (one line,
  exit code 2, before any trial: nothing is lost, and a wrong URI is caught at once).
- Once started, a store that goes away (the server is down or unreachable) never stops the
  study: trials go on and are recorded in Optuna; the tracker says so in one line and, at each
  later trial, tries again and logs everything of this worker that is missing. Whatever is left
  (a worker that died or ended while it was down) is logged by the worker that ends the study
  or by ``python -m tuner.sync_mlflow``.
- Only the worker that ends the study writes the study's summary and marks the parent run
  finished.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tuner.callbacks.mlflow_runs import StudyRuns
from tuner.errors import UsageError, one_line
from tuner.redact import mask_url, without_secrets
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages import mlflow_names as names
from tuner.storages.attributes import TrialKey
from tuner.storages.mlflow_names import LOGGED_STATES, NOTE_TAG
from tuner.study.study_callback import StudyCallback
from tuner.study.summary import pruning_savings, summary_table
from tuner.study.validation import over_default



def artifact_location(tracking_uri: str, artifact_root: Path) -> str | None:
    """Where a new experiment keeps artifacts: beside a local store; a server decides itself."""
    if tracking_uri.startswith("sqlite:"):
        artifact_root.mkdir(parents=True, exist_ok=True)
        return artifact_root.resolve().as_uri()
    return None


class MlflowTracker(StudyCallback):
    def __init__(self, tracking_uri: str, artifact_root: Path, extra_params: dict | None = None):
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.extra_params = extra_params or {}
        self.client: MlflowClient | None = None
        self.runs: StudyRuns | None = None
        self.online = False

    @property
    def parent_id(self) -> str:
        return self.runs.parent_id if self.runs is not None and self.online else ""

    @property
    def trial_run_ids(self) -> dict[int, str]:
        """trial number -> its nested run."""
        return self.runs.run_ids if self.runs is not None else {}

    @property
    def experiment_id(self) -> str:
        return self.runs.experiment_id if self.runs is not None else ""

    def log(self, run_id: str, **items) -> None:
        self.runs.log(run_id, **items)

    def _offline(self, what: str, exc: Exception) -> None:
        if self.online or self.runs is None or not self.runs.parent_id:
            print(f"MLflow at {mask_url(self.tracking_uri)} unreachable ({what}: "
                  f"{without_secrets(one_line(exc), self.tracking_uri)[:200]}); "
                  f"trials go on in Optuna and are logged once it is back "
                  f"(or: python -m tuner.sync_mlflow)", file=sys.stderr)
        self.online = False

    def _connect(self, run, starting: bool = False) -> bool:
        """Online with the study's parent run (created when this worker is the first)."""
        if self.online:
            return True
        try:
            created = self.runs.connect(self.extra_params)
            if created:
                self.log(self.runs.parent_id, metrics=run.noise)
                self._parent_artifacts(run)
            else:
                self.log(self.runs.parent_id, metrics=run.noise,
                         step=trial_facts.trial_count(run.study))
        except Exception as exc:  # MLflow raises many kinds for a bad or unreachable store
            if starting:
                raise UsageError(f"--tracking-uri {mask_url(self.tracking_uri)}: cannot use it "
                                 f"({without_secrets(one_line(exc), self.tracking_uri)[:300]})"
                                 ) from None
            self._offline("connecting", exc)
            return False
        self.online = True
        return True

    def _parent_artifacts(self, run) -> None:
        try:
            self.client.log_dict(self.runs.parent_id, run.space.describe(),
                                 names.SEARCH_SPACE_ARTIFACT)
            self.client.log_dict(self.runs.parent_id, run.model_info, names.MODEL_INFO_ARTIFACT)
        except Exception as exc:  # a refusing artifact store costs the artifacts, not the run
            self.client.set_tag(self.runs.parent_id, names.ARTIFACT_ERROR_TAG,
                                one_line(exc)[:5000])

    def on_study_start(self, run):
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.runs = StudyRuns(self.client, run.study,
                              artifact_location(self.tracking_uri, self.artifact_root))
        self._connect(run, starting=True)

    def sync(self, run, mine_only: bool) -> int:
        """Log this worker's (or every) finished trial that MLflow lacks; how many."""
        if not self._connect(run):
            return 0
        trials = [t for t in run.study.get_trials(deepcopy=False, states=LOGGED_STATES)
                  if not mine_only or attrs.trial_get(t, TrialKey.WORKER) == run.worker]
        try:
            count = self.runs.sync(trials)
            with run.lock("mlflow"):  # workers writing one store one at a time
                self._update_parent(run)
        except Exception as exc:  # the server went away again: the next trial retries
            self._offline("logging", exc)
            return 0
        return count

    def on_trial_end(self, run, trial, result):
        self.sync(run, mine_only=True)

    def _update_parent(self, run) -> None:
        best = run.best_trials()
        if not best:
            return
        top = best[0]
        metrics = {names.BEST_PREFIX + k: v
                   for k, v in trial_facts.trial_result(top).metrics.to_dict().items()}
        metrics[names.BEST_SPEEDUP_METRIC] = attrs.trial_get(top, TrialKey.SPEEDUP)
        metrics[names.TRIALS_METRIC] = trial_facts.trial_count(run.study)
        metrics.update(pruning_savings(run.study.get_trials(deepcopy=False)))
        self.log(self.runs.parent_id, metrics=metrics, step=trial_facts.trial_count(run.study),
                 tags={names.BEST_TRIAL_TAG: top.number,
                       names.BEST_KNOBS_TAG: trial_facts.trial_config(top).describe()[:5000]})

    def on_validated(self, run, report):
        if not self.online:
            return
        winner = report.candidate(report.winner)
        (low, high), (ci_low, ci_high) = winner.spread, winner.interval
        metrics = {names.VALIDATED_SPEEDUP_METRIC: winner.speedup,
                   names.VALIDATED_SPEEDUP_LOW_METRIC: low,
                   names.VALIDATED_SPEEDUP_HIGH_METRIC: high,
                   names.VALIDATED_SPEEDUP_CI_LOW_METRIC: ci_low,
                   names.VALIDATED_SPEEDUP_CI_HIGH_METRIC: ci_high}
        versus_default = over_default(report, run.study)
        if versus_default is not None:
            _, versus = versus_default
            metrics.update({names.VALIDATED_OVER_DEFAULT_METRIC: versus.ratio,
                            names.VALIDATED_OVER_DEFAULT_CI_LOW_METRIC: versus.interval[0],
                            names.VALIDATED_OVER_DEFAULT_CI_HIGH_METRIC: versus.interval[1]})
        try:
            self.log(self.parent_id, metrics=metrics,
                     tags={names.VALIDATED_WINNER_TAG: report.winner,
                           names.VALIDATION_NOTE_TAG: report.note or "-",
                           names.VALIDATED_ON_TAG: report.host or "-"},
                     step=trial_facts.trial_count(run.study))
            self.client.log_dict(self.parent_id, report.to_dict(), names.VALIDATION_ARTIFACT)
        except Exception as exc:
            self._offline("logging the validation", exc)

    def on_search_complete(self, run, winner):
        self.sync(run, mine_only=False)  # the end of the study: everybody's trials
        if not self.online:
            return
        summary = summary_table(run)
        try:
            self.log(self.parent_id, tags={NOTE_TAG: (
                f"**{run.study.study_name}**: {run.target.model} "
                f"{'x'.join(map(str, run.target.input_shape))} on {run.target.device}\n\n"
                f"```\n{summary}\n```\n\nNested runs: one per trial (name: number, status, "
                f"speedup). Artifacts: `profile/` (where the winner's time goes), `plots/`, "
                f"`report.html`.")[:5000]})
        except Exception as exc:
            self._offline("logging the summary", exc)

    def on_study_end(self, run):
        """The parent run is finished when no trial of the study runs any more."""
        if not self.online or run.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return
        try:
            self.client.set_terminated(self.parent_id, RunStatus.to_string(RunStatus.FINISHED))
        except Exception as exc:
            self._offline("finishing the parent run", exc)
