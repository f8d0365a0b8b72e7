"""Operator-level profiles of the search's winner (and, optionally, of every trial), logged to
MLflow: the artifacts under ``profile/`` and a few shares as metrics (tuner.profiling)."""
from __future__ import annotations

import sys
from pathlib import Path

from tuner.config import TuningConfig
from tuner.errors import one_line
from tuner.profiling.operator_times import Profile
from tuner.runner.profile_runs import ProfileOutcome, profile_one, write_outputs
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.storages.mlflow_names import (PROFILE_ARTIFACT_DIR, PROFILE_ERROR_TAG,
                                         PROFILE_PREFIX, PROFILE_SHARE_PREFIX)
from tuner.study.study_callback import StudyCallback

TOP_TYPES = 5


def profile_metrics(outcome: ProfileOutcome) -> dict[str, float]:
    """``profile.overhead_share``, wall and operator ms per inference, the profiler's slowdown,
    the baseline's overhead share, and the share of the tuned side's top operator types
    (``profile.share.Conv2D``, ``profile.share.Custom_conv2d_dense``)."""
    tuned, base = outcome.tuned, outcome.baseline
    metrics = {PROFILE_PREFIX + "overhead_share": tuned.overhead_share,
               PROFILE_PREFIX + "wall_ms": tuned.wall_ms,
               PROFILE_PREFIX + "operator_ms": tuned.operator_ms,
               PROFILE_PREFIX + "profiler_slowdown": tuned.profiler_slowdown,
               PROFILE_PREFIX + "baseline.overhead_share": base.overhead_share}
    by_type = sorted(tuned.per_inference("op_type").items(), key=lambda kv: -kv[1][1])
    for op_type, (_, ms) in by_type[:TOP_TYPES]:
        metrics[PROFILE_SHARE_PREFIX + op_type.replace(':', '_')] = ms / tuned.wall_ms
    return metrics


class ProfileWinner(StudyCallback):
    """Profiles the exported trial and the baseline once the search is complete; with
    ``every_trial`` also each measured (ok, not reused) trial as it ends. The baseline and
    each trial are profiled at most once per invocation. A profiler failure is printed in one line and
    recorded as the run's tag ``profile_error``; it never stops the study, and profiling never
    touches a trial's measured metrics (it runs in its own process after the trial).

    ``tracker``: the MlflowTracker whose parent and nested runs receive the results (None: the
    files are only written under the study's ``profiles/`` directory)."""

    def __init__(self, tracker=None, runs: int = 5, every_trial: bool = False, top: int = 15):
        self.tracker, self.runs, self.every_trial, self.top = tracker, runs, every_trial, top
        self._baseline: Profile | None = None
        self._outcomes: dict[int, ProfileOutcome] = {}  # trial number -> its profile
        self.written: Path | None = None  # the winner's table.md

    def _profile(self, run, config: TuningConfig, label: str, workdir: Path,
                 measured_by) -> tuple[Profile | None, str]:
        result = trial_facts.trial_result(measured_by) if measured_by is not None else None
        latency_s = result.metrics.latency_p50_ms / 1e3 if result and result.metrics else 0.0
        return profile_one(run.target, run.assets_dir, config, label, workdir, self.runs,
                           seed=int(attrs.get(run.study, StudyKey.WEIGHTS_SEED, 0)),
                           timeout=run.settings.trial_timeout, measured_latency_s=latency_s)

    def _pair(self, run, trial) -> ProfileOutcome:
        workdir = run.directory / "profiles" / "work"
        if self._baseline is None:
            baseline = trial_facts.baseline_trial(run.study.get_trials(deepcopy=False))
            self._baseline, error = self._profile(run, TuningConfig(), "baseline",
                                                  workdir / "baseline", baseline)
            if self._baseline is None:
                return ProfileOutcome(None, None, error)
        tuned, error = self._profile(run, trial_facts.trial_config(trial),
                                     f"trial {trial.number}", workdir / f"trial-{trial.number}",
                                     trial)
        return ProfileOutcome(self._baseline, tuned, error)

    def _record(self, run, trial, run_id: str | None) -> Path | None:
        if trial.number not in self._outcomes:
            self._outcomes[trial.number] = self._pair(run, trial)
        outcome = self._outcomes[trial.number]
        client = self.tracker.client if self.tracker is not None else None
        try:
            if not outcome.ok:
                print(f"profiling trial {trial.number} failed (the study goes on): "
                      f"{outcome.error}", file=sys.stderr)
                if client is not None and run_id:
                    client.set_tag(run_id, PROFILE_ERROR_TAG, outcome.error[:5000])
                return None
            out = run.directory / "profiles" / f"trial-{trial.number}"
            write_outputs(outcome, out, self.top)
            if client is not None and run_id:
                client.log_artifacts(run_id, str(out), PROFILE_ARTIFACT_DIR)
                self.tracker.log(run_id, metrics=profile_metrics(outcome),
                                 step=trial_facts.trial_count(run.study))
            return out / "table.md"
        except Exception as exc:  # writing or tracking a profile must not stop the study
            text = one_line(exc)
            print(f"profile of trial {trial.number} not written or not logged: {text}",
                  file=sys.stderr)
            return None

    def on_trial_end(self, run, trial, result):
        if (self.every_trial and result.ok and not trial_facts.is_baseline(trial)
                and not attrs.has(trial, TrialKey.REUSED_FROM)):
            run_ids = self.tracker.trial_run_ids if self.tracker is not None else {}
            self._record(run, trial, run_ids.get(trial.number))

    def on_search_complete(self, run, winner):
        if winner is None or trial_facts.is_baseline(winner):
            return
        self.written = self._record(run, winner, self.tracker.parent_id if self.tracker else None)
