"""``python -m tuner.search``: tune a MindSpore network's inference with Optuna, track in MLflow."""
from __future__ import annotations

from pathlib import Path

import optuna

from tuner.backends import backend_names, get_backend
from tuner.callbacks.export_best import ExportBest
from tuner.callbacks.mlflow_tracking import MlflowTracker
from tuner.callbacks.profiling import ProfileWinner
from tuner.callbacks.progress import ProgressBar
from tuner.callbacks.record_tuning import SaveTuningRecords
from tuner.callbacks.reporting import WriteReport
from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_common_arguments, add_measure_arguments,
                                    add_study_name_argument, add_tracking_argument,
                                    artifacts_dir, default_export_path, measure_settings,
                                    positive_float, positive_int, selected_tracking_uri)
from tuner.errors import UsageError
from tuner.models import TuningTarget
from tuner.redact import mask_url
from tuner.space import load_space
from tuner.storages import trial_facts
from tuner.storages.coordination import database_lock, storage_engine
from tuner.storages.liveness import DEFAULT_HEARTBEAT_SECONDS, GRACE_HEARTBEATS
from tuner.storages.mlflow_names import UI_VIEW
from tuner.storages.storage import open_storage, study_dir
from tuner.storages.tuning_records import TuningRecordStore
from tuner.study.loop import StudySettings, open_run, run_trials
from tuner.study.objectives import parse_objectives
from tuner.study.pruning import PRUNER_NAMES, make_pruner
from tuner.study.samplers import SAMPLER_NAMES, make_sampler
from tuner.study.summary import summary_table


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m tuner.search", description=__doc__)
    parser.add_argument("--model", default="resnet50",
                        help="mindcv model name or package.module:factory (default resnet50)")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--image-size", type=positive_int, default=224)
    parser.add_argument("--device", default="CPU", help=f"one of {', '.join(backend_names())}")
    parser.add_argument("--space", type=Path, help="search space YAML (default: the device's)")
    parser.add_argument("--trials", type=positive_int, default=50,
                        help="trials to run in this invocation (default 50)")
    parser.add_argument("--timeout", type=positive_float, help="stop starting trials after this many s")
    parser.add_argument("--objective", nargs="+", default=["throughput"],
                        help="throughput, latency and/or memory (several: Pareto set)")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default="tpe")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0; a resumed study "
                        "continues with seed + its trial count, not replaying its first draws)")
    parser.add_argument("--pruner", choices=PRUNER_NAMES, default="best",
                        help="best: stop a trial below 0.4x the best trial's warmup or running "
                        "throughput before its 4th timed run, below 0.7x from the 4th on; "
                        "median: Optuna's MedianPruner; none")
    add_study_name_argument(parser, "default: derived from model, shape, device, objectives")
    add_tracking_argument(parser)
    parser.add_argument("--out", type=Path, help="where to export the best configuration "
                        "(default <runs-dir>/exports/<study>.json)")
    parser.add_argument("--dump-graphs", action="store_true",
                        help="record each trial's compiled-graph operator counts")
    parser.add_argument("--keep-trial-dirs", action="store_true",
                        help="keep successful trials' working directories too")
    parser.add_argument("--max-memory-mb", type=positive_float,
                        help="memory budget: a trial over it is never a winner (the numeric "
                        "error bound is --rel-tolerance)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-warm-start", action="store_true",
                        help="do not seed a new study with tuning records of earlier studies")
    parser.add_argument("--no-default-trial", action="store_true",
                        help="after the baseline, let the sampler pick every configuration (do not "
                        "try the space's default, the tuning records and the default's one-knob "
                        "neighbours first)")
    parser.add_argument("--no-workload-screening", action="store_true",
                        help="do not move the incumbent's heaviest workloads one step at a time "
                        "(tuner.study.workload_screening); only the sampler draws them")
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                        help="compile N trials at once (their timed runs still happen one at a "
                        "time, on an otherwise idle machine; default 1)")
    parser.add_argument("--validate-top", type=int, default=3, metavar="K",
                        help="re-measure the K best configurations against the baseline at the "
                        "end, interleaved in fresh processes (default 3; 0 = off)")
    parser.add_argument("--validation-rounds", type=int, default=3, metavar="R",
                        help="interleaved rounds of that re-measurement (default 3, at least 2)")
    parser.add_argument("--no-profile", action="store_true",
                        help="do not profile the winner and the baseline at the end")
    parser.add_argument("--profile-trials", action="store_true",
                        help="also profile every measured trial (its MLflow run gets profile/)")
    parser.add_argument("--no-report", action="store_true",
                        help="do not write the HTML report and plots at the end")
    parser.add_argument("--profile-runs", type=positive_int, default=5, metavar="N",
                        help="profiled inferences per network (default 5)")
    workers = parser.add_argument_group("several workers on one study (see docs/scaling-out.md)")
    workers.add_argument("--study-trials", type=positive_int, metavar="N",
                         help="the study ends at N trials, whichever workers run them: each "
                         "stops asking then, and the one that finishes the last validates and "
                         "exports (--trials still bounds this worker)")
    workers.add_argument("--allow-heterogeneous", action="store_true",
                         help="join a study made on another CPU model or core count, speed "
                         "objectives normalised by this host's own baseline")
    workers.add_argument("--heartbeat", type=positive_int, default=DEFAULT_HEARTBEAT_SECONDS,
                         metavar="S", help="record a heartbeat of running trials every S s; a "
                         f"trial silent for {GRACE_HEARTBEATS}xS s is failed by the next worker "
                         f"and re-run once (default {DEFAULT_HEARTBEAT_SECONDS})")
    add_common_arguments(parser)
    add_measure_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    backend = get_backend(args.device)
    backend.require_available()
    target = TuningTarget(args.model, args.batch_size, args.image_size, backend.name)
    space = load_space(args.space or backend.default_space_path())
    if space.device.lower() != backend.name.lower():
        raise UsageError(f"{space.source}: device: the space is for {space.device}, "
                         f"not --device {backend.name}")
    objectives = parse_objectives(args.objective)
    sampler = make_sampler(args.sampler, args.seed, len(objectives))
    measure = measure_settings(args)
    settings = StudySettings(trial_timeout=args.trial_timeout, search_timeout=args.timeout,
                             dump_graph=args.dump_graphs, keep_trial_dirs=args.keep_trial_dirs,
                             validate_top=args.validate_top,
                             validation_rounds=args.validation_rounds,
                             max_memory_mb=args.max_memory_mb,
                             warm_start=not args.no_warm_start, jobs=args.jobs,
                             start_from_default=not args.no_default_trial,
                             screen_workloads=not args.no_workload_screening,
                             study_trials=args.study_trials,
                             allow_heterogeneous=args.allow_heterogeneous)
    storage = open_storage(args.storage, args.runs_dir, args.heartbeat)
    name = args.study_name or target.study_name(tuple(o.name for o in objectives))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with database_lock(storage_engine(storage), f"tuner-create:{name}"):
            study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                        pruner=make_pruner(args.pruner, len(objectives)),
                                        directions=[o.direction for o in objectives],
                                        load_if_exists=True)
    except ValueError as exc:
        raise UsageError(f"--study-name {name}: {exc}") from None
    if [d for d in study.directions] != [o.direction for o in objectives]:
        raise UsageError(f"--study-name {name}: the existing study optimizes "
                         f"{[d.name.lower() for d in study.directions]}, not those objectives")
    record_store = TuningRecordStore(storage.url)
    run = open_run(study, target, space, objectives, measure, settings,
                   study_dir(args.runs_dir, name), record_store)
    trials_so_far = trial_facts.trial_count(study)
    if trials_so_far or run.joined_before:
        study.sampler = make_sampler(args.sampler, args.seed, len(objectives), trials_so_far,
                                     run.joined_before)
    tracking = selected_tracking_uri(args)
    out = args.out or default_export_path(args.runs_dir, name)
    tracker = MlflowTracker(tracking, artifacts_dir(args.runs_dir),
                            {"sampler": args.sampler, "seed": args.seed})
    callbacks = [tracker, SaveTuningRecords(record_store), exporter := ExportBest(out)]
    profiler = None
    if not args.no_profile:
        callbacks.append(profiler := ProfileWinner(tracker, args.profile_runs, args.profile_trials))
    reporter = None
    if not args.no_report:
        callbacks.append(reporter := WriteReport(tracker, out, args.jobs))
    if not args.no_progress:
        callbacks.insert(0, ProgressBar(args.trials))
    run_trials(run, args.trials, callbacks)
    print(summary_table(run))
    exported = exporter.written
    print(f"best configuration: {exported}" if exported else
          "nothing exported (no successful trial)" if run.ended else
          "nothing exported by this worker (another worker or python -m tuner.validate ends the study)")
    if profiler is not None and profiler.written:
        print(f"where the winner's time goes: {profiler.written} (python -m tuner.profile "
              f"{exported or 'best.json'} to profile again)")
    if reporter is not None and reporter.written:
        print(f"report: {reporter.written} (plots under the MLflow parent run's plots/)")
    print(f"MLflow: mlflow ui --backend-store-uri {mask_url(tracking)}, then open "
          f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}?{UI_VIEW} (the runs)")
    return 0
