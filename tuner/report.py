"""``python -m tuner.report``: runs tuner.commands.report (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.report import main

if __name__ == "__main__":
    run_cli(main)
