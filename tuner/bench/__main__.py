"""``python -m tuner.bench kernels|search|anchors|faults|serving ...`` (see --help)."""
from __future__ import annotations

from tuner.commands.entry import OneLineParser, run_cli


def main(argv: list[str] | None = None) -> int:
    from tuner.bench import anchors, faults, kernels, search_strategies, serving_speed

    benchmarks = {"kernels": kernels, "search": search_strategies, "anchors": anchors,
                  "faults": faults, "serving": serving_speed}
    parser = OneLineParser(prog="python -m tuner.bench")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, module in benchmarks.items():
        module.add_arguments(commands.add_parser(name, help=module.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    return benchmarks[args.command].run(args)


if __name__ == "__main__":
    run_cli(main)
