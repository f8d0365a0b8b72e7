"""Comparable measurements across hosts: who may join, and what a heterogeneous host tells."""
import optuna
import pytest

from tuner.errors import UsageError
from tuner.models import TuningTarget
from tuner.trial.measurement import MeasureSettings
from tuner.trial.result import Status, TrialResult
from tuner.space import load_space
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.study.batches import _normaliser
from tuner.study.hosts import Host, check_joins
from tuner.study.objectives import parse_objectives
from tuner.study.run import StudyRun
from tuner.study.settings import StudySettings
from tests.fixtures.records import metrics

STUDY_HOST = Host("a", "CPU X", 2)
OTHER_CPU = Host("b", "CPU Y", 8)


def test_a_host_with_another_cpu_or_core_count_joins_only_when_allowed():
    check_joins(Host("c", "CPU X", 2), STUDY_HOST, allow_heterogeneous=False)  # name may differ
    for host in (OTHER_CPU, Host("d", "CPU X", 4)):
        with pytest.raises(UsageError, match="differs from the study's host a .CPU X, 2 cores."):
            check_joins(host, STUDY_HOST, allow_heterogeneous=False)
        check_joins(host, STUDY_HOST, allow_heterogeneous=True)


def _baseline(study, host: Host, images_per_second: float) -> None:
    result = TrialResult(Status.OK, metrics(images_per_second))
    study.add_trial(optuna.trial.create_trial(value=images_per_second, user_attrs={
        TrialKey.BASELINE.value: True, TrialKey.HOST.value: host.to_dict(),
        TrialKey.RESULT.value: result.to_dict()}))


def test_a_heterogeneous_host_tells_speed_in_the_study_hosts_units(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("version: 1\ndevice: CPU\nknobs:\n"
                     "  rewrites.fold_batchnorm: {type: categorical, choices: [none, all], "
                     "default: none}\n")
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(StudyKey.HOST.value, STUDY_HOST.to_dict())
    _baseline(study, STUDY_HOST, 100.0)
    _baseline(study, OTHER_CPU, 400.0)  # a machine 4x faster untuned
    throughput, latency, memory = parse_objectives(["throughput", "latency", "memory"])

    def run_on(host):
        return StudyRun(study, TuningTarget("m"), load_space(space), (throughput,),
                        MeasureSettings(), StudySettings(allow_heterogeneous=True), tmp_path,
                        host=host)

    other = run_on(OTHER_CPU)
    assert _normaliser(other, throughput) == pytest.approx(0.25)  # 800 images/s there: 2x = 200
    assert _normaliser(other, latency) == pytest.approx(4.0)
    assert _normaliser(other, memory) == 1.0  # not a speed: as measured
    assert _normaliser(run_on(Host("c", "CPU X", 2)), throughput) == 1.0  # comparable host
    assert trial_facts.trial_host_key(other.baseline()) == OTHER_CPU.key
