"""``python -m tuner.sync_mlflow --study-name S --tracking-uri URI``: log what MLflow lacks.

Every finished trial of the study that has no complete nested run under the study's parent
run is logged now (tuner.callbacks.mlflow_runs: checked and created under the study's lock,
so running it while workers run, or twice, duplicates nothing); the parent run is created if
the server was never reachable during the study. ``python -m tuner.sync-mlflow`` is the same
command.
"""
from __future__ import annotations

from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from tuner.callbacks.mlflow_runs import StudyRuns
from tuner.storages.mlflow_names import LOGGED_STATES
from tuner.callbacks.mlflow_tracking import artifact_location
from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_runs_dir_argument, add_storage_argument,
                                    add_study_name_argument, add_tracking_argument,
                                    artifacts_dir, selected_study, selected_tracking_uri)
from tuner.errors import UsageError, one_line
from tuner.redact import mask_url, without_secrets


def sync_study(study: optuna.Study, tracking_uri: str, artifact_root: Path) -> tuple[int, int]:
    """(trials logged now, trials the parent run now has)."""
    runs = StudyRuns(MlflowClient(tracking_uri=tracking_uri), study,
                     artifact_location(tracking_uri, artifact_root))
    try:
        runs.connect()
        logged = runs.sync(study.get_trials(deepcopy=False, states=LOGGED_STATES))
        return logged, len(runs.logged())
    except Exception as exc:  # MLflow raises many kinds for an unreachable or bad store
        raise UsageError(f"--tracking-uri {mask_url(tracking_uri)}: cannot log to it "
                         f"({without_secrets(one_line(exc), tracking_uri)[:300]})") from None


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m tuner.sync_mlflow", description=__doc__)
    add_study_name_argument(parser)
    add_tracking_argument(parser)
    add_storage_argument(parser)
    add_runs_dir_argument(parser)
    args = parser.parse_args(argv)
    study = selected_study(args)
    name = study.study_name
    uri = selected_tracking_uri(args)
    logged, total = sync_study(study, uri, artifacts_dir(args.runs_dir))
    finished = len(study.get_trials(deepcopy=False, states=LOGGED_STATES))
    print(f"study {name}: logged {logged} trials to {uri}; MLflow now has {total} "
          f"nested runs for the study's {finished} finished trials")
    return 0
