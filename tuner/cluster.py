"""``python -m tuner.cluster``: runs tuner.commands.cluster (see its --help)."""
from tuner.commands.entry import run_cli
from tuner.commands.cluster import main

if __name__ == "__main__":
    run_cli(main)
