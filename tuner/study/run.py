"""A worker's view of a study (StudyRun) and joining it (open_run): the study's preparation.

Rules:

- ``open_run`` runs under the study's lock (tuner.storages.coordination): the first worker records
  the target, model info, objectives, space, measurement settings and its host in the study;
  a later worker checks that it tunes the same target and weights (model fingerprint) on a
  comparable host (tuner.study.hosts), else it is refused in one line.
- The model's assets (weights, fixed input, untuned reference output) are prepared once per
  study, under the same lock: on a database server they are then stored in the study's
  database and restored by the workers of other machines (tuner.storages.study_assets); with SQLite
  the workers sharing a runs dir share them. Assets prepared elsewhere must have the study's
  model fingerprint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tuner.errors import UsageError
from tuner.kernels.build import compiler_version
from tuner.models import TuningTarget
from tuner.runner.isolate import run_isolated
from tuner.trial.measurement import MeasureSettings, machine_noise
from tuner.trial.result import Status
from tuner.trial.request import MODEL_INFO_FILE, REFERENCE_FILE, RequestKind, TrialRequest
from tuner.space import SearchSpace
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey
from tuner.storages.coordination import study_lock
from tuner.storages.study_assets import study_assets
from tuner.storages.tuning_records import Toolchain, TuningRecordStore
from tuner.study.hosts import Host, check_joins, this_host, worker_id
from tuner.study.objectives import Objective
from tuner.study.settings import StudySettings


@dataclass
class StudyRun:
    """Everything callbacks may read about the running study, and who runs it."""

    study: optuna.Study
    target: TuningTarget
    space: SearchSpace
    objectives: tuple[Objective, ...]
    measure: MeasureSettings
    settings: StudySettings
    directory: Path
    model_info: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)
    trials_this_session: int = 0
    records: TuningRecordStore | None = None
    host: Host = field(default_factory=this_host)
    worker: str = ""
    joined_before: int = 0  # invocations that joined the study before this one
    ended: bool = False     # this worker ended the study (validated and exported)
    _study_host: Host | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.worker = self.worker or worker_id(self.host)

    def toolchain(self) -> Toolchain:
        """What this worker's tuning records are valid for: its own CPU (the assets may have
        been prepared on another machine), compiler and MindSpore."""
        compiler = (compiler_version().strip().splitlines() or [""])[0]
        return Toolchain(self.host.cpu_model, compiler,
                         self.model_info.get("mindspore_version", ""))

    @property
    def assets_dir(self) -> Path:
        return self.directory / "assets"

    @property
    def kernel_space(self) -> str:
        """The kernel parameter file the search space names ("" for none)."""
        source = self.space.kernels.source if self.space.kernels else None
        return str(source) if source else ""

    def lock(self, part: str = ""):
        """The study's lock in its database (tuner.storages.coordination)."""
        return study_lock(self.study, part)

    def study_host(self) -> Host | None:
        """The host that created the study (read once it is known: it never changes)."""
        if self._study_host is None:
            data = attrs.get(self.study, StudyKey.HOST)
            self._study_host = Host.from_dict(data) if data else None
        return self._study_host

    @property
    def study_trials(self) -> int | None:
        """The study's total number of trials (this worker's setting, else the study's)."""
        return self.settings.study_trials or attrs.get(self.study, StudyKey.STUDY_TRIALS)

    def baseline(self) -> FrozenTrial | None:
        """This host's measured untuned baseline (every speedup of its trials is relative to it)."""
        return trial_facts.baseline_trial(self.study.get_trials(deepcopy=False), self.host.key)

    def best_trials(self) -> list[FrozenTrial]:
        """Ok trials, best first by the first objective (the Pareto set first when several)."""
        return trial_facts.ranked_trials(self.study)


def _prepare_assets(run: StudyRun) -> None:
    """The local assets: there already, restored from the study's database, or prepared (and
    then stored there for the other machines; tuner.storages.study_assets)."""
    info_path = run.assets_dir / MODEL_INFO_FILE
    if not (info_path.exists() and (run.assets_dir / REFERENCE_FILE).exists()):
        stored = study_assets(run.study)
        if stored is None or not stored.restore(run.assets_dir):
            _prepare_here(run)
            if stored is not None:
                stored.save(run.assets_dir)
    run.model_info = json.loads(info_path.read_text())


def _prepare_here(run: StudyRun) -> None:
    request = TrialRequest(RequestKind.PREPARE, run.target, str(run.assets_dir),
                           seed=run.settings.weights_seed, kernel_space=run.kernel_space)
    result = run_isolated(request, run.directory / "prepare", run.settings.trial_timeout)
    if result.status is Status.USAGE_ERROR:
        raise UsageError(result.error)
    if not result.ok:
        last = result.error.strip().splitlines()[-1] if result.error.strip() else ""
        raise UsageError(f"--model {run.target.model}: the untuned model could not be built "
                         f"and run ({result.status.value}: {last}); "
                         f"see {run.directory / 'prepare' / 'stderr.txt'}")


def _check_joins(run: StudyRun) -> None:
    """The same target, weights and a comparable host as the study's (see module)."""
    study = run.study
    stored = attrs.get(study, StudyKey.TARGET)
    if stored and stored != run.target.to_dict():
        raise UsageError(f"study {study.study_name} was created for {stored}, "
                         f"not {run.target.to_dict()}")
    check_joins(run.host, run.study_host(), run.settings.allow_heterogeneous)


def _record_study(run: StudyRun) -> None:
    """What the first worker records; a later one only checks the model's fingerprint."""
    study, info = run.study, run.model_info
    known = attrs.get(study, StudyKey.MODEL_INFO)
    if known and known.get("fingerprint") != info.get("fingerprint"):
        raise UsageError(f"study {study.study_name}: this machine's model weights (fingerprint "
                         f"{info.get('fingerprint')}) differ from the study's "
                         f"({known.get('fingerprint')}); same --weights-seed and MindSpore?")
    defaults = {StudyKey.TARGET: run.target.to_dict(), StudyKey.MODEL_INFO: info,
                StudyKey.WEIGHTS_SEED: run.settings.weights_seed,
                StudyKey.OBJECTIVES: [o.name for o in run.objectives],
                StudyKey.SPACE: str(run.space.source), StudyKey.MEASURE: run.measure.to_dict(),
                StudyKey.HOST: run.host.to_dict()}
    if run.settings.study_trials:
        defaults[StudyKey.STUDY_TRIALS] = run.settings.study_trials
    stored = study.user_attrs  # one read
    for key, value in defaults.items():
        if key.value not in stored or (key is StudyKey.STUDY_TRIALS and stored[key.value] != value):
            attrs.put(study, key, value)


def open_run(study: optuna.Study, target: TuningTarget, space: SearchSpace,
             objectives: tuple[Objective, ...], measure: MeasureSettings,
             settings: StudySettings, directory: Path,
             records: TuningRecordStore | None = None, host: Host | None = None) -> StudyRun:
    """Join the study (see module): checks, assets, the study's attributes, under its lock."""
    run = StudyRun(study, target, space, objectives, measure, settings, directory.resolve(),
                   records=records, **({"host": host} if host else {}))
    run.noise = machine_noise()
    with run.lock():  # Optuna's attribute writes are not safe against a concurrent first write
        _check_joins(run)
        _prepare_assets(run)
        run.space = space.for_model(run.model_info)
        _record_study(run)
        run.joined_before = int(attrs.get(study, StudyKey.JOINS, 0))
        attrs.put(study, StudyKey.JOINS, run.joined_before + 1)
        attrs.put(study, StudyKey.NOISE, run.noise)
    return run
