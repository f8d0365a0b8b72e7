"""Liveness of running trials: heartbeats, a stale trial failed and its configuration retried once."""
import time

import optuna
from optuna.trial import TrialState

from tuner.storages.liveness import Heartbeat, RetryStale, ask, fail_stale, retried_from


def test_a_stale_trial_is_failed_and_its_configuration_retried_once(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat_interval=1,
                                         grace_period=1, heartbeat_stale_trial_callback=RetryStale())
    study = optuna.create_study(storage=storage)
    alive, dead = ask(study), ask(study)
    dead.suggest_int("x", 0, 9)
    storage.record_heartbeat(dead._trial_id)
    with Heartbeat(study, [alive]):
        time.sleep(2.2)
        fail_stale(study)
    study.tell(alive, 1.0)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    retry = ask(study)
    assert retry.params == dead.params and retried_from(study.trials[retry.number]) == dead.number
    storage.record_heartbeat(retry._trial_id)
    time.sleep(2.2)
    fail_stale(study)  # the retry dies too: not retried again (once)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] + [TrialState.FAIL] * 2
