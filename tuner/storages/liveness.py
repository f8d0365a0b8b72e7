"""Liveness of running trials: Optuna's RDB heartbeat, driven by the ask-and-tell loop.

Rules:

- The storage is opened with ``heartbeat_interval`` and ``grace_period`` (``storage_options``);
  while a worker runs trials, a daemon thread records a heartbeat for each every interval
  (``Heartbeat``): ``study.optimize`` would, our ask-and-tell loop does it itself.
- Before every ask (and while waiting for a host's baseline or other workers' trials) the
  worker calls Optuna's ``fail_stale_trials``: a RUNNING trial whose heartbeat is older than the grace period (its
  worker was killed, its machine lost) is marked FAIL, by whichever worker asks first.
- A failed-stale trial's configuration is run again once (``RetryStale``: Optuna's
  ``RetryHeartbeatStaleTrialCallback`` with ``max_retry=1``), as a WAITING trial with its
  parameters and attributes; a host's untuned baseline is not re-enqueued (another worker could
  pop it): the next worker of that host claims a new one (tuner.study.starting_points).
- A RUNNING trial with no heartbeat at all (its worker died before its first beat; a study
  from before heartbeats) is given one by a worker that has seen it RUNNING for a grace
  period, so that it too is failed a grace period later (all workers of a study must run a
  tuner with heartbeats).
- With the same storage, a resumed single-machine study behaves the same: its killed trial is
  failed and re-run once the grace period has passed.
"""
from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Iterable

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from tuner.storages import trial_facts

DEFAULT_HEARTBEAT_SECONDS = 10
GRACE_HEARTBEATS = 3  # a trial is stale after this many missed heartbeats


class RetryStale(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a heartbeat-stale trial, once, except for baselines (see module)."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(max_retry=1)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not trial_facts.is_baseline(trial):
            super().__call__(study, trial)


def storage_options(heartbeat_seconds: int | None) -> dict[str, Any]:
    """RDBStorage keyword arguments for heartbeats every ``heartbeat_seconds`` (None: off)."""
    if not heartbeat_seconds:
        return {}
    return {"heartbeat_interval": int(heartbeat_seconds),
            "grace_period": int(heartbeat_seconds) * GRACE_HEARTBEATS,
            "heartbeat_stale_trial_callback": RetryStale()}


def grace_seconds(storage) -> float:
    """How long a running trial may go without a heartbeat (0: no heartbeats)."""
    backend = getattr(storage, "_backend", storage)
    interval = getattr(backend, "heartbeat_interval", None)
    return float(getattr(backend, "grace_period", None) or 2 * (interval or 0))


_SEEN: dict[str, dict[int, float]] = {}  # study -> RUNNING trial id -> when first seen / adopted


def _adopt_silent(study: optuna.Study, grace: float) -> None:
    """Optuna never fails a trial that has no heartbeat at all (one left RUNNING by a worker
    that died before its first beat, or by a tuner before heartbeats). A trial still RUNNING a
    grace period after this process first saw it gets one heartbeat from it, once: a live
    worker's own beats keep it alive, a silent one is failed a grace period later."""
    seen = _SEEN.setdefault(study.study_name, {})
    now = time.monotonic()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        first = seen.setdefault(trial._trial_id, now)
        if first != float("inf") and now - first > grace:
            seen[trial._trial_id] = float("inf")
            study._storage.record_heartbeat(trial._trial_id)


def fail_stale(study: optuna.Study) -> None:
    """Optuna's fail_stale_trials, then silent RUNNING trials adopted (a no-op without
    heartbeats)."""
    grace = grace_seconds(study._storage)
    if not grace:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    _adopt_silent(study, grace)


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` without Optuna's warning that heartbeats are meant for ``optimize``: this
    loop records them itself (``Heartbeat``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


def retried_from(trial: FrozenTrial) -> int | None:
    """The trial whose configuration this one re-runs after its worker was lost."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


class Heartbeat:
    """``with Heartbeat(study, trials):`` records a heartbeat for each trial at once and then
    every heartbeat interval from a daemon thread until the block ends. A storage error in the
    thread is ignored (the next beat retries); without heartbeats configured it does nothing."""

    def __init__(self, study: optuna.Study, trials: Iterable[optuna.Trial]):
        self.storage = study._storage
        self.trial_ids = [t._trial_id for t in trials]
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        for trial_id in self.trial_ids:
            try:
                self.storage.record_heartbeat(trial_id)
            except Exception:  # a lost connection: the next beat tries again
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def __enter__(self) -> "Heartbeat":
        if self.interval:
            self._beat()
            self._thread = threading.Thread(target=self._run, name="tuner-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
