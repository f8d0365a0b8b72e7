"""``python -m tuner.bench kernels [--batch 1 16] [--models resnet50 mobilenet_v2_100] [--quick]``"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.bench")
    commands = parser.add_subparsers(dest="command", required=True)
    from tuner.bench import kernels

    kernels.add_arguments(commands.add_parser("kernels", help=kernels.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    return kernels.run(args)


if __name__ == "__main__":
    sys.exit(main())
