"""Warm start: validated kernel tilings become records that seed new studies."""
import pytest
import optuna

from tuner.backends import get_backend
from tuner.callbacks.record_tuning import SaveTuningRecords
from tuner.config import KernelChoice
from tuner.kernels.workload import ConvWorkload, workload_from_dict
from tuner.models import TuningTarget
from tuner.trial.measurement import MeasureSettings
from tuner.space import load_space
from tuner.storages.attributes import TrialKey
from tuner.storages.tuning_records import Toolchain, TuningRecord, TuningRecordStore
from tuner.study.loop import StudySettings, open_run, run_trials
from tuner.study.objectives import parse_objectives

TOOLCHAIN = Toolchain("CPU X", "g++ 12", "2.10.0")


def test_lookup_prefers_the_same_workload_then_other_batches_and_never_other_toolchains(tmp_path):
    store = TuningRecordStore(f"sqlite:///{tmp_path / 'r.db'}")
    one, sixteen = (ConvWorkload(n, 64, 64, 56, 56, (3, 3), (1, 1), (1, 1, 1, 1)) for n in (1, 16))
    key1, key16, family = one.key, sixteen.key, one.batchless_key
    assert family == sixteen.batchless_key == "dense_c64_h56_w56_o64_k3x3_s1_p1"
    store.save([TuningRecord(key16, family, "conv2d_dense", {"unroll": 2}, TOOLCHAIN, "a", 3, 40.0),
                TuningRecord(key16, family, "conv2d_dense", {"unroll": 8}, TOOLCHAIN, "a", 5, 60.0),
                TuningRecord(key1, family, "conv2d_dense", {"unroll": 1}, TOOLCHAIN, "b", 1, 20.0),
                TuningRecord(key1, family, "conv2d_dense", {"unroll": 4},
                             Toolchain("CPU Y", "g++ 12", "2.10.0"), "c", 1, 99.0)])
    other = ConvWorkload(1, 3, 8, 9, 9, (1, 1), (1, 1), (0, 0, 0, 0))
    found = store.best_choices([(key1, family, "conv2d_dense"), (key16, family, "conv2d_dense"),
                                (other.key, other.batchless_key, "conv2d_dense")], TOOLCHAIN)
    assert found[key1] == (KernelChoice(key1, "conv2d_dense", (("unroll", 1),)), "b#1")
    assert found[key16][0].params == (("unroll", 8),) and found[key16][1] == "a#5"
    assert len(found) == 2
    other_machine = Toolchain("CPU Z", "g++ 12", "2.10.0")
    assert store.best_choices([(key1, family, "conv2d_dense")], other_machine) == {}


def _study(tmp_path, store, batch, name):
    space = load_space(get_backend("CPU").default_space_path())
    study = optuna.create_study(direction="maximize", study_name=name,
                                storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    target = TuningTarget("tests.fixtures.tiny_models:tiny_net", batch, 16)
    return open_run(study, target, space, parse_objectives(["throughput"]),
                    MeasureSettings(min_runs=2, min_seconds=0.0, max_seconds=2.0),
                    StudySettings(validate_top=1, validation_rounds=2), tmp_path / name, store)


@pytest.mark.slow
def test_a_validated_winner_seeds_a_study_at_another_batch_size(tmp_path):
    store = TuningRecordStore(f"sqlite:///{tmp_path / 'optuna.db'}")
    first = _study(tmp_path, store, 2, "first")
    saver = SaveTuningRecords(store)
    run_trials(first, 2, [saver])  # the baseline and the all-custom default: the latter wins
    winner = first.study.trials[first.study.user_attrs["validation"]["winner"]]
    winner_kernels = winner.user_attrs["config"]["kernels"]
    assert saver.saved == len(winner_kernels) > 0

    second = _study(tmp_path, store, 3, "second")
    run_trials(second, 3)
    warm = second.study.trials[2]  # baseline, space default, then the warm start
    sources = warm.user_attrs[TrialKey.WARM_START.value]
    assert set(sources.values()) == {f"first#{winner.number}"}
    families = {w["key"]: workload_from_dict(w["workload"]).batchless_key
                for run in (first, second) for w in run.model_info["workloads"]}
    by_shape = {families[k["workload"]]: k["params"] for k in winner_kernels}
    for choice in warm.user_attrs["config"]["kernels"]:
        if choice["workload"] in sources:
            assert choice["params"] == by_shape[families[choice["workload"]]]
