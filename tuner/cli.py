"""Shared command-line plumbing: one-line errors, exit code 2 for usage errors."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from tuner.errors import UsageError
from tuner.runner.measurement import MeasureSettings
from tuner.storages.storage import DEFAULT_RUNS_DIR

USAGE_EXIT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (still exit code 2)."""

    def error(self, message: str):
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see --help)\n")


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


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR,
                        help="local directory of studies, SQLite stores and artifacts (mlruns)")
    parser.add_argument("--storage", help="Optuna storage URL (default sqlite:///<runs-dir>/optuna.db)")
    parser.add_argument("--trial-timeout", type=positive_float, default=300.0,
                        help="seconds before a trial process is killed (default 300)")


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


def run_cli(main: Callable[[list[str]], int], argv: list[str] | None = None) -> None:
    """Run ``main`` and exit: 2 with a one-line message for a UsageError, 130 on Ctrl-C."""
    try:
        code = main(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
              file=sys.stderr)
        code = USAGE_EXIT
    except KeyboardInterrupt:
        print("interrupted: completed trials are kept in the study", file=sys.stderr)
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
