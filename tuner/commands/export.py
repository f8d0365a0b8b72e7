"""``python -m tuner.export``: write a study's best (or K-th best) configuration as JSON."""
from __future__ import annotations

import argparse
from pathlib import Path

from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_runs_dir_argument, add_storage_argument,
                                    add_study_name_argument, add_trust_argument, positive_int,
                                    selected_study)
from tuner.exported_config import write_export
from tuner.study.exported_trial import export_trial


def parse_weights(text: str) -> dict[str, float]:
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not objective=weight") from None
    return weights


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m tuner.export", description=__doc__)
    add_study_name_argument(parser)
    parser.add_argument("--rank", type=positive_int, default=1, help="1 = best (default)")
    parser.add_argument("--out", type=Path, default=Path("best.json"))
    parser.add_argument("--weights", type=parse_weights,
                        help="pick the Pareto member by objective weights, e.g. throughput=1,memory=0.5")
    parser.add_argument("--max-memory-mb", type=float,
                        help="only trials whose peak memory is within this budget")
    add_storage_argument(parser)
    add_runs_dir_argument(parser)
    parser.add_argument("--bundle", type=Path, metavar="DIR",
                        help="also write a bundle that deploys without a compiler: the export, "
                             "this CPU's compiled libraries and the planned programs")
    parser.add_argument("--checkpoint", type=Path,
                        help="with --bundle: the weights to ship (default: the model's own)")
    parser.add_argument("--bundle-batches", type=positive_int, nargs="+", default=[],
                        metavar="N", help="with --bundle: also plan the programs for these "
                                          "batch sizes (others run in chunks of the tuned one)")
    add_trust_argument(parser)
    args = parser.parse_args(argv)
    for flag in ("checkpoint", "bundle_batches"):
        if getattr(args, flag) and args.bundle is None:
            parser.error(f"--{flag.replace('_', '-')}: only with --bundle")
    study = selected_study(args)
    name = study.study_name
    exported = export_trial(study, args.rank, args.weights, args.max_memory_mb)
    path = write_export(exported, args.out)
    metrics = exported.metrics
    print(f"wrote {path}: study {name}, trial {exported.study['trial']} (rank {args.rank}), "
          f"{metrics['throughput_ips']:.4g} images/s, speedup {metrics.get('speedup') or 0:.3f}x")
    if args.bundle is not None:
        manifest = write_exported_bundle(exported, args.bundle, args.checkpoint,
                                         tuple(args.bundle_batches), args.trust_model_code)
        print(describe_bundle(manifest, args.bundle))
    return 0


def write_exported_bundle(exported, directory: Path, checkpoint: Path | None,
                          batches: tuple[int, ...] = (), trust_model_code: bool = False):
    from tuner.bundle import write_bundle
    from tuner.deploy import build_model

    net = build_model(exported, checkpoint, trust_model_code)
    return write_bundle(exported, directory, net, batches)


def describe_bundle(manifest, directory: Path) -> str:
    size = sum(entry[0] for entry in manifest.files.values())
    batches = sorted({program.batch for program in manifest.programs})
    covered = (f"{len(manifest.programs)} programs"
               + (" and a checkpoint of the layers outside them" if manifest.weights else ""))
    return (f"wrote bundle {directory}: {covered} (batch {', '.join(map(str, batches))}), "
            f"{len(manifest.kernels)} external kernels, "
            f"{size / 2**20:.1f} MiB, for CPUs with {_widest(manifest.isa)}")


def _widest(isa) -> str:
    from tuner.cpuinfo import vector_isa

    return vector_isa(frozenset(isa))
