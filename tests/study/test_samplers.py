import optuna
import pytest

from tuner.errors import UsageError
from tuner.study.samplers import make_sampler


def _draws(study, n):
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0, 1) + trial.suggest_int("tile", 1, 64))
    return [t.params for t in study.trials[-n:]]


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_a_resumed_study_does_not_replay_its_first_draws(name):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s", sampler=make_sampler(name, 0, 1))
    first = _draws(study, 4)
    resumed = optuna.load_study(study_name="s", storage=storage,
                                sampler=make_sampler(name, 0, 1, len(study.trials)))
    assert not any(params in first for params in _draws(resumed, 4))


def test_the_same_seed_and_history_give_the_same_draws():
    studies = [optuna.create_study(sampler=make_sampler("random", 3, 1, 5)) for _ in range(2)]
    assert _draws(studies[0], 3) == _draws(studies[1], 3)


def test_multi_objective_cmaes_is_refused():
    with pytest.raises(UsageError, match="single objective"):
        make_sampler("cmaes", 0, 2)
