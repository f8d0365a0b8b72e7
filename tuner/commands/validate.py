"""``python -m tuner.validate --study-name S``: validate a study's winners and export, on this host.

The end of a study (tuner.study.ending) on request, from any machine that can reach the study's
storage: the top configurations and the untuned baseline are re-measured here in interleaved
rounds (the report names this host), the tuning records are saved, the winner is exported and
the study's MLflow parent run receives the validation. Every worker of the study should have
stopped: validating while others measure disturbs both.
"""
from __future__ import annotations

from pathlib import Path

from tuner.callbacks.export_best import ExportBest
from tuner.callbacks.mlflow_tracking import MlflowTracker
from tuner.callbacks.record_tuning import SaveTuningRecords
from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_common_arguments, add_study_name_argument,
                                    add_tracking_argument, artifacts_dir, default_export_path,
                                    positive_int, selected_search_study, selected_tracking_uri)
from tuner.errors import UsageError
from tuner.models import TuningTarget
from tuner.trial.measurement import MeasureSettings
from tuner.space import load_space
from tuner.storages import attributes as attrs
from tuner.storages.attributes import StudyKey
from tuner.study.ending import claim_end, end_study
from tuner.study.objectives import parse_objectives
from tuner.study.run import open_run
from tuner.study.settings import StudySettings
from tuner.storages.storage import study_dir
from tuner.storages.tuning_records import TuningRecordStore
from tuner.study.summary import summary_table
from tuner.study.validation import current_report


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m tuner.validate", description=__doc__)
    add_study_name_argument(parser)
    parser.add_argument("--validate-top", type=positive_int, default=3, metavar="K")
    parser.add_argument("--validation-rounds", type=positive_int, default=3, metavar="R")
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N")
    parser.add_argument("--space", type=Path, help="default: the search space the study was made with")
    add_tracking_argument(parser)
    parser.add_argument("--out", type=Path, help="default <runs-dir>/exports/<study>.json")
    parser.add_argument("--allow-heterogeneous", action="store_true",
                        help="validate on a host whose CPU model or cores differ from the study's")
    add_common_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    study = selected_search_study(args)
    name, storage = study.study_name, study._storage
    space_path = args.space or attrs.get(study, StudyKey.SPACE)
    if not space_path:
        raise UsageError(f"study {name} does not record its search space: pass --space")
    objectives = parse_objectives(attrs.get(study, StudyKey.OBJECTIVES, ["throughput"]))
    if not objectives[0].is_speed:
        raise UsageError(f"study {name}: its first objective is {objectives[0].name}; only "
                         f"speed objectives are validated")
    settings = StudySettings(trial_timeout=args.trial_timeout, validate_top=args.validate_top,
                             validation_rounds=args.validation_rounds, jobs=args.jobs,
                             weights_seed=int(attrs.get(study, StudyKey.WEIGHTS_SEED, 0)),
                             allow_heterogeneous=args.allow_heterogeneous)
    records = TuningRecordStore(getattr(storage, "_backend", storage).url)
    run = open_run(study, TuningTarget(**attrs.get(study, StudyKey.TARGET)), load_space(space_path),
                   objectives, MeasureSettings(**attrs.get(study, StudyKey.MEASURE, {})), settings,
                   study_dir(args.runs_dir, name), records)
    exporter = ExportBest(args.out or default_export_path(args.runs_dir, name))
    callbacks = [MlflowTracker(selected_tracking_uri(args), artifacts_dir(args.runs_dir)),
                 SaveTuningRecords(records), exporter]
    for callback in callbacks:
        callback.on_study_start(run)
    claim_end(run, force=True)
    try:
        end_study(run, callbacks)
    finally:
        for callback in callbacks:
            callback.on_study_end(run)
    print(summary_table(run))
    validated = current_report(study) is not None
    print((f"validated on {run.host.describe()}" if validated else
           "nothing to validate (no ok trial other than the untuned configuration)") + "; "
          + (f"best configuration: {exporter.written}" if exporter.written else "nothing exported"))
    return 0
