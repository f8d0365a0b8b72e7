"""The ``tuner`` command (``[project.scripts]``): ``tuner COMMAND ARGUMENTS`` runs the main of
``python -m tuner.COMMAND ARGUMENTS``, with the same flags, help, output and exit codes;
``tuner --help`` lists the commands. A command's module is imported only when it runs."""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass

from tuner.commands.entry import OneLineParser, run_cli


@dataclass(frozen=True)
class Command:
    """A command of ``tuner``: the module whose ``main(argv) -> int`` runs it (the one
    ``python -m tuner.<name>`` runs) and what it does, in one line."""

    module: str
    summary: str


COMMANDS = {
    "search": Command("tuner.commands.search",
                      "tune a network's inference with Optuna, track the trials in MLflow"),
    "validate": Command("tuner.commands.validate",
                        "re-measure a study's winners on this host, then export"),
    "export": Command("tuner.commands.export",
                      "write a study's best configuration as JSON (--bundle: a deployable bundle)"),
    "measure": Command("tuner.commands.measure",
                       "re-measure an exported configuration and its baseline"),
    "profile": Command("tuner.commands.profile",
                       "where an inference's time goes, tuned and untuned, operator by operator"),
    "explain": Command("tuner.commands.explain",
                       "what the programs make of a network, layer by layer"),
    "report": Command("tuner.commands.report", "one self-contained HTML report of a study"),
    "sync-mlflow": Command("tuner.commands.sync_mlflow",
                           "log to MLflow the finished trials it lacks"),
    "cluster": Command("tuner.commands.cluster",
                       "a local cluster: an MLflow server and N search workers on one study"),
    "bench": Command("tuner.bench.__main__",
                     "benchmarks: kernels, search, anchors, faults, serving"),
}
ALIASES = {"sync_mlflow": "sync-mlflow"}  # as python -m tuner.sync_mlflow spells it


def build_parser() -> OneLineParser:
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name.ljust(width)}  {command.summary}"
                        for name, command in COMMANDS.items())
    parser = OneLineParser(prog="tuner", usage="%(prog)s [-h] COMMAND [ARGUMENTS ...]",
                           description="Autotune MindSpore inference (Optuna + MLflow).\n"
                           "tuner COMMAND ARGUMENTS is python -m tuner.COMMAND ARGUMENTS:\n"
                           "the same flags, output and exit codes.",
                           epilog=f"commands:\n{listing}\n\n"
                           "tuner COMMAND --help: the command's own arguments",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", metavar="COMMAND", help="one of the commands below")
    return parser


def main(argv: list[str]) -> int:
    """Run the command ``argv`` names with the rest of ``argv``; an unknown command is a usage
    error (one line, exit code 2)."""
    parser = build_parser()
    name = parser.parse_args(argv[:1]).command  # --help: the list; none: a usage error
    name = ALIASES.get(name, name)
    if name not in COMMANDS:
        parser.error(f"argument COMMAND: invalid choice: {argv[0]!r} "
                     f"(choose from {', '.join(COMMANDS)})")
    return importlib.import_module(COMMANDS[name].module).main(argv[1:])


def run() -> None:
    """The ``tuner`` script: main on the command line, exit codes as python -m tuner.<command>."""
    run_cli(main)
