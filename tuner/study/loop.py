"""The ask-and-tell loop: one isolated process per trial, results told to Optuna, callbacks.

The untuned baseline is the first trial of every study; every trial's record, configuration and
speedup over the baseline are stored as Optuna user attributes, so a study can be resumed,
exported and browsed from its storage alone.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.callbacks.base import StudyCallback
from tuner.config import TuningConfig
from tuner.errors import UsageError
from tuner.models import TuningTarget
from tuner.runner.isolate import run_compiled_together, run_isolated
from tuner.runner.measurement import MeasureSettings, machine_noise
from tuner.runner.record import Status, TrialResult
from tuner.runner.request import MODEL_INFO_FILE, REFERENCE_FILE, TrialRequest
from tuner.space import SearchSpace
from tuner.study import records
from tuner.study.objectives import Objective
from tuner.kernels.build import compiler_version
from tuner.study.tuning_records import Toolchain, TuningRecordStore
from tuner.study.validation import MIN_ROUNDS, validate_winners

TARGET_ATTR = "target"
MODEL_INFO_ATTR = "model_info"
SPEEDUP_ATTR = "speedup"
WEIGHTS_SEED_ATTR = "weights_seed"
OBJECTIVES_ATTR = "objectives"
WARM_START_ATTR = "warm_start_from"
NOISE_ATTR = "machine_noise"  # the last invocation's machine noise at its start


@dataclass(frozen=True)
class StudySettings:
    """How the loop runs trials: per-trial timeout (s), whole-search timeout (s, None = no
    limit), the seed of the model's random weights and input, whether to save graph op counts,
    and how many top configurations to re-measure in how many interleaved rounds at the end
    (0 = no validation; see tuner.study.validation); a trial whose peak memory exceeds
    ``max_memory_mb`` is a constraint violation (measured, kept, never a winner). With
    ``warm_start``, a new study first tries the tuning records of its kernel workloads. ``jobs``
    trials compile at once; their timed runs still happen one trial at a time. With
    ``start_from_default`` the baseline is followed by the space's default, its variant with the
    tuning records, and the default's one-knob neighbours (``SearchSpace.one_knob_neighbours``:
    each top-level knob flipped on its own, in place of the random trials a sampler such as TPE
    starts with); without it only the baseline is enqueued and the sampler picks the rest."""

    trial_timeout: float = 300.0
    search_timeout: float | None = None
    weights_seed: int = 0
    dump_graph: bool = False
    keep_trial_dirs: bool = False
    validate_top: int = 3
    validation_rounds: int = 3
    max_memory_mb: float | None = None
    warm_start: bool = True
    jobs: int = 1
    start_from_default: bool = True

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError(f"--jobs {self.jobs}: must be at least 1")
        if self.validate_top < 0:
            raise UsageError(f"--validate-top {self.validate_top}: must be 0 (off) or more")
        if self.validate_top and self.validation_rounds < MIN_ROUNDS:
            raise UsageError(f"--validation-rounds {self.validation_rounds}: must be at least "
                             f"{MIN_ROUNDS} (one round bounds no interval)")


@dataclass
class StudyRun:
    """Everything callbacks may read about the running study."""

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

    def toolchain(self) -> Toolchain:
        compiler = (compiler_version().strip().splitlines() or [""])[0]
        return Toolchain(self.model_info.get("cpu_model", ""), compiler,
                         self.model_info.get("mindspore_version", ""))

    @property
    def assets_dir(self) -> Path:
        return self.directory / "assets"

    @property
    def kernel_space(self) -> str:
        """The kernel parameter file the search space names ("" for none)."""
        source = self.space.kernels.source if self.space.kernels else None
        return str(source) if source else ""

    def baseline(self) -> FrozenTrial | None:
        return records.baseline_trial(self.study.get_trials(deepcopy=False))

    def best_trials(self) -> list[FrozenTrial]:
        """Ok trials, best first by the first objective (the Pareto set first when several)."""
        return records.ranked_trials(self.study)


def _prepare_assets(run: StudyRun) -> None:
    info_path = run.assets_dir / MODEL_INFO_FILE
    if not (info_path.exists() and (run.assets_dir / REFERENCE_FILE).exists()):
        request = TrialRequest("prepare", run.target, str(run.assets_dir),
                               seed=run.settings.weights_seed, kernel_space=run.kernel_space)
        result = run_isolated(request, run.directory / "prepare", run.settings.trial_timeout)
        if result.status is Status.USAGE_ERROR:
            raise UsageError(result.error)
        if not result.ok:
            last = result.error.strip().splitlines()[-1] if result.error.strip() else ""
            raise UsageError(f"--model {run.target.model}: the untuned model could not be built "
                             f"and run ({result.status.value}: {last}); "
                             f"see {run.directory / 'prepare' / 'stderr.txt'}")
    run.model_info = json.loads(info_path.read_text())


def open_run(study: optuna.Study, target: TuningTarget, space: SearchSpace,
             objectives: tuple[Objective, ...], measure: MeasureSettings,
             settings: StudySettings, directory: Path,
             records: TuningRecordStore | None = None) -> StudyRun:
    """Prepare the model's assets (once per study) and record the target in the study."""
    run = StudyRun(study, target, space, objectives, measure, settings, directory.resolve(),
                   records=records)
    stored = study.user_attrs.get(TARGET_ATTR)
    if stored and stored != target.to_dict():
        raise UsageError(f"study {study.study_name} was created for {stored}, not {target.to_dict()}")
    _prepare_assets(run)
    run.space = space.for_model(run.model_info)
    study.set_user_attr(TARGET_ATTR, target.to_dict())
    study.set_user_attr(MODEL_INFO_ATTR, run.model_info)
    study.set_user_attr(WEIGHTS_SEED_ATTR, settings.weights_seed)
    study.set_user_attr(OBJECTIVES_ATTR, [o.name for o in objectives])
    run.noise = machine_noise()
    study.set_user_attr(NOISE_ATTR, run.noise)
    return run


def _enqueue_starting_points(run: StudyRun, n_trials: int) -> None:
    """Baseline, default and tuning-record trials; then as many one-knob neighbours as the
    remaining trials of this invocation allow (none left waiting in the storage)."""
    trials = run.study.get_trials(deepcopy=False)
    if run.baseline() is None and not any(t.state == TrialState.WAITING for t in trials):
        run.study.enqueue_trial(run.space.params_for(TuningConfig()),
                                user_attrs={records.BASELINE_ATTR: True})
        if trials or not run.settings.start_from_default:
            return
        default = run.space.default_config()
        if default != TuningConfig():
            run.study.enqueue_trial(run.space.params_for(default),
                                    user_attrs={records.ORIGIN_ATTR: "default"})
            _enqueue_warm_start(run, default)
        room = n_trials - records.trial_count(run.study)
        for neighbour in run.space.one_knob_neighbours(default)[:max(room, 0)]:
            run.study.enqueue_trial(run.space.params_for(neighbour),
                                    user_attrs={records.ORIGIN_ATTR: "screening"})


def _enqueue_warm_start(run: StudyRun, default: TuningConfig) -> None:
    """The space's default with every kernel workload that has a tuning record on this
    toolchain set to the recorded tiling (see tuner.study.tuning_records)."""
    if not (run.settings.warm_start and run.records and run.space.kernels and default.kernels):
        return
    groups = {g.key: g for g in run.space.kernels.workloads}
    found = run.records.best_choices(
        ((c.workload, groups[c.workload].workload.batchless_key, c.kernel)
         for c in default.kernels if c.workload in groups), run.toolchain())
    if not found:
        return
    kernels = tuple(found.get(c.workload, (c, ""))[0] for c in default.kernels)
    run.study.enqueue_trial(run.space.params_for(dataclasses.replace(default, kernels=kernels)),
                            user_attrs={WARM_START_ATTR: {k: src for k, (_, src) in found.items()},
                                        records.ORIGIN_ATTR: "tuning_records"})


def _plan(run: StudyRun, trial: optuna.Trial) -> tuple[TuningConfig, TrialResult | None]:
    """Suggest a configuration; its record already when it breaks a restriction (refused) or
    when this study measured the same canonical configuration before (reused); else None."""
    config = run.space.suggest(trial)
    invalid = run.space.invalid_reason(config)
    if invalid:
        return config, TrialResult(Status.INVALID_CONFIG, error=invalid)
    return config, _reused(run, trial, config)


def _reused(run: StudyRun, trial: optuna.Trial, config: TuningConfig) -> TrialResult | None:
    earlier = records.measured_before(run.study.get_trials(deepcopy=False), config)
    if earlier is None or trial.user_attrs.get(records.BASELINE_ATTR):
        return None
    trial.set_user_attr(records.REUSED_FROM_ATTR, earlier.number)
    return records.trial_result(earlier)


def _request(run: StudyRun, config: TuningConfig) -> TrialRequest:
    return TrialRequest("measure", run.target, str(run.assets_dir), config=config,
                        measure=run.measure, seed=run.settings.weights_seed,
                        dump_graph=run.settings.dump_graph, kernel_space=run.kernel_space)


def _with_constraints(run: StudyRun, result: TrialResult) -> TrialResult:
    limit = run.settings.max_memory_mb
    if result.ok and limit is not None and result.metrics.peak_memory_mb > limit:
        result = dataclasses.replace(
            result, status=Status.CONSTRAINT_VIOLATED,
            error=f"peak memory {result.metrics.peak_memory_mb:.0f} MiB > --max-memory-mb {limit:g}")
    return result


def _run_batch(run: StudyRun, trials: list[optuna.Trial]
               ) -> Iterator[tuple[optuna.Trial, TuningConfig, TrialResult]]:
    """Each trial's configuration and record, in order, the caller telling each to the study
    before the next is timed. The trials that need measuring compile together and are timed
    one at a time (run_compiled_together); a configuration that occurs twice in the batch is
    measured once and reused."""
    planned = [(trial, *_plan(run, trial)) for trial in trials]
    to_measure, hashes = [], set()
    for trial, config, result in planned:
        if result is None and config.canonical_hash() not in hashes:
            hashes.add(config.canonical_hash())
            to_measure.append(trial.number)
    workdir = run.directory / "trials"
    by_number = {trial.number: (trial, config) for trial, config, _ in planned}
    with contextlib.closing(run_compiled_together(
            [(_request(run, by_number[n][1]), workdir / str(n),
              _pruning_reporter(run, by_number[n][0])) for n in to_measure],
            run.settings.trial_timeout)) as measured:
        for trial, config, result in planned:
            if result is None and trial.number not in to_measure:
                result = _reused(run, trial, config)
            if result is None:
                if trial.number not in to_measure:  # its twin in the batch gave no measurement
                    result = run_isolated(_request(run, config), workdir / str(trial.number),
                                          run.settings.trial_timeout, _pruning_reporter(run, trial))
                else:
                    result = next(measured)
                result = _with_constraints(run, result)
                if not run.settings.keep_trial_dirs and result.ok:
                    shutil.rmtree(workdir / str(trial.number), ignore_errors=True)
            yield trial, config, result


def _pruning_reporter(run: StudyRun, trial: optuna.Trial):
    """Report each timed run's running objective to Optuna and ask whether to prune; None where
    pruning does not apply (the baseline, several objectives, the memory objective)."""
    objective = run.objectives[0]
    if (len(run.objectives) > 1 or not objective.is_speed
            or trial.user_attrs.get(records.BASELINE_ATTR)):
        return None

    def report(entry: dict) -> bool:
        median = entry["median_s"]
        value = run.target.batch_size / median if objective.name == "throughput" else median * 1e3
        trial.report(value, entry["runs"])
        return trial.should_prune()
    return report


def _tell(run: StudyRun, trial: optuna.Trial, config: TuningConfig, result: TrialResult) -> None:
    baseline = bool(trial.user_attrs.get(records.BASELINE_ATTR))
    for key, value in records.store_attrs(result, config, baseline).items():
        trial.set_user_attr(key, value)
    if not result.ok:
        # Pruned, never failed: TPE and Optuna's other model-based samplers ignore failed trials
        # and would keep suggesting what crashes, while a pruned trial without intermediate
        # values ranks as the worst, which teaches them to avoid it. The record keeps the status.
        run.study.tell(trial, state=TrialState.PRUNED)
        return
    base = run.baseline()
    base_ips = (records.trial_result(base).metrics.throughput_ips if base else
                result.metrics.throughput_ips if baseline else None)
    if base_ips:
        trial.set_user_attr(SPEEDUP_ATTR, result.metrics.throughput_ips / base_ips)
    run.study.tell(trial, [o.value(result.metrics) for o in run.objectives])


def run_trials(run: StudyRun, n_trials: int, callbacks: Sequence[StudyCallback] = ()) -> None:
    """Run ``n_trials`` more trials (fewer if the search timeout passes); the baseline first.
    With ``settings.jobs`` > 1 trials are asked in batches of that size (see _run_batch)."""
    _enqueue_starting_points(run, n_trials)
    for callback in callbacks:
        callback.on_study_start(run)
    started = time.monotonic()
    try:
        done = 0
        while done < n_trials:
            if run.settings.search_timeout and time.monotonic() - started > run.settings.search_timeout:
                break
            batch = [run.study.ask() for _ in range(min(run.settings.jobs, n_trials - done))]
            done += len(batch)
            told: set[int] = set()
            try:
                with contextlib.closing(_run_batch(run, batch)) as outcomes:
                    for trial, config, result in outcomes:
                        _tell(run, trial, config, result)
                        told.add(trial.number)
                        _trial_ended(run, trial.number, result, callbacks)
            except BaseException:
                for trial in batch:
                    if trial.number not in told:
                        run.study.tell(trial, state=TrialState.FAIL)
                raise
        report = (validate_winners(run, run.settings.validate_top, run.settings.validation_rounds)
                  if run.objectives[0].is_speed else None)
        if report is not None:
            for callback in callbacks:
                callback.on_validated(run, report)
        winner = _exported_trial(run, report)
        for callback in callbacks:
            callback.on_search_complete(run, winner)
    finally:
        for callback in callbacks:
            callback.on_study_end(run)


def _exported_trial(run: StudyRun, report) -> FrozenTrial | None:
    """The validated winner, else the best ok trial (what the export will write)."""
    if report is not None:
        return run.study.get_trials(deepcopy=False)[report.winner]
    best = run.best_trials()
    return best[0] if best else None


def _trial_ended(run: StudyRun, number: int, result: TrialResult,
                 callbacks: Sequence[StudyCallback]) -> None:
    run.trials_this_session += 1
    frozen = run.study.get_trials(deepcopy=False)[number]
    for callback in callbacks:
        callback.on_trial_end(run, frozen, result)
    if records.is_baseline(frozen) and result.metrics is None:
        last = result.error.strip().splitlines()[-1] if result.error.strip() else ""
        raise UsageError(f"the untuned baseline failed ({result.status.value}): {last}")
