"""``python -m tuner.profile CONFIG.json``: where the time of an inference goes, operator by
operator, for a tuned configuration and the untuned network, side by side.

Each network is built as ``tuner.load`` builds it (same weights seed as the study) in its own
fresh process, warmed up, then ``--runs`` inferences are profiled with MindSpore's profiler. The
table gives, per operator type and per layer, calls and milliseconds per inference and their
share of the inference; the last lines give the time no operator accounts for (framework
overhead). ``--out`` receives the profilers' raw output, the table as CSV, JSON and Markdown and
``trace.json`` (both runs; opens in Perfetto or chrome://tracing).

Instead of a JSON, ``--trial N`` profiles trial N of a study (``--study-name``, ``--storage``).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_common_arguments, add_study_name_argument,
                                    add_trust_argument, positive_int, selected_search_study)
from tuner.config import TuningConfig
from tuner.errors import UsageError
from tuner.exported_config import read_export
from tuner.models import TuningTarget
from tuner.profiling.compare import profiler_note, render_text
from tuner.runner.profile_runs import DEFAULT_RUNS, TABLE_FILES, profile_pair, write_outputs
from tuner.runner.rebuilt_assets import prepare_export_assets


def _study_trial(args) -> tuple[TuningTarget, TuningConfig, Path, int, str]:
    """(target, config, assets dir, weights seed, name) of ``--trial`` in a study."""
    from tuner.storages import trial_facts
    from tuner.storages import attributes as attrs
    from tuner.storages.attributes import StudyKey
    from tuner.storages.storage import study_dir

    study = selected_search_study(args)
    name = study.study_name
    trials = study.get_trials(deepcopy=False)
    if not 0 <= args.trial < len(trials):
        raise UsageError(f"--trial {args.trial}: study {name} has trials 0..{len(trials) - 1}")
    assets = study_dir(args.runs_dir, name) / "assets"
    if not assets.is_dir():
        raise UsageError(f"--trial {args.trial}: the study's assets are not in {assets} "
                         f"(give the --runs-dir of the search)")
    return (TuningTarget(**attrs.get(study, StudyKey.TARGET)),
            trial_facts.trial_config(trials[args.trial]),
            assets, int(attrs.get(study, StudyKey.WEIGHTS_SEED, 0)), f"{name}-trial{args.trial}")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m tuner.profile", description=__doc__)
    parser.add_argument("config", type=Path, nargs="?", help="exported JSON (python -m tuner.export)")
    parser.add_argument("--trial", type=int, help="profile this trial of a study instead")
    add_study_name_argument(parser, "with --trial (default: the only study)")
    parser.add_argument("--runs", type=positive_int, default=DEFAULT_RUNS,
                        help=f"profiled inferences per network (default {DEFAULT_RUNS})")
    parser.add_argument("--top", type=int, default=15,
                        help="rows per section of the printed table (0 = all; files have all)")
    parser.add_argument("--out", type=Path, help="directory for the tables, raw output and "
                        "trace.json (default profile-<config name>)")
    add_common_arguments(parser)
    add_trust_argument(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if (args.config is None) == (args.trial is None):
        raise UsageError("give an exported CONFIG.json or --trial N (not both)")
    with tempfile.TemporaryDirectory(prefix="tuner-profile-") as tmp:
        work = Path(tmp)
        if args.config is not None:
            exported = read_export(args.config)
            target, config, name = exported.target, exported.config, args.config.stem
            seed = int(exported.study.get("weights_seed", 0))
            assets = prepare_export_assets(exported, args.config, work, args.trial_timeout,
                                           args.trust_model_code)
        else:
            target, config, assets, seed, name = _study_trial(args)
        outcome = profile_pair(target, assets, config, work, args.runs, seed, args.trial_timeout)
        if not outcome.ok:
            print(f"profiling failed: {outcome.error}")
            return 1
        out = args.out or Path(f"profile-{name}")
        rows = write_outputs(outcome, out, args.top)
    print(f"{target.model} {'x'.join(map(str, target.input_shape))} on {target.device}: "
          f"{args.runs} profiled inferences per network, each in a fresh process")
    print(f"{outcome.baseline.label}\n{outcome.tuned.label}")
    print(render_text(rows))
    for note in filter(None, map(profiler_note, (outcome.baseline, outcome.tuned))):
        print(note)
    print(f"overhead share (wall time no operator accounts for): baseline "
          f"{outcome.baseline.overhead_share:.1%}, tuned {outcome.tuned.overhead_share:.1%}")
    print(f"files: {out}/ ({', '.join(TABLE_FILES)}, raw/)")
    return 0
