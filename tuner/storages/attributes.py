"""Every attribute the tuner stores in an Optuna study, in one place, with typed access.

Rules:

- A study's own facts are study user attributes (``StudyKey``); a trial's record, configuration
  and provenance are trial user attributes (``TrialKey``). The string values are the storage
  format: never rename one (old studies hold them).
- Read and write them through ``get``/``put`` (study) and ``trial_get``/``trial_put`` (trial),
  never with string literals, so that every key a module uses is listed here.
- Values are JSON (what Optuna stores): dicts, lists, strings, numbers, booleans.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any

import optuna
from optuna.trial import FrozenTrial


class StudyKey(StrEnum):
    """Study user attributes."""

    TARGET = "target"                   # TuningTarget.to_dict(): model, batch, image size, device
    MODEL_INFO = "model_info"           # model.json of the prepared assets (fingerprint, workloads)
    WEIGHTS_SEED = "weights_seed"       # seed of the random weights and input
    OBJECTIVES = "objectives"           # objective names, in the study's direction order
    NOISE = "machine_noise"             # the last invocation's machine noise at its start
    VALIDATION = "validation"           # ValidationReport.to_dict() of the last validation
    MLFLOW_PARENT_RUN = "mlflow_parent_run_id"  # the study's one MLflow parent run
    SPACE = "search_space"              # the search space file the study was created with
    MEASURE = "measure_settings"        # MeasureSettings.to_dict() of the study's creator
    HOST = "host"                       # Host.to_dict() of the machine that created the study
    STARTING_POINTS = "starting_points_enqueued"  # True once default/records/screening enqueued
    STUDY_TRIALS = "study_trials"       # --study-trials: the study ends at this many trials
    ENDED_BY = "ended_by"               # the worker that validated and exported, and when
    JOINS = "workers_joined"            # how many worker invocations joined the study so far
    SCREENED = "screened_workloads"     # [KernelChoice.to_dict(), ...] whose neighbours were
                                        # enqueued
    INCUMBENT = "screening_incumbent"   # the trial whose neighbours workload screening enqueues


class TrialKey(StrEnum):
    """Trial user attributes."""

    RESULT = "result"                   # TrialResult.to_dict()
    CONFIG = "config"                   # TuningConfig.to_dict()
    BASELINE = "baseline"               # True for a host's untuned baseline
    CONFIG_HASH = "config_hash"         # TuningConfig.canonical_hash()
    REUSED_FROM = "reused_from"         # the earlier trial whose record this one reuses
    ORIGIN = "origin"                   # why it was enqueued: default, tuning_records,
                                        # screening, workload_screening
    SPEEDUP = "speedup"                 # throughput / the measuring host's baseline throughput
    WARM_START = "warm_start_from"      # workload -> "study#trial" of the tuning record used
    REPAIRED = "repaired_kernels"       # workloads whose kernel parameters the space repaired
    HOST = "host"                       # Host.to_dict() of the machine that measured it
    WORKER = "worker"                   # "host:pid:start" of the process that ran it
    FOCUS = "workload_focus"            # {guide: trial number, workloads: [keys drawn]}
    SCREENED_FROM = "screened_from"     # {incumbent: trial number, workload: key} it moved


def get(study: optuna.Study, key: StudyKey, default: Any = None) -> Any:
    return study.user_attrs.get(key.value, default)


def put(study: optuna.Study, key: StudyKey, value: Any) -> None:
    study.set_user_attr(key.value, value)


def trial_get(trial: FrozenTrial | optuna.Trial, key: TrialKey, default: Any = None) -> Any:
    return trial.user_attrs.get(key.value, default)


def trial_put(trial: optuna.Trial, key: TrialKey, value: Any) -> None:
    trial.set_user_attr(key.value, value)


def has(holder: optuna.Study | FrozenTrial | optuna.Trial, key: StudyKey | TrialKey) -> bool:
    return key.value in holder.user_attrs
