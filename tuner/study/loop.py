"""The ask-and-tell loop: one isolated process per trial, results told to Optuna, callbacks.

Every host's untuned baseline is its first trial; every trial's record, configuration, host
and speedup over its host's baseline are stored as Optuna user attributes, so a study can be
resumed, joined from other machines, exported and browsed from its storage alone. How a worker
joins (tuner.study.run), what the study starts from (tuner.study.starting_points), a batch of
trials (tuner.study.batches), liveness (tuner.storages.liveness) and the end of a study
(tuner.study.ending) live beside this module.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Sequence

import optuna
from optuna.trial import TrialState

from tuner.errors import UsageError
from tuner.trial.result import TrialResult
from tuner.storages import trial_facts
from tuner.storages.liveness import Heartbeat, ask, fail_stale, grace_seconds, retried_from
from tuner.study.batches import run_batch, tell
from tuner.study.ending import FINISHED, claim_end, end_study
from tuner.study.run import StudyRun, open_run
from tuner.study.settings import StudySettings
from tuner.study.study_callback import StudyCallback
from tuner.study.starting_points import (BaselineState, baseline_state, claim_baseline,
                                         enqueue_starting_points)
from tuner.study.workload_screening import enqueue_workload_screening

BASELINE_POLL_SECONDS = 1.0

__all__ = ["StudyRun", "StudySettings", "open_run", "run_trials"]


def _run_and_tell(run: StudyRun, batch: list[optuna.Trial],
                  callbacks: Sequence[StudyCallback]) -> None:
    """Measure and tell a batch, heartbeats running; what was not told when an exception
    (Ctrl-C) stops it is told FAIL."""
    told: set[int] = set()
    try:
        with Heartbeat(run.study, batch), contextlib.closing(run_batch(run, batch)) as outcomes:
            for trial, config, result in outcomes:
                told.add(trial.number)
                try:
                    tell(run, trial, config, result)
                except optuna.exceptions.UpdateFinishedTrialError:
                    print(f"trial {trial.number}: already failed by another worker (no heartbeat "
                          f"for the grace period); its retry measures it again", file=sys.stderr)
                    continue
                _trial_ended(run, trial.number, result, callbacks)
    except BaseException:
        for trial in batch:
            if trial.number not in told:
                run.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise


def _baseline_first(run: StudyRun, claimed: optuna.Trial | None,
                    callbacks: Sequence[StudyCallback]) -> int:
    """Measure this host's baseline (claimed, or claimed once another worker's was lost), or
    wait until another worker of this host has; the number of trials this worker ran."""
    while claimed is None:
        with run.lock():
            state = baseline_state(run)
            if state is BaselineState.MISSING:
                claimed = claim_baseline(run)
        if state in (BaselineState.MEASURED, BaselineState.QUEUED):
            return 0
        if claimed is None:
            time.sleep(BASELINE_POLL_SECONDS)
            fail_stale(run.study)
    _run_and_tell(run, [claimed], callbacks)
    return 1


def _ask(run: StudyRun, wanted: int, remaining: int = 0) -> list[optuna.Trial]:
    """Up to ``wanted`` trials, within what the study still needs (``--study-trials``: counted
    over finished and running trials, under the lock so that workers never overshoot); when no
    trial waits, half of this worker's ``remaining`` trials at most go to workload screening."""
    fail_stale(run.study)
    with run.lock("ask"):
        if run.settings.screen_workloads:
            enqueue_workload_screening(run.study, run.space, remaining // 2)
        if run.study_trials:
            taken = len(run.study.get_trials(deepcopy=False,
                                             states=(*FINISHED, TrialState.RUNNING)))
            wanted = min(wanted, run.study_trials - taken)
        return [ask(run.study) for _ in range(max(wanted, 0))]


def _drain(run: StudyRun, callbacks: Sequence[StudyCallback]) -> int:
    """After this worker's own trials: re-run the retries of trials whose worker was lost, and
    wait for the trials other workers are running (with ``--study-trials`` until none runs: the
    study is complete or some are retried; otherwise for a few grace periods, the time after
    which a dead worker's trial is failed). How many trials it ran."""
    grace = grace_seconds(run.study._storage)
    # a silent trial is adopted after one grace period and failed after another (liveness)
    ran, deadline, announced = 0, time.monotonic() + 2.5 * grace, False
    while True:
        fail_stale(run.study)
        trials = run.study.get_trials(deepcopy=False, states=(TrialState.WAITING,
                                                              TrialState.RUNNING))
        if any(t.state == TrialState.WAITING and retried_from(t) is not None for t in trials):
            batch = _ask(run, 1)
            if batch:
                _run_and_tell(run, batch, callbacks)
                ran += 1
                continue
        running = [t.number for t in trials if t.state == TrialState.RUNNING]
        if not running or (not run.study_trials and time.monotonic() > deadline):
            return ran
        if not announced:
            print(f"waiting for trials {running} of other workers (a lost worker's trial is "
                  f"failed and re-run after {grace:g} s without heartbeat)", file=sys.stderr)
            announced = True
        time.sleep(BASELINE_POLL_SECONDS)


def run_trials(run: StudyRun, n_trials: int, callbacks: Sequence[StudyCallback] = ()) -> None:
    """Run up to ``n_trials`` more trials (fewer if the search timeout passes or the study has
    its ``--study-trials``); this host's baseline first. With ``settings.jobs`` > 1 trials are
    asked in batches of that size (see tuner.study.batches). Then, if this worker finishes the
    study (tuner.study.ending), validate and export."""
    for callback in callbacks:  # before any trial: a callback refusing to start costs none
        callback.on_study_start(run)
    started = time.monotonic()
    try:
        with run.lock():
            claimed = claim_baseline(run) if baseline_state(run) is BaselineState.MISSING else None
            enqueue_starting_points(run, n_trials)
        done = _baseline_first(run, claimed, callbacks)
        while done < n_trials:
            if run.settings.search_timeout and time.monotonic() - started > run.settings.search_timeout:
                break
            batch = _ask(run, min(run.settings.jobs, n_trials - done), n_trials - done)
            if not batch:
                break
            done += len(batch)
            _run_and_tell(run, batch, callbacks)
        _drain(run, callbacks)
        if claim_end(run):
            run.ended = True
            end_study(run, callbacks)
        else:
            print(f"study {run.study.study_name}: validation and export are left to another "
                  f"worker (the one that finishes the study's last trial) or to python -m "
                  f"tuner.validate --study-name {run.study.study_name}", file=sys.stderr)
    finally:
        for callback in callbacks:
            callback.on_study_end(run)


def _trial_ended(run: StudyRun, number: int, result: TrialResult,
                 callbacks: Sequence[StudyCallback]) -> None:
    run.trials_this_session += 1
    frozen = run.study.get_trials(deepcopy=False)[number]
    for callback in callbacks:
        callback.on_trial_end(run, frozen, result)
    if trial_facts.is_baseline(frozen) and result.metrics is None:
        last = result.error.strip().splitlines()[-1] if result.error.strip() else ""
        raise UsageError(f"the untuned baseline failed ({result.status.value}): {last}")
