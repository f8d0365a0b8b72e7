"""The option groups the commands share, each spelled and defaulted the same in every command,
and the one way a command opens the study it is given.

- study selection: ``--study-name`` (default: the storage's only study);
- storage: ``--storage`` (else ``$TUNER_STORAGE``, else SQLite in the runs directory); a URL
  that cannot be opened is shown masked (tuner.redact, in tuner.storages.storage.open_storage);
- tracking: ``--tracking-uri`` (else ``$MLFLOW_TRACKING_URI``, else SQLite in the runs
  directory);
- runs directory: ``--runs-dir`` (studies' local files, SQLite stores, MLflow's artifacts,
  the winners exported without ``--out``);
- trust: ``--trust-model-code`` (build a ``package.module:factory`` model an export names);
- trial processes: ``--trial-timeout``; measurement: the protocol's settings.

A command adds the groups it takes, in the order its ``--help`` lists them; a help text given
here is that of every command that takes the option, except where a command passes its own.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from tuner.errors import UsageError
from tuner.trial.measurement import MeasureSettings
from tuner.storages import attributes as attrs
from tuner.storages.attributes import StudyKey
from tuner.storages.storage import DEFAULT_RUNS_DIR, open_study, tracking_uri

ONLY_STUDY = "default: the only study in the storage"
STORAGE_HELP = "Optuna storage URL (default sqlite:///<runs-dir>/optuna.db)"
TRACKING_HELP = ("MLflow tracking URI (default $MLFLOW_TRACKING_URI "
                 "or sqlite:///<runs-dir>/mlflow.db)")
RUNS_DIR_HELP = "local directory of studies, SQLite stores and artifacts (mlruns)"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def add_study_name_argument(parser: argparse.ArgumentParser,
                            help_text: str = ONLY_STUDY) -> None:
    """``--study-name``: the study a command works on (selected_study opens it)."""
    parser.add_argument("--study-name", help=help_text)


def add_storage_argument(parser: argparse.ArgumentParser, default: str | None = None,
                         help_text: str = STORAGE_HELP) -> None:
    """``--storage``: the Optuna storage URL (None: $TUNER_STORAGE, else SQLite in the runs
    directory; tuner.storages.storage.open_storage)."""
    parser.add_argument("--storage", default=default, help=help_text)


def add_tracking_argument(parser: argparse.ArgumentParser) -> None:
    """``--tracking-uri``: where MLflow records the study (tracking resolves it)."""
    parser.add_argument("--tracking-uri", help=TRACKING_HELP)


def add_runs_dir_argument(parser: argparse.ArgumentParser, default: Path = DEFAULT_RUNS_DIR,
                          help_text: str | None = None) -> None:
    """``--runs-dir``: the local directory of studies, SQLite stores and artifacts."""
    parser.add_argument("--runs-dir", type=Path, default=default, help=help_text)


def artifacts_dir(runs_dir: Path) -> Path:
    """Where MLflow's artifacts go under the runs directory (a local tracking store's)."""
    return runs_dir / "artifacts"


def default_export_path(runs_dir: Path, study_name: str) -> Path:
    """Where a study's winner is exported when ``--out`` does not say."""
    return runs_dir / "exports" / f"{study_name}.json"


def add_trial_timeout_argument(parser: argparse.ArgumentParser,
                               help_text: str | None = None) -> None:
    """``--trial-timeout``: seconds before a trial process is killed (default 300)."""
    parser.add_argument("--trial-timeout", type=positive_float, default=300.0, help=help_text)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The runs directory, the storage and the trial timeout, of the commands that run trials."""
    add_runs_dir_argument(parser, help_text=RUNS_DIR_HELP)
    add_storage_argument(parser)
    add_trial_timeout_argument(parser, help_text="seconds before a trial process is killed "
                               "(default 300)")


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    """``--trust-model-code``, for the commands that build the model an export names."""
    parser.add_argument("--trust-model-code", action="store_true",
                        help="build an export's package.module:factory model (imports and runs "
                        "that code; mindcv names need no trust)")


def add_measure_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = MeasureSettings()
    group = parser.add_argument_group("measurement")
    group.add_argument("--warmup-runs", type=int, default=defaults.warmup_runs)
    group.add_argument("--min-runs", type=positive_int, default=defaults.min_runs)
    group.add_argument("--min-seconds", type=float, default=defaults.min_seconds)
    group.add_argument("--max-seconds", type=positive_float, default=defaults.max_seconds)
    group.add_argument("--rel-tolerance", type=positive_float, default=defaults.rel_tolerance,
                       help="max |out-ref|/max|ref| against the untuned output (default 1e-3)")
    group.add_argument("--rel-precision", type=positive_float, default=defaults.rel_precision,
                       help="time until the median's 95%% CI half-width is within this fraction "
                       "of the median (default 0.03), capped by --max-seconds")


def measure_settings(args: argparse.Namespace) -> MeasureSettings:
    return MeasureSettings(args.warmup_runs, args.min_runs, args.min_seconds, args.max_seconds,
                           args.rel_tolerance, args.rel_precision)


def selected_study(args: argparse.Namespace) -> optuna.Study:
    """The study of ``--study-name`` (or the storage's only one) in ``--storage`` under
    ``--runs-dir``: tuner.storages.storage.open_study, the one way the commands open a study."""
    return open_study(args.storage, args.runs_dir, args.study_name)


def selected_search_study(args: argparse.Namespace) -> optuna.Study:
    """selected_study, refused (UsageError) unless ``python -m tuner.search`` made it."""
    study = selected_study(args)
    if not attrs.has(study, StudyKey.TARGET):
        raise UsageError(f"study {study.study_name} was not made by tuner.search")
    return study


def selected_tracking_uri(args: argparse.Namespace) -> str:
    """The MLflow tracking URI of ``--tracking-uri`` (tuner.storages.storage.tracking_uri)."""
    return tracking_uri(args.tracking_uri, args.runs_dir)
