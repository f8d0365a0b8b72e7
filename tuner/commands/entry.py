"""How a command starts and ends: a bad flag is one line and exit code 2 (OneLineParser), so is
a UsageError its main raises, Ctrl-C is exit code 130 (run_cli)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from tuner.errors import UsageError

USAGE_EXIT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (still exit code 2)."""

    def error(self, message: str):
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see --help)\n")


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
