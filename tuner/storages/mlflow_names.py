"""Every name a study has in MLflow, in one place: its experiment, the tags, parameters, metrics
and artifacts of its parent run and of each trial's nested run.

Rules:

- Code that writes to or reads from MLflow names tags, metrics and artifacts through these
  constants, never with string literals, so that every name is listed here.
- The values are what MLflow holds for existing studies (and what the UI and searches filter
  on): never rename one.
- A trial's parameters are its configuration's knob paths (``TuningConfig.flat``); the parent
  run's parameters are the study's context: the target's fields (``TuningTarget.to_dict``), the
  ``*_PARAM`` names below and ``MEASURE_PARAM_PREFIX`` + each measurement setting.
"""
from __future__ import annotations

from optuna.trial import TrialState

# The experiment every study's runs are in, and how the UI opens it.
EXPERIMENT = "tuner"
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # UI opens on the runs
UI_VIEW = "workflowType=machine_learning"  # the UI's "Model training" view: opens on runs

# Tags MLflow itself reads.
NOTE_TAG = "mlflow.note.content"  # a run's description in the UI (Markdown)
PARENT_TAG = "mlflow.parentRunId"

# Tags of the study's parent run.
STUDY_TAG = "tuner.study"  # the study's name; a parent run is the run with it and no parent
BEST_TRIAL_TAG = "best_trial"
BEST_KNOBS_TAG = "best_knobs"
VALIDATED_WINNER_TAG = "validated_winner"
VALIDATION_NOTE_TAG = "validation_note"
VALIDATED_ON_TAG = "validated_on"

# Tags of a trial's nested run.
TRIAL_TAG = "trial_number"
COMPLETE_TAG = "tuner.logged"  # set last: a run without it is completed in place
STATUS_TAG = "status"
BASELINE_TAG = "baseline"
OPTUNA_STATE_TAG = "optuna_state"
ORIGIN_TAG = "origin"
WORKER_TAG = "worker"
REUSED_FROM_TAG = "reused_from"
RETRY_OF_TAG = "retry_of"
HOST_TAG = "host"
HOST_CPU_TAG = "host.cpu_model"
HOST_CORES_TAG = "host.cores"

# Tags of either run when a side effect failed (the run keeps everything else).
ARTIFACT_ERROR_TAG = "artifact_error"
PROFILE_ERROR_TAG = "profile_error"

# Parameters of the parent run (beside the target's own fields: model, batch_size, ...).
INPUT_SHAPE_PARAM = "input_shape"
SEARCH_SPACE_PARAM = "search_space"
OBJECTIVES_PARAM = "objectives"
MINDSPORE_VERSION_PARAM = "mindspore_version"
OPTUNA_VERSION_PARAM = "optuna_version"
MLFLOW_VERSION_PARAM = "mlflow_version"
PYTHON_VERSION_PARAM = "python_version"
CPU_MODEL_PARAM = "cpu_model"
CPU_COUNT_PARAM = "cpu_count"
MODEL_PARAMETERS_PARAM = "model_parameters"
STUDY_STORAGE_PARAM = "study_storage"
MEASURE_PARAM_PREFIX = "measure."

# Metrics of a trial's nested run (beside its record's metrics: throughput_ips, ...).
SPEEDUP_METRIC = "speedup"
WALL_SECONDS_METRIC = "wall_seconds"
GRAPH_OPS_PREFIX = "graph_ops."

# Metrics of the parent run (beside the machine noise and the pruning savings).
BEST_PREFIX = "best_"  # + each metric of the best trial's record
BEST_SPEEDUP_METRIC = "best_speedup"
TRIALS_METRIC = "trials"
VALIDATED_SPEEDUP_METRIC = "validated_speedup"
VALIDATED_SPEEDUP_LOW_METRIC = "validated_speedup_low"
VALIDATED_SPEEDUP_HIGH_METRIC = "validated_speedup_high"
VALIDATED_SPEEDUP_CI_LOW_METRIC = "validated_speedup_ci_low"
VALIDATED_SPEEDUP_CI_HIGH_METRIC = "validated_speedup_ci_high"
VALIDATED_OVER_DEFAULT_METRIC = "validated_over_default"
VALIDATED_OVER_DEFAULT_CI_LOW_METRIC = "validated_over_default_ci_low"
VALIDATED_OVER_DEFAULT_CI_HIGH_METRIC = "validated_over_default_ci_high"

# Metrics of a profiled trial (the winner's on the parent run): PROFILE_PREFIX + name, and the
# share of each of the top operator types, PROFILE_SHARE_PREFIX + type.
PROFILE_PREFIX = "profile."
PROFILE_SHARE_PREFIX = "profile.share."

# Artifacts.
CONFIG_ARTIFACT = "config.json"          # a trial's configuration
ERROR_ARTIFACT = "error.txt"             # a failed trial's error text
SEARCH_SPACE_ARTIFACT = "search_space.json"
MODEL_INFO_ARTIFACT = "model_info.json"
VALIDATION_ARTIFACT = "validation.json"
PROFILE_ARTIFACT_DIR = "profile"         # a profile's tables
PLOTS_ARTIFACT_DIR = "plots"             # the study's plots, one PNG each

LOGGED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
"""The trials that get a nested run: every finished one (FAIL: a lost worker, status ``lost``)."""
