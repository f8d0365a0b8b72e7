"""Running a batch of asked trials and telling Optuna what each measured.

Rules:

- A trial records its host and worker before it runs (so that a lost one is attributable), what
  the space did to draw it (its focus and repairs, tuner.study.guide), its record and
  configuration when it ends (tuner.storages.trial_facts).
- Failures are results: a failed trial is told PRUNED (see ``tell``), never raised.
- Every speedup is relative to the untuned baseline of the host that measured the trial. On a
  host incomparable with the study's (``--allow-heterogeneous``), speed objectives are told
  normalised: value x (the study host's baseline value / this host's), the study's units.
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
from typing import Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.config import TuningConfig
from tuner.runner.isolate import run_compiled_together, run_isolated
from tuner.trial.protocol import UNDER_WAY, is_progress_step
from tuner.trial.result import Status, TrialResult
from tuner.trial.request import RequestKind, TrialRequest
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import TrialKey
from tuner.study.guide import suggest_config
from tuner.study.hosts import Host
from tuner.study.pruning import prunes_while_under_way
from tuner.study.run import StudyRun


def _plan(run: StudyRun, trial: optuna.Trial) -> tuple[TuningConfig, TrialResult | None]:
    """Suggest a configuration; its record already when it breaks a restriction (refused) or
    when this study measured the same canonical configuration before (reused); else None."""
    config = suggest_config(run.space, trial)
    invalid = run.space.invalid_reason(config)
    if invalid:
        return config, TrialResult(Status.INVALID_CONFIG, error=invalid)
    return config, _reused(run, trial, config)


def _reused(run: StudyRun, trial: optuna.Trial, config: TuningConfig) -> TrialResult | None:
    """An earlier record of the same configuration measured on this host (another host's
    timing is not this host's)."""
    earlier = trial_facts.measured_before(run.study.get_trials(deepcopy=False), config)
    if (earlier is None or attrs.trial_get(trial, TrialKey.BASELINE)
            or trial_facts.trial_host_key(earlier) not in (None, run.host.key)):
        return None
    attrs.trial_put(trial, TrialKey.REUSED_FROM, earlier.number)
    return trial_facts.trial_result(earlier)


def _request(run: StudyRun, trial: optuna.Trial, config: TuningConfig) -> TrialRequest:
    measure = (run.measure.for_baseline() if attrs.trial_get(trial, TrialKey.BASELINE)
               else run.measure)
    return TrialRequest(RequestKind.MEASURE, run.target, str(run.assets_dir), config=config,
                        measure=measure, seed=run.settings.weights_seed,
                        dump_graph=run.settings.dump_graph, kernel_space=run.kernel_space)


def _with_constraints(run: StudyRun, result: TrialResult) -> TrialResult:
    limit = run.settings.max_memory_mb
    if result.ok and limit is not None and result.metrics.peak_memory_mb > limit:
        result = dataclasses.replace(
            result, status=Status.CONSTRAINT_VIOLATED,
            error=f"peak memory {result.metrics.peak_memory_mb:.0f} MiB > --max-memory-mb {limit:g}")
    return result


def mark_started(run: StudyRun, trials: list[optuna.Trial]) -> None:
    for trial in trials:
        attrs.trial_put(trial, TrialKey.HOST, run.host.to_dict())
        attrs.trial_put(trial, TrialKey.WORKER, run.worker)


def run_batch(run: StudyRun, trials: list[optuna.Trial]
              ) -> Iterator[tuple[optuna.Trial, TuningConfig, TrialResult]]:
    """Each trial's configuration and record, in order, the caller telling each to the study
    before the next is timed. The trials that need measuring compile together and are timed
    one at a time (run_compiled_together); a configuration that occurs twice in the batch is
    measured once and reused."""
    mark_started(run, trials)
    planned = [(trial, *_plan(run, trial)) for trial in trials]
    to_measure, hashes = [], set()
    for trial, config, result in planned:
        if result is None and config.canonical_hash() not in hashes:
            hashes.add(config.canonical_hash())
            to_measure.append(trial.number)
    workdir = run.directory / "trials"
    by_number = {trial.number: (trial, config) for trial, config, _ in planned}
    with contextlib.closing(run_compiled_together(
            [(_request(run, *by_number[n]), workdir / str(n),
              _pruning_reporter(run, by_number[n][0])) for n in to_measure],
            run.settings.trial_timeout)) as measured:
        for trial, config, result in planned:
            if result is None and trial.number not in to_measure:
                result = _reused(run, trial, config)
            if result is None:
                if trial.number not in to_measure:  # its twin in the batch gave no measurement
                    result = run_isolated(_request(run, trial, config), workdir / str(trial.number),
                                          run.settings.trial_timeout, _pruning_reporter(run, trial))
                else:
                    result = next(measured)
                result = _with_constraints(run, result)
                if not run.settings.keep_trial_dirs and result.ok:
                    shutil.rmtree(workdir / str(trial.number), ignore_errors=True)
            yield trial, config, result


def _pruning_reporter(run: StudyRun, trial: optuna.Trial):
    """Report the running objective to Optuna after the last warmup run (step 0) and timed runs
    1, 2, 4, 8, ... (the same steps in every trial) and ask whether to prune (a warmup run still
    under way only once its length so far already prunes); None where pruning
    does not apply (the baseline, several objectives, the memory objective). Not after every
    run: each report is a storage transaction in this process while the trial is timed on the
    same cores, and reporting all of a 500-run trial's steps made its timings noisy (latency CV
    0.3 instead of 0.1)."""
    objective = run.objectives[0]
    if (len(run.objectives) > 1 or not objective.is_speed
            or attrs.trial_get(trial, TrialKey.BASELINE)):
        return None

    def report(entry: dict) -> bool:
        runs = entry["runs"]
        if not is_progress_step(runs):
            return False
        median = entry["median_s"]
        value = run.target.batch_size / median if objective.name == "throughput" else median * 1e3
        value *= _normaliser(run, run.objectives[0])
        if entry.get(UNDER_WAY) and not prunes_while_under_way(run.study, runs, value):
            return False
        trial.report(value, runs)
        return trial.should_prune()
    return report


def _reference_baseline(run: StudyRun) -> FrozenTrial | None:
    """The measured baseline of a host comparable with the study's (its units)."""
    study_host = run.study_host()
    for trial in run.study.get_trials(deepcopy=False):
        host = attrs.trial_get(trial, TrialKey.HOST)
        if trial_facts.is_measured_baseline(trial) and (
                study_host is None or host is None or Host.from_dict(host).comparable(study_host)):
            return trial
    return None


def _normaliser(run: StudyRun, objective) -> float:
    """1, or for a speed objective on an incomparable host: study baseline's / this host's."""
    study_host = run.study_host()
    if not objective.is_speed or study_host is None or run.host.comparable(study_host):
        return 1.0
    own, reference = run.baseline(), _reference_baseline(run)
    if own is None or reference is None:
        return 1.0
    return (objective.value(trial_facts.trial_result(reference).metrics)
            / objective.value(trial_facts.trial_result(own).metrics))


def tell(run: StudyRun, trial: optuna.Trial, config: TuningConfig, result: TrialResult) -> None:
    baseline = bool(attrs.trial_get(trial, TrialKey.BASELINE))
    for key, value in trial_facts.store_attrs(result, config, baseline).items():
        attrs.trial_put(trial, key, value)
    if not result.ok:
        # Pruned, never failed: TPE and Optuna's other model-based samplers ignore failed trials
        # and would keep suggesting what crashes, while a pruned trial without intermediate
        # values ranks as the worst, which teaches them to avoid it. The record keeps the status.
        run.study.tell(trial, state=TrialState.PRUNED)
        return
    base = run.baseline()
    base_ips = (trial_facts.trial_result(base).metrics.throughput_ips if base else
                result.metrics.throughput_ips if baseline else None)
    if base_ips:
        attrs.trial_put(trial, TrialKey.SPEEDUP, result.metrics.throughput_ips / base_ips)
    run.study.tell(trial, [o.value(result.metrics) * _normaliser(run, o) for o in run.objectives])
